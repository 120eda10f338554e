"""The per-organisation IAM role (docs/snowflake-facts.md §4), against moto."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from kernel.config import Settings
from kernel.render import Target
from provisioner import iam

if TYPE_CHECKING:
    from devstack.aws import MotoServer

SNOWFLAKE_USER = "arn:aws:iam::999999999999:user/abc-snowflake"


def target(org_id: str = "acme") -> Target:
    return Target.from_description(
        {
            "org_id": org_id,
            "account": "xy12345",
            "user": "U",
            "role": "R",
            "warehouse": "W",
            "database": "D",
            "schema": "S",
            "table": "T",
            "aws_account_id": "123456789012",
        }
    )


def role_of(name: str) -> Any:
    return boto3.client("iam").get_role(RoleName=name)["Role"]


def test_read_policy_reads_one_prefix_and_nothing_else() -> None:
    policy = iam.read_policy("floe-events", "live/acme/")
    read, listing = policy["Statement"]
    assert read["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert read["Resource"] == "arn:aws:s3:::floe-events/live/acme/*"
    assert listing["Action"] == ["s3:ListBucket", "s3:GetBucketLocation"]
    assert listing["Resource"] == "arn:aws:s3:::floe-events"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["live/acme/*"]}}
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    # "live/acme/*", not "live/acme*": org "acme" cannot read org "acme-2"
    assert not any(p.startswith("live/acme*") for p in listing["Condition"]["StringLike"]["s3:prefix"])


def test_trust_policies_have_the_documented_shape() -> None:
    (deny,) = iam.deny_all_trust()["Statement"]
    assert deny == {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    (allow,) = iam.snowflake_trust(SNOWFLAKE_USER, "EXT_1")["Statement"]
    assert allow["Principal"] == {"AWS": SNOWFLAKE_USER}
    assert allow["Condition"] == {"StringEquals": {"sts:ExternalId": "EXT_1"}}


def test_ensure_role_creates_once_with_deny_all_trust(aws: MotoServer) -> None:
    first = iam.ensure_role(target(), Settings())
    assert first.created
    assert first.role_arn == "arn:aws:iam::123456789012:role/floe/snowflake/floe-snowflake-acme"
    role = role_of("floe-snowflake-acme")
    assert role["Path"] == "/floe/snowflake/"
    assert role["AssumeRolePolicyDocument"] == iam.deny_all_trust()
    policy = boto3.client("iam").get_role_policy(RoleName="floe-snowflake-acme", PolicyName=iam.POLICY_NAME)
    assert policy["PolicyDocument"] == iam.read_policy("floe-events", "live/acme/")
    assert not iam.ensure_role(target(), Settings()).created


def test_a_role_is_created_inside_the_configured_boundary_and_one_without_it_is_refused(aws: MotoServer) -> None:
    boundary = boto3.client("iam").create_policy(
        PolicyName="floe-snowflake-role-boundary", PolicyDocument=json.dumps(iam.read_policy("floe-events", "live/"))
    )["Policy"]["Arn"]
    inside = Settings(iam_role_boundary_arn=boundary)
    iam.ensure_role(target(), inside)
    assert role_of("floe-snowflake-acme")["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    iam.ensure_role(target("other"), Settings())  # made before the boundary was configured
    with pytest.raises(iam.IamError, match="put-role-permissions-boundary --role-name floe-snowflake-other"):
        iam.ensure_role(target("other"), inside)


def test_trust_changes_once_then_holds(aws: MotoServer) -> None:
    iam.ensure_role(target(), Settings())
    assert iam.trust_snowflake(target(), SNOWFLAKE_USER, "EXT_1").trust_changed
    assert not iam.trust_snowflake(target(), SNOWFLAKE_USER, "EXT_1").trust_changed
    assert iam.trust_snowflake(target(), SNOWFLAKE_USER, "EXT_2").trust_changed  # a new integration's id
    assert role_of("floe-snowflake-acme")["AssumeRolePolicyDocument"] == iam.snowflake_trust(SNOWFLAKE_USER, "EXT_2")


def test_a_role_elsewhere_is_refused(aws: MotoServer) -> None:
    boto3.client("iam").create_role(
        Path="/other/", RoleName="floe-snowflake-acme", AssumeRolePolicyDocument=json.dumps(iam.deny_all_trust())
    )
    with pytest.raises(iam.IamError, match="integration names"):
        iam.ensure_role(target(), Settings())


def test_delete_role_removes_it_and_its_policy(aws: MotoServer) -> None:
    iam.ensure_role(target(), Settings())
    iam.ensure_role(target("other"), Settings())
    assert iam.delete_role("acme")
    assert not iam.delete_role("acme")
    names = [role["RoleName"] for role in boto3.client("iam").list_roles()["Roles"]]
    assert names == ["floe-snowflake-other"]

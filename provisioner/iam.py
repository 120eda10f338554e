"""The organisation's IAM role that Snowflake assumes to read its prefix (docs/snowflake-facts.md §4).

One role per organisation, under `settings.iam_role_path`, named `floe-snowflake-<org_id>`:
- its permission policy reads that organisation's live prefix and nothing else;
- its trust policy denies everyone until provision has read the integration's IAM user and external
  ID from DESC INTEGRATION, then allows exactly that user with exactly that external ID.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from kernel import logs
from kernel.errors import FloeError
from kernel.render import Target, iam_role_name

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from kernel.config import Settings

POLICY_NAME = "floe-read-org-prefix"
_log = logs.get("iam")


class IamError(FloeError):
    """The organisation's role exists but is not the one the integration names."""


@dataclass(frozen=True)
class RoleResult:
    role_name: str
    role_arn: str
    created: bool
    trust_changed: bool = False


def read_policy(bucket: str, prefix: str) -> dict[str, Any]:
    """Read-only on `bucket/prefix*` (the doc policy of docs/snowflake-facts.md §4, scoped to one prefix)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOrgPrefix",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
            },
            {
                "Sid": "ListOrgPrefix",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
        ],
    }


def deny_all_trust() -> dict[str, Any]:
    """The trust policy before the handshake: nobody may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }


def snowflake_trust(user_arn: str, external_id: str) -> dict[str, Any]:
    """Only the account's Snowflake IAM user, only with this integration's external ID (docs/snowflake-facts.md §4)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": user_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def ensure_role(target: Target, settings: Settings, client: IAMClient | None = None) -> RoleResult:
    """Create the role (trust: deny all; inside FLOE_IAM_ROLE_BOUNDARY_ARN when set) if missing;
    (re)write its read-only policy either way."""
    client = client or boto3.client("iam")
    name = iam_role_name(target.org_id)
    boundary = settings.iam_role_boundary_arn
    created = False
    try:
        role = client.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
        # Terraform's operator policy refuses a CreateRole under the role path that names no boundary.
        inside: dict[str, Any] = {"PermissionsBoundary": boundary} if boundary else {}
        role = client.create_role(
            Path=settings.iam_role_path,
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(deny_all_trust()),
            Description=f"Snowflake reads organisation {target.org_id}'s events (Floe)",
            **inside,
        )["Role"]
        created = True
        _log.info("created IAM role", extra={"role": name, "org_id": target.org_id})
    arn = role["Arn"]
    if arn != target.iam_role_arn:
        raise IamError(f"IAM role {name} is {arn}, but the integration names {target.iam_role_arn}")
    if boundary and not created and role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn") != boundary:
        # The operator may not change a boundary, and its policy refuses PutRolePolicy without this one.
        raise IamError(
            f"IAM role {name} lacks the permissions boundary FLOE_IAM_ROLE_BOUNDARY_ARN names: an administrator "
            f"runs `aws iam put-role-permissions-boundary --role-name {name} --permissions-boundary {boundary}`, "
            "then provision again"
        )
    policy = read_policy(target.bucket, target.live_prefix)
    client.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
    return RoleResult(name, arn, created)


def trust_snowflake(target: Target, user_arn: str, external_id: str, client: IAMClient | None = None) -> RoleResult:
    """Write the §4 trust policy for the integration's user and external ID (a no-op if already so)."""
    client = client or boto3.client("iam")
    name = iam_role_name(target.org_id)
    role = client.get_role(RoleName=name)["Role"]
    wanted = snowflake_trust(user_arn, external_id)
    current = _document(role.get("AssumeRolePolicyDocument"))
    changed = current != wanted
    if changed:
        client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(wanted))
        _log.info("trusted the Snowflake integration user", extra={"role": name, "org_id": target.org_id})
    return RoleResult(name, role["Arn"], created=False, trust_changed=changed)


def delete_role(org_id: str, client: IAMClient | None = None) -> bool:
    """Remove the role and its inline policies; False if it did not exist."""
    client = client or boto3.client("iam")
    name = iam_role_name(org_id)
    try:
        for policy in client.list_role_policies(RoleName=name)["PolicyNames"]:
            client.delete_role_policy(RoleName=name, PolicyName=policy)
        client.delete_role(RoleName=name)
    except ClientError as error:
        if _code(error) == "NoSuchEntity":
            return False
        raise
    _log.info("deleted IAM role", extra={"role": name, "org_id": org_id})
    return True


def _document(value: object) -> dict[str, Any]:
    """boto3 returns policy documents parsed; tolerate a JSON string too."""
    if isinstance(value, str):
        parsed = json.loads(value)
        return parsed if isinstance(parsed, dict) else {}
    return dict(value) if isinstance(value, dict) else {}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))

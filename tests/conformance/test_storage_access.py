"""S3 storage integrations, the IAM trust handshake and the three locks on a prefix.

Facts: docs/snowflake-facts.md §4 (storage integrations), §5 (stages).
"""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from snowflake.connector.errors import DatabaseError

from .harness import Target, describe_integration, get, query, records, trust_policy

IAM_USER_ARN = re.compile(r"^arn:aws:iam::\d{12}:user/\S+$")


def test_desc_integration_shows_user_arn_and_external_id(target: Target) -> None:
    """§4: `DESC INTEGRATION <name>` shows STORAGE_AWS_IAM_USER_ARN and STORAGE_AWS_EXTERNAL_ID; if the
    external id is omitted "Snowflake automatically generates an external ID"; "Snowflake provisions a
    single IAM user for your entire Snowflake account. All S3 storage integrations in your account use
    that IAM user"."""
    first = target.create_access("DESC1", allowed_prefixes=[target.prefix("desc1")], trust=False)
    second = target.create_access("DESC2", allowed_prefixes=[target.prefix("desc2")], trust=False)
    one = describe_integration(target.admin, first.integration)
    two = describe_integration(target.admin, second.integration)

    assert IAM_USER_ARN.match(one["STORAGE_AWS_IAM_USER_ARN"]), one
    assert one["STORAGE_AWS_EXTERNAL_ID"], one
    assert one["STORAGE_AWS_ROLE_ARN"] == first.role_arn, one
    assert two["STORAGE_AWS_IAM_USER_ARN"] == one["STORAGE_AWS_IAM_USER_ARN"]
    if not target.is_live:
        # The stand-in's contract: create_account reports the account's one IAM user.
        assert one["STORAGE_AWS_IAM_USER_ARN"] == target.iam_user_arn


def test_desc_integration_needs_no_warehouse(target: Target) -> None:
    """§6: DESC INTEGRATION "does not require a running warehouse"; checked on a session whose only
    warehouse is suspended without auto-resume."""
    access = target.create_access("NOWH", allowed_prefixes=[target.prefix("nowh")], trust=False)
    warehouse = target.create_warehouse(
        "WH_DESC", properties="WAREHOUSE_SIZE = XSMALL AUTO_RESUME = FALSE INITIALLY_SUSPENDED = TRUE"
    )
    query(target.admin, f"USE WAREHOUSE {warehouse}")
    assert describe_integration(target.admin, access.integration)["STORAGE_AWS_EXTERNAL_ID"]


def test_recreated_integration_has_a_new_external_id_and_loses_its_stages(target: Target) -> None:
    """§4: "A new or recreated integration without an explicit external ID gets a different ID, so the
    trust policy must be updated"; CREATE OR REPLACE "breaks the association" with stages, fixed by
    `ALTER STAGE … SET STORAGE_INTEGRATION = …`; the IAM user stays the account's one user."""
    prefix = target.prefix("replace")
    access = target.create_access("REPLACE", allowed_prefixes=[prefix])
    stage = target.create_stage("REPLACE", access, prefix)
    target.put_file(prefix, "events", records("replace", 1))
    assert len(target.await_stage_readable(stage)) == 1
    before = describe_integration(target.admin, access.integration)

    query(target.admin, target.integration_sql(access, replace=True))
    after = target.trust_integration(access)  # the role now trusts the new external id
    assert after["STORAGE_AWS_EXTERNAL_ID"] != before["STORAGE_AWS_EXTERNAL_ID"]
    assert after["STORAGE_AWS_IAM_USER_ARN"] == before["STORAGE_AWS_IAM_USER_ARN"]

    with pytest.raises(DatabaseError):
        target.list_stage(stage)  # association broken, although the trust is right

    query(target.admin, f"ALTER STAGE {stage} SET STORAGE_INTEGRATION = {access.integration}")
    assert len(target.await_stage_readable(stage)) == 1


def test_stage_cannot_read_until_the_role_trusts_the_integration(target: Target) -> None:
    """§4: Snowflake reads through the role only once the role's trust policy names DESC INTEGRATION's
    STORAGE_AWS_IAM_USER_ARN with `sts:ExternalId` = STORAGE_AWS_EXTERNAL_ID. Before the handshake (the
    role trusts only its own account, external id 0000) `LIST @stage` fails; after it, it lists the file."""
    prefix = target.prefix("trust")
    access = target.create_access("TRUST", allowed_prefixes=[prefix], trust=False)
    stage = target.create_stage("TRUST", access, prefix)
    staged = target.put_file(prefix, "events", records("trust", 1))

    with pytest.raises(DatabaseError):
        target.list_stage(stage)

    target.trust_integration(access)
    listed = target.await_stage_readable(stage)
    assert [str(get(r, "name")).rsplit("/", 1)[-1] for r in listed] == [staged.basename]


def test_trust_with_a_wrong_external_id_is_refused(target: Target) -> None:
    """§4: the trust policy's condition is `sts:ExternalId` = the integration's external id ("isolation
    rests on the external ID plus the role policy"): the right IAM user with another id cannot assume."""
    prefix = target.prefix("extid")
    access = target.create_access("EXTID", allowed_prefixes=[prefix], trust=False)
    props = describe_integration(target.admin, access.integration)
    wrong = trust_policy(props["STORAGE_AWS_IAM_USER_ARN"], "not-" + props["STORAGE_AWS_EXTERNAL_ID"])
    target.iam.update_assume_role_policy(RoleName=access.role_name, PolicyDocument=json.dumps(wrong))
    stage = target.create_stage("EXTID", access, prefix)
    target.put_file(prefix, "events", records("extid", 1))
    with pytest.raises(DatabaseError):
        target.list_stage(stage)


def test_stage_outside_allowed_locations_is_refused(target: Target) -> None:
    """§4: STORAGE_ALLOWED_LOCATIONS lists what the integration may reach; create-storage-integration
    (https://docs.snowflake.com/en/sql-reference/sql/create-storage-integration): "The URL in the stage
    definition must align with the storage location specified for the STORAGE_ALLOWED_LOCATIONS
    parameter". The docs do not say whether CREATE STAGE or the first read refuses, so either may."""
    allowed = target.prefix("allowed")
    outside = target.prefix("outside")
    access = target.create_access("ALLOWED", allowed_prefixes=[allowed], readable_prefixes=[allowed, outside])
    target.put_file(outside, "events", records("outside", 1))
    target.put_file(allowed, "events", records("allowed", 1))

    inside_stage = target.create_stage("INSIDE", access, allowed)
    assert len(target.await_stage_readable(inside_stage)) == 1

    try:
        outside_stage = target.create_stage("OUTSIDE", access, outside)
    except DatabaseError:
        return  # refused at CREATE STAGE
    with pytest.raises(DatabaseError):
        target.list_stage(outside_stage)


def test_role_policy_limits_reads_to_its_prefix(target: Target) -> None:
    """§4 prefix scoping: the role's read-only policy allows `s3:GetObject` on `<bucket>/<prefix>/*` and
    `s3:ListBucket` with `s3:prefix` like `<prefix>/*`. With the integration allowing prefixes A and B but
    the role reading only A, a stage on A lists and a stage on B fails (the IAM lock alone holds)."""
    a = target.prefix("role-a")
    b = target.prefix("role-b")
    access = target.create_access("ROLEAB", allowed_prefixes=[a, b], readable_prefixes=[a])
    target.put_file(a, "events", records("a", 1))
    target.put_file(b, "events", records("b", 1))

    stage_a = target.create_stage("ROLE_A", access, a)
    assert len(target.await_stage_readable(stage_a)) == 1
    stage_b = target.create_stage("ROLE_B", access, b)
    with pytest.raises(DatabaseError):
        target.list_stage(stage_b)


def test_pipe_on_a_prefix_the_role_cannot_read_loads_nothing(target: Target) -> None:
    """§4 (role policy scoped to a prefix) seen from Snowpipe (§1): a pipe whose stage is on prefix B,
    through a role that reads only A, never puts B's rows in its table."""
    a = target.prefix("pipe-a")
    b = target.prefix("pipe-b")
    access = target.create_access("PIPEAB", allowed_prefixes=[a, b], readable_prefixes=[a])
    stage_b = target.create_stage("PIPE_B", access, b)
    loading = target.create_table_and_pipe("PIPE_B", access, stage_b, b)
    target.put_file(b, "events", records("b", 2))

    with contextlib.suppress(DatabaseError):  # refusing the REFRESH outright is one way of not loading
        query(target.admin, f"ALTER PIPE {loading.pipe} REFRESH")
    target.settle()
    assert query(target.admin, f"SELECT COUNT(*) AS C FROM {loading.table}") == [{"C": 0}]


def test_blocked_locations_win_over_allowed_ones(target: Target) -> None:
    """§4: `STORAGE_BLOCKED_LOCATIONS = ('s3://<bucket>/<path>/' …)` next to STORAGE_ALLOWED_LOCATIONS: a
    stage under a blocked path of an allowed one is refused (at CREATE STAGE or at LIST); a sibling path
    lists."""
    parent = target.prefix("parent")
    blocked = parent + "blocked/"
    open_path = parent + "open/"
    access = target.create_access("BLOCK", allowed_prefixes=[parent], blocked_prefixes=[blocked])
    target.put_file(blocked, "events", records("blocked", 1))
    target.put_file(open_path, "events", records("open", 1))

    assert len(target.await_stage_readable(target.create_stage("OPEN", access, open_path))) == 1
    try:
        blocked_stage = target.create_stage("BLOCKED", access, blocked)
    except DatabaseError:
        return  # refused at CREATE STAGE
    with pytest.raises(DatabaseError):
        target.list_stage(blocked_stage)


def test_stage_url_with_trailing_slash_is_one_folder(target: Target) -> None:
    """§5: "A trailing `/` limits the stage to that folder": a stage on `…/org1/` does not list
    `…/org10/…`, although the role and the integration could reach both (Floe's per-organisation
    prefixes are exactly such siblings)."""
    root = target.prefix("orgs")
    org1, org10 = root + "org1/", root + "org10/"
    access = target.create_access("ORGS", allowed_prefixes=[root])
    mine = target.put_file(org1, "events", records("org1", 1))
    target.put_file(org10, "events", records("org10", 1))

    listed = target.await_stage_readable(target.create_stage("ORG1", access, org1))
    assert [str(get(r, "name")).rsplit("/", 1)[-1] for r in listed] == [mine.basename], listed

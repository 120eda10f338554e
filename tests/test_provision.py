"""Provision, the object plan and teardown against the local stack (moto + the Snowflake stand-in)."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import snowflake.connector

from kernel import render
from kernel.config import LoadMode, Settings
from kernel.connections import Connection, ConnectionStatus, ConnectionStore, open_store
from kernel.render import Target
from kernel.secrets import read_credentials
from kernel.snowflake_session import SnowflakeError, open_session, query
from provisioner import iam
from provisioner.provision import (
    Action,
    ProvisionOutcome,
    ProvisionState,
    apply_objects,
    deferred,
    plan_objects,
    provision,
    teardown,
)

if TYPE_CHECKING:
    from devstack.snowflake.server import StandIn

BUCKET = "floe-events"


@pytest.fixture
def settings(standin: StandIn, tmp_path: Path) -> Settings:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return Settings(
        connections_dsn=f"sqlite:///{tmp_path}/connections.db",
        bucket=BUCKET,
        snowflake_host=standin.host,
        snowflake_port=standin.port,
        snowflake_protocol="http",
        lease_seconds=60,
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[ConnectionStore]:
    with open_store(settings.connections_dsn) as opened:
        opened.migrate()
        yield opened


def add_connection(store: ConnectionStore, standin: StandIn, org_id: str) -> Connection:
    """An organisation with its own stand-in account, and a connection row for it."""
    account = f"ACCT_{org_id.upper().replace('-', '_')}"
    standin.control.create_account(account)
    connection = Connection(
        connection_id=f"conn-{org_id}",
        org_id=org_id,
        account=account,
        user="FLOE_LOADER",
        role="FLOE_LOADER_ROLE",
        warehouse="COMPUTE_WH",
        database="ANALYTICS",
        schema="FLAGSMITH",
        table="FLAG_EVENTS",
        secret_ref=f"floe/connections/conn-{org_id}",
    )
    store.add(connection)
    return connection


def admin(standin: StandIn, account: str) -> Any:
    return snowflake.connector.connect(
        account=account,
        user="ADMIN",
        password="admin-password",
        host=standin.host,
        port=standin.port,
        protocol="http",
        login_timeout=10,
        network_timeout=10,
    )


def run_as_admin(standin: StandIn, account: str, script: str) -> None:
    with admin(standin, account) as session:
        for cursor in session.execute_string(script):
            cursor.fetchall()


def set_up(store: ConnectionStore, standin: StandIn, settings: Settings, org_id: str) -> Connection:
    """The customer's side: provision hands out the script, the admin runs it, provision completes."""
    connection = add_connection(store, standin, org_id)
    first = provision(connection.connection_id, settings=settings, store=store)
    assert first.state is ProvisionState.PENDING_CUSTOMER_SETUP, first.summary()
    assert first.setup_script is not None
    run_as_admin(standin, connection.account, first.setup_script)
    ready = provision(connection.connection_id, settings=settings, store=store)
    assert ready.state is ProvisionState.READY, ready.summary()
    return store.get(connection.connection_id)


def actions(outcome: ProvisionOutcome) -> dict[str, Action]:
    return {a.object: a.action for a in outcome.actions}


def put_events(prefix: str, name: str, *records: dict[str, Any]) -> str:
    key = f"{prefix}events/env_key=k/year=2025/month=01/day=01/hour=00/{name}.json.gz"
    body = gzip.compress("\n".join(json.dumps(r) for r in records).encode())
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    return key


def event(n: int) -> dict[str, Any]:
    return {
        "environment_key": "k",
        "collected_at": 1735689600000 + n,
        "sdk_language": "python",
        "sdk_version": "1.0",
        "event": "$flag_exposure",
        "feature_name": "dark_mode",
        "identifier": f"user-{n}",
        "value": True,
        "traits": json.dumps({"plan": "pro"}),
        "metadata": json.dumps({"n": n}),
        "timestamp": 1735689600000 + n,
    }


def service_session(connection: Connection, settings: Settings) -> Any:
    return open_session(connection, read_credentials(connection.secret_ref), settings, query_tag="test")


# -- provision ----------------------------------------------------------------------------------------


def test_provision_waits_for_the_customer_then_sets_everything_up(
    store: ConnectionStore, standin: StandIn, settings: Settings
) -> None:
    connection = add_connection(store, standin, "acme")
    first = provision(connection.connection_id, settings=settings, store=store)
    assert first.state is ProvisionState.PENDING_CUSTOMER_SETUP
    assert actions(first)["key pair"] is Action.CREATED
    assert "TYPE = SERVICE" in (first.setup_script or "")
    assert store.get(connection.connection_id).status is ConnectionStatus.PENDING_CUSTOMER_SETUP
    assert store.get(connection.connection_id).provisioned_target is None  # recorded only once ready
    role = boto3.client("iam").get_role(RoleName="floe-snowflake-acme")["Role"]
    trust: Any = role["AssumeRolePolicyDocument"]
    assert trust == iam.deny_all_trust()  # nobody may assume it before the handshake
    again = provision(connection.connection_id, settings=settings, store=store)
    assert actions(again)["key pair"] is Action.UNCHANGED  # the key is made once
    assert again.setup_script == first.setup_script

    run_as_admin(standin, connection.account, first.setup_script or "")
    ready = provision(connection.connection_id, settings=settings, store=store)
    assert ready.state is ProvisionState.READY, ready.summary()
    done = actions(ready)
    assert done["iam trust"] is Action.UPDATED
    assert [done[kind] for kind in ("file_format", "table", "stage", "pipe")] == [Action.CREATED] * 4
    row = store.get(connection.connection_id)
    assert row.status is ConnectionStatus.READY
    assert (row.provisioned_target, row.target_moved) == (connection.target_names, False)
    assert row.template_version == render.template_version(Target.from_connection(row, settings, "123456789012"))


def test_provision_sets_the_load_mode_only_when_asked(
    store: ConnectionStore, standin: StandIn, settings: Settings
) -> None:
    connection = set_up(store, standin, settings, "acme")
    assert store.get(connection.connection_id).load_mode is None  # the deployment's FLOE_LOAD_MODE
    provision(connection.connection_id, settings=settings, store=store, mode=LoadMode.REST)
    assert store.get(connection.connection_id).load_mode is LoadMode.REST
    provision(connection.connection_id, settings=settings, store=store)
    assert store.get(connection.connection_id).load_mode is LoadMode.REST


def test_a_second_run_changes_nothing_and_says_so(store: ConnectionStore, standin: StandIn, settings: Settings) -> None:
    connection = set_up(store, standin, settings, "acme")
    outcome = provision(connection.connection_id, settings=settings, store=store)
    assert outcome.state is ProvisionState.READY
    assert not outcome.changed
    assert set(actions(outcome).values()) <= {Action.UNCHANGED, Action.KEPT}
    assert "nothing changed" in outcome.summary()


def test_the_iam_role_reads_only_the_org_prefix_and_trusts_only_the_integration(
    store: ConnectionStore, standin: StandIn, settings: Settings
) -> None:
    connection = set_up(store, standin, settings, "acme")
    role = boto3.client("iam").get_role(RoleName="floe-snowflake-acme")["Role"]
    assert role["Path"] == "/floe/snowflake/"
    with admin(standin, connection.account) as session:
        described = {row[0]: row[2] for row in session.cursor().execute('DESC INTEGRATION "FLOE_ACME_S3"')}
    trust: Any = role["AssumeRolePolicyDocument"]
    assert trust == iam.snowflake_trust(described["STORAGE_AWS_IAM_USER_ARN"], described["STORAGE_AWS_EXTERNAL_ID"])
    policy = boto3.client("iam").get_role_policy(RoleName="floe-snowflake-acme", PolicyName=iam.POLICY_NAME)
    assert policy["PolicyDocument"] == iam.read_policy(BUCKET, "live/acme/")


def test_two_organisations_get_isolated_set_ups(store: ConnectionStore, standin: StandIn, settings: Settings) -> None:
    a = set_up(store, standin, settings, "org-a")
    b = set_up(store, standin, settings, "org-b")
    put_events("live/org-a/", "a1", event(1), event(2))
    put_events("live/org-b/", "b1", event(3))
    for connection in (a, b):
        with service_session(connection, settings) as session:
            query(session, render.render("refresh", Target.from_connection(connection, settings, "123456789012")))
        standin.control.drain(connection.account)
    with service_session(a, settings) as session:
        rows = query(session, 'SELECT IDENTIFIER, SOURCE_FILE_NAME FROM "ANALYTICS"."FLAGSMITH"."FLAG_EVENTS"')
    assert sorted(r["IDENTIFIER"] for r in rows) == ["user-1", "user-2"]
    assert all("a1.json.gz" in r["SOURCE_FILE_NAME"] for r in rows)
    with service_session(b, settings) as session:
        rows = query(session, 'SELECT IDENTIFIER FROM "ANALYTICS"."FLAGSMITH"."FLAG_EVENTS"')
    assert [r["IDENTIFIER"] for r in rows] == ["user-3"]


def test_org_a_cannot_read_org_b_prefix(store: ConnectionStore, standin: StandIn, settings: Settings) -> None:
    a = set_up(store, standin, settings, "org-a")
    set_up(store, standin, settings, "org-b")
    put_events("live/org-b/", "b1", event(1))
    other_url = f"s3://{BUCKET}/live/org-b/"
    # Lock 1: org A's integration does not allow org B's prefix.
    peek = f'CREATE STAGE "ANALYTICS"."FLAGSMITH"."PEEK" URL = \'{other_url}\' STORAGE_INTEGRATION = '
    with service_session(a, settings) as session, pytest.raises(SnowflakeError) as refused:
        query(session, peek + '"FLOE_ORG_A_S3"')
    assert refused.value.errno == 3074  # "Location … is not allowed by integration …"
    # Lock 2: even an integration that allowed it (an admin's mistake) meets org A's IAM role, which refuses.
    with admin(standin, a.account) as session:
        cursor = session.cursor()
        cursor.execute(
            "CREATE STORAGE INTEGRATION WIDE TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' ENABLED = TRUE "
            "STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/floe/snowflake/floe-snowflake-org-a' "
            f"STORAGE_ALLOWED_LOCATIONS = ('{other_url}')"
        )
        described = {row[0]: row[2] for row in cursor.execute("DESC INTEGRATION WIDE")}
        # Let the wide integration assume org A's role, as if its trust had been copied over.
        iam.trust_snowflake(
            Target.from_connection(a, settings, "123456789012"),
            described["STORAGE_AWS_IAM_USER_ARN"],
            described["STORAGE_AWS_EXTERNAL_ID"],
        )
        cursor.execute(peek + "WIDE")
        with pytest.raises(snowflake.connector.errors.Error, match=r"Access ?Denied"):
            cursor.execute('LIST @"ANALYTICS"."FLAGSMITH"."PEEK"')


def test_without_create_integration_provision_stops_with_the_admin_sql_and_resumes(
    store: ConnectionStore, standin: StandIn, settings: Settings
) -> None:
    connection = add_connection(store, standin, "acme")
    first = provision(connection.connection_id, settings=settings, store=store)
    run_as_admin(standin, connection.account, first.setup_script or "")
    # As if the admin's run had lacked the integration: the role has no integration to use.
    run_as_admin(standin, connection.account, 'DROP INTEGRATION "FLOE_ACME_S3"')
    integration_sql = render.render("integration", Target.from_connection(connection, settings, "123456789012"))

    stopped = provision(connection.connection_id, settings=settings, store=store)
    assert stopped.state is ProvisionState.NEEDS_ADMIN, stopped.summary()
    assert stopped.admin_sql is not None
    assert integration_sql in stopped.admin_sql
    assert 'GRANT USAGE ON INTEGRATION "FLOE_ACME_S3" TO ROLE "FLOE_LOADER_ROLE"' in stopped.admin_sql
    assert "file_format" not in actions(stopped)  # stopped before the objects
    assert store.get(connection.connection_id).status is ConnectionStatus.PENDING_CUSTOMER_SETUP

    run_as_admin(standin, connection.account, stopped.admin_sql)
    resumed = provision(connection.connection_id, settings=settings, store=store)
    assert resumed.state is ProvisionState.READY, resumed.summary()
    assert actions(resumed)["integration"] is Action.UNCHANGED
    assert actions(resumed)["pipe"] is Action.CREATED


def test_a_secret_holding_a_password_gets_no_setup_script(
    store: ConnectionStore, standin: StandIn, settings: Settings
) -> None:
    connection = add_connection(store, standin, "acme")
    boto3.client("secretsmanager").create_secret(Name=connection.secret_ref, SecretString='{"password": "pw"}')
    outcome = provision(connection.connection_id, settings=settings, store=store)
    assert outcome.state is ProvisionState.ERROR
    assert "password" in outcome.detail
    assert outcome.setup_script is None


# -- template changes ---------------------------------------------------------------------------------


def test_a_changed_pipe_is_recreated_only_after_settling(
    store: ConnectionStore, standin: StandIn, settings: Settings, request: pytest.FixtureRequest
) -> None:
    connection = set_up(store, standin, settings, "acme")
    old_version = store.get(connection.connection_id).template_version
    request.getfixturevalue("edited_pipe_template")
    target = Target.from_connection(connection, settings, "123456789012")
    assert render.template_version(target) != old_version
    lease = store.acquire_lease(connection.connection_id, "test-tick", timedelta(minutes=1))
    assert lease is not None
    with service_session(connection, settings) as session:
        plan = plan_objects(session, target)
        assert plan.recreates_existing_pipe
        waiting = deferred(connection.connection_id, target, plan)
        assert waiting.state is ProvisionState.DEFERRED
        assert actions(waiting)["pipe"] is Action.DEFERRED
        assert store.get(connection.connection_id).template_version == old_version
        settled = apply_objects(session, target, connection, lease, plan, store=store)
    assert settled.state is ProvisionState.READY
    assert actions(settled) == {
        "file_format": Action.UNCHANGED,
        "table": Action.KEPT,
        "stage": Action.UNCHANGED,
        "pipe": Action.RECREATED,
    }
    assert store.get(connection.connection_id).template_version == render.template_version(target)
    store.release_lease(lease)
    again = provision(connection.connection_id, settings=settings, store=store)
    assert again.state is ProvisionState.READY
    assert not again.changed


def test_provision_alone_never_recreates_a_live_pipe(
    store: ConnectionStore, standin: StandIn, settings: Settings, request: pytest.FixtureRequest
) -> None:
    connection = set_up(store, standin, settings, "acme")
    request.getfixturevalue("edited_pipe_template")
    outcome = provision(connection.connection_id, settings=settings, store=store)
    assert outcome.state is ProvisionState.DEFERRED
    assert actions(outcome)["pipe"] is Action.DEFERRED
    assert store.get(connection.connection_id).status is ConnectionStatus.READY  # the old pipe still loads


# -- teardown -----------------------------------------------------------------------------------------


def test_teardown_drops_pipe_and_stage_keeps_the_table_and_removes_the_role(
    store: ConnectionStore, standin: StandIn, settings: Settings
) -> None:
    connection = set_up(store, standin, settings, "acme")
    outcome = teardown(connection.connection_id, settings=settings, store=store)
    assert {a.object: a.action for a in outcome.actions} == {
        "pipe": Action.DROPPED,
        "stage": Action.DROPPED,
        "iam role": Action.DROPPED,
    }
    assert "DROP INTEGRATION" in outcome.detail
    with service_session(connection, settings) as session:
        assert query(session, 'SHOW TABLES LIKE \'FLAG_EVENTS\' IN SCHEMA "ANALYTICS"."FLAGSMITH"')
    again = teardown(connection.connection_id, settings=settings, store=store, drop_table=True)
    assert {a.object: a.action for a in again.actions} == {
        "pipe": Action.ABSENT,
        "stage": Action.ABSENT,
        "table": Action.DROPPED,
        "iam role": Action.ABSENT,
    }


def test_a_failed_reprovision_keeps_a_ready_connection_in_service(
    store: ConnectionStore, standin: StandIn, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = set_up(store, standin, settings, "acme")
    with socket.socket() as closed:  # a port nothing listens on once this socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")  # the stack is unreachable
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    unreachable = replace(settings, aws_account_id="123456789012")
    outcome = provision(connection.connection_id, settings=unreachable, store=store)
    assert outcome.state is ProvisionState.ERROR
    assert outcome.transient  # the CLI says: try again
    row = store.get(connection.connection_id)
    assert (row.status, row.active) == (ConnectionStatus.READY, True)  # the loader keeps loading it
    assert (row.status_detail or "").startswith("still ready; the last provision ended error")


def test_teardown_takes_the_connection_out_of_service(
    store: ConnectionStore, standin: StandIn, settings: Settings
) -> None:
    connection = set_up(store, standin, settings, "acme")
    teardown(connection.connection_id, settings=settings, store=store)
    row = store.get(connection.connection_id)
    assert (row.status, row.active) == (ConnectionStatus.PENDING_CUSTOMER_SETUP, False)
    assert "floe provision" in (row.status_detail or "")


def test_busy_connection_is_left_alone(store: ConnectionStore, standin: StandIn, settings: Settings) -> None:
    connection = add_connection(store, standin, "acme")
    lease = store.acquire_lease(connection.connection_id, "a-tick", timedelta(minutes=1))
    assert lease is not None
    outcome = provision(connection.connection_id, settings=settings, store=store)
    assert outcome.state is ProvisionState.BUSY
    assert outcome.actions == ()
    secrets = boto3.client("secretsmanager")
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId=connection.secret_ref)  # not even the key was made


# -- key rotation -------------------------------------------------------------------------------------


def test_key_rotation_uses_the_free_slot_and_never_breaks_a_login(
    store: ConnectionStore, standin: StandIn, settings: Settings
) -> None:
    from provisioner.rotation import RotationState, rotate_key

    connection = set_up(store, standin, settings, "acme")
    old = read_credentials(connection.secret_ref)
    started = rotate_key(connection.connection_id, settings=settings, store=store)
    assert started.state is RotationState.WAITING
    assert 'ALTER USER "FLOE_LOADER" SET RSA_PUBLIC_KEY_2 = ' in (started.customer_sql or "")
    assert read_credentials(connection.secret_ref) == old  # the loader keeps the current key
    again = rotate_key(connection.connection_id, settings=settings, store=store)
    assert (again.state, again.customer_sql) == (RotationState.WAITING, started.customer_sql)  # not regenerated

    run_as_admin(standin, connection.account, started.customer_sql or "")
    with service_session(connection, settings) as session:  # the old key still logs in
        assert query(session, "SELECT 1")
    done = rotate_key(connection.connection_id, settings=settings, store=store)
    assert done.state is RotationState.ROTATED, done.summary()
    assert done.customer_sql is None  # the stand-in let the service user remove the old key itself
    assert read_credentials(connection.secret_ref) != old
    with service_session(connection, settings) as session:  # the loader's secret now holds the new key
        assert query(session, "SELECT 1")
    with pytest.raises(SnowflakeError):
        open_session(connection, old, settings, query_tag="test")  # the old key is gone
    with admin(standin, connection.account) as session:
        described = {row[0]: row[1] for row in session.cursor().execute('DESC USER "FLOE_LOADER"')}
    assert described["RSA_PUBLIC_KEY_FP"] is None
    assert described["RSA_PUBLIC_KEY_2_FP"]
    next_rotation = rotate_key(connection.connection_id, settings=settings, store=store)
    assert "SET RSA_PUBLIC_KEY = " in (next_rotation.customer_sql or "")  # back to the first slot

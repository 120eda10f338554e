"""The product on a real Snowflake account and a real S3 bucket: onboard a throwaway organisation, load
its files with real Snowpipe, check every event arrived exactly once and the corrupt file was
dead-lettered, then remove everything it created. Needs the variables in docs/live.md."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import snowflake.connector
from cryptography.hazmat.primitives import serialization

from devstack.events import write_corrupt_file, write_event_file
from kernel import config
from kernel.connections import Connection, open_store
from loader.handler import run
from loader.tick import Deadline
from provisioner.dead_letters import list_dead_letters
from provisioner.provision import ProvisionState, provision, teardown

EVENTS = 25
QUIET_AFTER_SECONDS = 900  # real Snowpipe usually loads within a minute or two


def admin() -> snowflake.connector.SnowflakeConnection:
    env = os.environ
    credentials: dict[str, Any] = {"password": env.get("FLOE_LIVE_SNOWFLAKE_PASSWORD")}
    if key_path := env.get("FLOE_LIVE_SNOWFLAKE_PRIVATE_KEY_PATH"):
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        credentials = {"authenticator": "SNOWFLAKE_JWT", "private_key": key}
    return snowflake.connector.connect(
        account=env["FLOE_LIVE_SNOWFLAKE_ACCOUNT"],
        user=env["FLOE_LIVE_SNOWFLAKE_USER"],
        role=env.get("FLOE_LIVE_SNOWFLAKE_ROLE", "ACCOUNTADMIN"),
        warehouse=env["FLOE_LIVE_SNOWFLAKE_WAREHOUSE"],
        **credentials,
    )


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[config.Settings, Connection]]:
    run_id = uuid.uuid4().hex[:8]
    org_id = f"live-{run_id}"
    environment = {
        "FLOE_CONNECTIONS_DSN": f"sqlite:///{tmp_path}/connections.db",
        "FLOE_BUCKET": os.environ["FLOE_LIVE_S3_BUCKET"],
        "FLOE_LIVE_PREFIX": "floe-live-test/{org_id}/",
        "FLOE_DEAD_LETTER_PREFIX": "floe-live-dead-letter/{org_id}/",
        "FLOE_IAM_ROLE_PATH": "/floe-live-test/",
        "FLOE_SECRET_PREFIX": "floe-live-test/",
        "FLOE_POLL_FIRST_SECONDS": "20",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = config.load()
    suffix = run_id.upper()
    connection = Connection(
        connection_id=f"conn-{org_id}",
        org_id=org_id,
        account=os.environ["FLOE_LIVE_SNOWFLAKE_ACCOUNT"],
        user=f"FLOE_LIVE_LOADER_{suffix}",
        role=f"FLOE_LIVE_LOADER_{suffix}",
        warehouse=os.environ["FLOE_LIVE_SNOWFLAKE_WAREHOUSE"],
        database=f"FLOE_LIVE_{suffix}",
        schema="FLAGSMITH",
        table="FLAG_EVALUATIONS",
        secret_ref=f"{settings.secret_prefix}{org_id}",
    )
    with open_store(settings.connections_dsn) as store:
        store.migrate()
        store.add(connection)
    try:
        yield settings, connection
    finally:
        _clean_up(settings, connection)


def _clean_up(settings: config.Settings, connection: Connection) -> None:
    teardown(connection.connection_id, drop_table=True, settings=settings)
    with admin() as session:
        for statement in (
            f'DROP DATABASE IF EXISTS "{connection.database}"',
            f'DROP USER IF EXISTS "{connection.user}"',
            f'DROP ROLE IF EXISTS "{connection.role}"',
            f'DROP INTEGRATION IF EXISTS "FLOE_{connection.org_id.upper().replace("-", "_")}_S3"',
        ):
            session.cursor().execute(statement)
    s3 = boto3.client("s3")
    for prefix in (settings.live_prefix_for(connection.org_id), settings.dead_letter_prefix_for(connection.org_id)):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix)
        for page in pages:
            if page.get("Contents"):
                s3.delete_objects(
                    Bucket=settings.bucket, Delete={"Objects": [{"Key": o["Key"]} for o in page["Contents"]]}
                )
    boto3.client("secretsmanager").delete_secret(SecretId=connection.secret_ref, ForceDeleteWithoutRecovery=True)


def test_the_product_delivers_to_a_real_account_exactly_once(live: tuple[config.Settings, Connection]) -> None:
    settings, connection = live
    first = provision(connection.connection_id, settings=settings)
    assert first.state is ProvisionState.PENDING_CUSTOMER_SETUP, first.summary()
    assert first.setup_script is not None
    with admin() as session:
        session.execute_string(first.setup_script)  # the customer's admin runs the setup script
    ready = provision(connection.connection_id, settings=settings)
    assert ready.state is ProvisionState.READY, ready.summary()

    s3, prefix = boto3.client("s3"), settings.live_prefix_for(connection.org_id)
    written = [write_event_file(s3, settings.bucket, prefix, f"part-{i}", events=EVENTS, seed=i) for i in range(2)]
    corrupt = write_corrupt_file(s3, settings.bucket, prefix, "part-corrupt")

    deadline = time.monotonic() + QUIET_AFTER_SECONDS
    delivered = 0
    while time.monotonic() < deadline:
        report = run({"connection_id": connection.connection_id}, Deadline.after(240))
        assert report["status"] in ("ok", "partial", "idle"), report
        delivered += report["events_delivered"]
        if report["status"] == "idle":
            break
    assert delivered == 2 * EVENTS
    [dead] = list_dead_letters(connection.connection_id, settings)
    assert dead["original_key"] == corrupt
    with admin() as session:
        [(rows, files)] = (
            session.cursor().execute(
                f'SELECT COUNT(*), COUNT(DISTINCT SOURCE_FILE_NAME) FROM "{connection.database}".'
                f'"{connection.schema}"."{connection.table}"'
            )
            or []
        )
    assert (rows, files) == (2 * EVENTS, len(written))

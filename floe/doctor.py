"""`floe doctor --live`: settle, on a real account, the readings the Snowflake stand-in offers where the
docs are silent (docs/live.md). Provisions a scratch connection, runs provisioner.readings_probe on it,
prints "question → observed → matching readings", writes the same as JSON, and tears everything down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from devstack.events import evaluation_events, event_key, gzip_ndjson
from devstack.snowflake.readings import agreeing, matching
from kernel import config
from kernel.connections import Connection, open_store
from kernel.errors import FloeError
from kernel.layout import DEFAULT_LAYOUT
from kernel.render import SCRATCH_OBJECTS, Target, render
from kernel.secrets import read_credentials
from kernel.snowflake_session import open_session, query
from provisioner.provision import ProvisionState, provision, teardown
from provisioner.readings_probe import Findings, ProbeFiles, probe

REQUIRED = (
    "FLOE_LIVE_SNOWFLAKE_ACCOUNT",
    "FLOE_LIVE_SNOWFLAKE_USER",
    "FLOE_LIVE_SNOWFLAKE_WAREHOUSE",
    "FLOE_LIVE_S3_BUCKET",
)
CREDENTIALS = ("FLOE_LIVE_SNOWFLAKE_PASSWORD", "FLOE_LIVE_SNOWFLAKE_PRIVATE_KEY_PATH")
QUESTIONS = {
    "queued_in_history": "a queued file in COPY_HISTORY",
    "resend_failed": "a failed file and the next REFRESH",
    "bucket_paths": "FILE_NAME / STAGE_LOCATION",
    "url_encoded": "special characters in FILE_NAME",
    "refresh_rows": "REFRESH output columns",
    "requeue": "re-queue of a queued file",
}


def add_doctor(commands: Any) -> None:
    doctor = commands.add_parser("doctor", help="settle the stand-in's readings on a real Snowflake account")
    doctor.add_argument("--live", action="store_true", required=True, help="run the probe on a real account")
    doctor.add_argument("--json", type=Path, default=Path("floe-doctor.json"), help="where to write the table")
    doctor.set_defaults(command=_doctor, interrupted=lambda: "the scratch connection may be left: run it again")


def _doctor(args: argparse.Namespace) -> int:
    if lacking := missing(os.environ):
        print("floe doctor --live needs a Snowflake account and a bucket; set " + ", ".join(lacking), file=sys.stderr)
        return 2
    rows, _ = run_live(os.environ, args.json)
    print(render_table(rows))
    print(f"written to {args.json}", file=sys.stderr)
    return 0


def missing(env: Mapping[str, str]) -> list[str]:
    """The variables a live run still needs (one of the two credentials)."""
    lacking = [name for name in REQUIRED if not env.get(name)]
    if not any(env.get(name) for name in CREDENTIALS):
        lacking.append(" or ".join(CREDENTIALS))
    return lacking


def probe_files(live_prefix: str) -> ProbeFiles:
    """Three files in the default layout (the scratch pipe's PATTERN loads only those)."""
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    good = gzip_ndjson(evaluation_events(2, "floe-doctor", seed=1, at=now))

    def key(name: str) -> str:
        return event_key(live_prefix, "floe-doctor", now, name)

    return ProbeFiles(key(f"plain-{run}"), key(f"a b+c%é-{run}"), key(f"corrupt-{run}"), good, b"not gzip")


def table(found: Findings) -> list[dict[str, str]]:
    """One row per question: what was seen, and the stand-in readings that agree with it."""
    rows = [
        {
            "question": question,
            "observed": found.details.get(question, "not observed"),
            "readings": ", ".join(agreeing(axis, found.axes.get(axis))),
        }
        for axis, question in QUESTIONS.items()
    ]
    rows += [
        {"question": f"{statement}: warehouse", "observed": warehouse, "readings": "-"}
        for statement, warehouse in found.warehouses.items()
    ]
    overall = matching(found.axes) or ["none of the presets: a new reading is needed"]
    return [*rows, {"question": "every answer together", "observed": "-", "readings": ", ".join(overall)}]


def render_table(rows: list[dict[str, str]]) -> str:
    widths = [max(len(row[k]) for row in rows) for k in ("question", "observed")]
    return "\n".join(f"{r['question']:<{widths[0]}}  {r['observed']:<{widths[1]}}  {r['readings']}" for r in rows)


def probe_connection(settings: config.Settings, connection: Connection, **timing: float) -> Findings:
    """Run the readings probe as the connection's loader, in its live prefix (`timing`: the probe's
    `timeout` and `poll_seconds`)."""
    target = Target.from_connection(connection, settings, config.aws_account_id(settings))
    credentials = read_credentials(connection.secret_ref, boto3.client("secretsmanager"))
    session = open_session(connection, credentials, settings, query_tag='{"app": "floe-doctor"}')
    s3 = boto3.client("s3")

    def put(key: str, body: bytes) -> None:
        s3.put_object(Bucket=settings.bucket, Key=key, Body=body)

    try:
        files = probe_files(settings.live_prefix_for(connection.org_id))
        return probe(lambda sql: query(session, sql), put, target, files, **timing)
    finally:
        session.close()


def run_live(env: Mapping[str, str], out: Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Provision a scratch connection, probe it, tear it down; the table and the JSON document."""
    with _scratch(env) as (settings, connection):
        found = probe_connection(settings, connection)
    rows = table(found)
    document = {"account": env["FLOE_LIVE_SNOWFLAKE_ACCOUNT"], "axes": found.axes, "table": rows}
    out.write_text(json.dumps(document, indent=2))
    return rows, document


@contextlib.contextmanager
def _scratch(env: Mapping[str, str]) -> Iterator[tuple[config.Settings, Connection]]:
    suffix = uuid.uuid4().hex[:8].upper()
    org_id = f"doctor-{suffix.lower()}"
    scratch = {
        **os.environ,
        "FLOE_CONNECTIONS_DSN": f"sqlite:///{Path.cwd() / f'.floe-doctor-{suffix}.db'}",
        "FLOE_BUCKET": env["FLOE_LIVE_S3_BUCKET"],
        "FLOE_LIVE_PREFIX": "floe-doctor/{org_id}/",
        "FLOE_DEAD_LETTER_PREFIX": "floe-doctor-dead-letter/{org_id}/",
        "FLOE_IAM_ROLE_PATH": "/floe-doctor/",
        "FLOE_SECRET_PREFIX": "floe-doctor/",
        "FLOE_LAYOUT": DEFAULT_LAYOUT,
    }
    settings = config.load(scratch)
    connection = Connection(
        connection_id=f"conn-{org_id}",
        org_id=org_id,
        account=env["FLOE_LIVE_SNOWFLAKE_ACCOUNT"],
        user=f"FLOE_DOCTOR_{suffix}",
        role=f"FLOE_DOCTOR_{suffix}",
        warehouse=env["FLOE_LIVE_SNOWFLAKE_WAREHOUSE"],
        database=f"FLOE_DOCTOR_{suffix}",
        schema="FLAGSMITH",
        table="FLAG_EVALUATIONS",
        secret_ref=f"{settings.secret_prefix}{org_id}",
    )
    with open_store(settings.connections_dsn) as store:
        store.migrate()
        store.add(connection)
        try:
            first = provision(connection.connection_id, settings=settings, store=store)
            with _admin(env) as admin:
                admin.execute_string(first.setup_script or "")
            ready = provision(connection.connection_id, settings=settings, store=store)
            if ready.state is not ProvisionState.READY:
                raise DoctorError(f"the scratch connection did not become ready: {ready.detail}")
            yield settings, store.get(connection.connection_id)
        finally:
            _clean_up(env, settings, store.get(connection.connection_id), store)
    Path(settings.connections_dsn.removeprefix("sqlite:///")).unlink(missing_ok=True)


def _clean_up(env: Mapping[str, str], settings: config.Settings, connection: Connection, store: Any) -> None:
    with contextlib.suppress(Exception):
        teardown(connection.connection_id, drop_table=True, settings=settings, store=store)
    target = Target.from_connection(connection, settings, config.aws_account_id(settings))
    with _admin(env) as admin:
        for name in SCRATCH_OBJECTS:
            admin.cursor().execute(render("drop_scratch", target, object=name))
    s3 = boto3.client("s3")
    for prefix in (settings.live_prefix_for(connection.org_id), settings.dead_letter_prefix_for(connection.org_id)):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=settings.bucket, Key=item["Key"])
    with contextlib.suppress(Exception):
        boto3.client("secretsmanager").delete_secret(SecretId=connection.secret_ref, ForceDeleteWithoutRecovery=True)


def _admin(env: Mapping[str, str]) -> Any:
    import snowflake.connector

    credentials: dict[str, Any] = {"password": env.get("FLOE_LIVE_SNOWFLAKE_PASSWORD")}
    if key_path := env.get("FLOE_LIVE_SNOWFLAKE_PRIVATE_KEY_PATH"):
        credentials = {"private_key_file": key_path}
    return snowflake.connector.connect(
        account=env["FLOE_LIVE_SNOWFLAKE_ACCOUNT"],
        user=env["FLOE_LIVE_SNOWFLAKE_USER"],
        role=env.get("FLOE_LIVE_SNOWFLAKE_ROLE", "ACCOUNTADMIN"),
        warehouse=env["FLOE_LIVE_SNOWFLAKE_WAREHOUSE"],
        **credentials,
    )


class DoctorError(FloeError):
    """The scratch connection could not be set up."""

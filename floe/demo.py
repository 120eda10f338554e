"""`floe demo`: the whole product on the embedded local stack, end to end, in one process.

Two organisations, each with its own Snowflake account (the stand-in), are onboarded exactly as in
production (`provision`, the customer admin's setup script, `provision` again); sample evaluation files
(one of them corrupt) are written under their prefixes; one tick runs for each; the summary says what
was delivered, what was dead-lettered and why, what each table now holds, and what core received.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3

from devstack.events import write_corrupt_file, write_event_file
from devstack.scenario import onboard, run_as_admin_query
from devstack.stack import LocalStack
from kernel import config
from kernel.connections import Connection, open_store
from loader.handler import run
from loader.tick import Deadline
from provisioner.dead_letters import list_dead_letters

Progress = Callable[[str], None] | None
ORGANISATIONS = (("acme", "ACME_ACCOUNT", 3, 50), ("globex", "GLOBEX_ACCOUNT", 2, 40))


def run_demo(progress: Progress = None) -> dict[str, Any]:
    say = progress or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="floe-demo-") as workdir, LocalStack() as stack:
        say("local stack up: moto (S3, IAM, STS, Secrets Manager), Snowflake stand-in, core receiver")
        environment = {
            **stack.environment(),
            "FLOE_CONNECTIONS_DSN": f"sqlite:///{workdir}/connections.db",
            "FLOE_POLL_FIRST_SECONDS": "0.5",
            "FLOE_POLL_MAX_SECONDS": "1",
            "FLOE_TIME_MARGIN_SECONDS": "2",
        }
        with _environment(environment):
            settings = config.load()
            with open_store(settings.connections_dsn) as store:
                store.migrate()
                connections = [
                    _onboard(stack, settings, store, org_id=org, account=account, say=say)
                    for org, account, *_ in ORGANISATIONS
                ]
            for connection, (_, _, files, events) in zip(connections, ORGANISATIONS, strict=True):
                _write_samples(settings, connection, files, events, corrupt=connection.org_id == "acme", say=say)
            reports = {}
            for connection in connections:
                say(f"tick for {connection.connection_id}")
                reports[connection.org_id] = run({"connection_id": connection.connection_id}, Deadline.after(60))
            return _summary(stack, settings, connections, reports)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _onboard(
    stack: LocalStack, settings: config.Settings, store: Any, *, org_id: str, account: str, say: Callable[[str], None]
) -> Connection:
    say(f"onboarding {org_id}: provision → customer admin runs the setup script in {account} → provision")
    connection = onboard(org_id, account, standin=stack.snowflake, settings=settings, store=store)
    stack.snowflake.control.configure(account, load_delay_seconds=0.2)  # Snowpipe loads in the background
    return connection


def _write_samples(
    settings: config.Settings,
    connection: Connection,
    files: int,
    events: int,
    *,
    corrupt: bool,
    say: Callable[[str], None],
) -> None:
    s3 = boto3.client("s3")
    prefix = settings.live_prefix_for(connection.org_id)
    at = datetime.now(UTC)
    for index in range(files):
        write_event_file(s3, settings.bucket, prefix, f"part-{index:04d}", events=events, seed=index, at=at)
    if corrupt:
        write_corrupt_file(s3, settings.bucket, prefix, "part-corrupt", at=at)
    say(
        f"wrote {files} files of {events} events{' and 1 corrupt file' if corrupt else ''} under s3://{settings.bucket}/{prefix}"
    )


def _summary(
    stack: LocalStack, settings: config.Settings, connections: list[Connection], reports: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    received = {run["organisation_id"]: run for run in stack.core.runs()}
    organisations = {}
    for connection in connections:
        report = reports[connection.org_id]
        table = f"{connection.database}.{connection.schema}.{connection.table}"
        [(rows,)] = run_as_admin_query(stack.snowflake, connection.account, f"SELECT COUNT(*) FROM {table}")
        organisations[connection.org_id] = {
            "snowflake_account": connection.account,
            "table": table,
            "run_status": report["status"],
            "error": report["error"],
            "events_delivered": report["events_delivered"],
            "files_loaded": report["files_loaded"],
            "rows_in_table": rows,
            "dead_letters": [
                {"file": entry["original_key"], "status": entry["status"], "reason": entry["reason"]}
                for entry in list_dead_letters(connection.connection_id, settings)
            ],
            "live_files_left": report["files_in_flight"],
            "metrics_received_by_core": received.get(connection.org_id),
        }
    return {"organisations": organisations}


def format_summary(summary: dict[str, Any]) -> str:
    lines = ["", "Floe demo: one tick per organisation on the local stack", ""]
    for org_id, org in summary["organisations"].items():
        lines.append(f"{org_id}  (Snowflake account {org['snowflake_account']}, table {org['table']})")
        lines.append(f"  run                {org['run_status']}" + (f": {org['error']}" if org["error"] else ""))
        lines.append(f"  events delivered   {org['events_delivered']} from {org['files_loaded']} files")
        lines.append(f"  rows in its table  {org['rows_in_table']}")
        lines.append(f"  files left live    {org['live_files_left']}")
        for dead in org["dead_letters"]:
            lines.append(f"  dead-lettered      {dead['file']}\n                     {dead['reason']}")
        metrics = org["metrics_received_by_core"]
        if metrics:
            lines.append(
                f"  core received      run {metrics['run_id'][:8]}…: {metrics['events_delivered']} events, "
                f"{metrics['files_dead_lettered']} dead-lettered, completed {metrics['completed_at']}"
            )
        else:
            lines.append("  core received      nothing")
        lines.append("")
    return "\n".join(lines)

"""The handler's refusals and the idle tick: real moto, a real SQLite store, the stand-in's counters.

An AWS request recorder observes the real HTTP requests the code sends (it changes nothing).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.events import write_event_file
from devstack.snowflake.server import StandIn
from kernel import config, logs
from kernel.connections import Connection, ConnectionStatus, open_store, target_names
from loader.handler import handler, run
from loader.tick import Deadline

BUCKET = "floe-events"


@pytest.fixture
def requests(standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_operations: list[str]) -> list[str]:
    """Configures the loader for the local stack and yields the AWS operations it sends."""
    monkeypatch.setenv("FLOE_CONNECTIONS_DSN", f"sqlite:///{tmp_path}/connections.db")
    monkeypatch.setenv("FLOE_SNOWFLAKE_HOST", standin.host)
    monkeypatch.setenv("FLOE_SNOWFLAKE_PORT", str(standin.port))
    monkeypatch.setenv("FLOE_SNOWFLAKE_PROTOCOL", "http")
    monkeypatch.setenv("FLOE_AWS_ACCOUNT_ID", "123456789012")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    standin.control.create_account("ACME")
    with open_store(f"sqlite:///{tmp_path}/connections.db") as store:
        store.migrate()
        store.add(connection("c-ready", ConnectionStatus.READY))
        store.add(connection("c-pending", ConnectionStatus.PENDING_CUSTOMER_SETUP))
        store.add(connection("c-off", ConnectionStatus.READY, active=False))
    aws_operations.clear()  # the set-up's own calls; the test reads only what the loader sends
    return aws_operations


def connection(connection_id: str, status: ConnectionStatus, active: bool = True) -> Connection:
    return Connection(
        connection_id=connection_id,
        org_id="acme",
        account="ACME",
        user="FLOE_LOADER",
        role="FLOE_LOADER",
        warehouse="COMPUTE_WH",
        database="ANALYTICS",
        schema="FLAGS",
        table="EVALUATIONS",
        secret_ref="floe/connections/acme",
        active=active,
        status=status,
        provisioned_target=target_names("ANALYTICS", "FLAGS", "EVALUATIONS"),
    )


def tick(event: Any) -> dict[str, Any]:
    return run(event, Deadline.after(30))


@pytest.mark.parametrize("event", [None, {}, {"connection_id": 7}, {"connection_id": "c-ready", "x": 1}])
def test_a_malformed_event_is_refused_and_touches_nothing(requests: list[str], event: Any) -> None:
    report = tick(event)
    assert report["status"] == "error"
    assert "connection_id" in report["error"] or "unexpected field" in report["error"]
    assert requests == []


def test_an_unknown_connection_says_what_to_do_and_touches_nothing(requests: list[str]) -> None:
    report = tick({"connection_id": "c-nope"})
    assert report["status"] == "error"
    assert "unknown connection 'c-nope'" in report["error"]
    assert requests == []


@pytest.mark.parametrize(("connection_id", "reason"), [("c-off", "inactive"), ("c-pending", "pending_customer_setup")])
def test_inactive_and_unprovisioned_connections_are_skipped(
    requests: list[str], connection_id: str, reason: str
) -> None:
    report = tick({"connection_id": connection_id})
    assert report["status"] == "skipped"
    assert reason in report["reason"]
    assert requests == []


def test_a_held_lease_skips_the_tick_without_error(requests: list[str], tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/connections.db") as store:
        assert store.acquire_lease("c-ready", "another-run", timedelta(minutes=5)) is not None
    report = tick({"connection_id": "c-ready"})
    assert report["status"] == "skipped"
    assert "lease" in report["reason"]
    assert requests == []


def test_an_idle_tick_lists_once_reads_no_secret_and_never_logs_in(requests: list[str], standin: StandIn) -> None:
    report = tick({"connection_id": "c-ready"})
    assert report["status"] == "idle"
    assert requests == ["ListObjectsV2"]
    stats = standin.control.stats("ACME")
    assert stats["logins"] == 0
    assert stats["statements"] == 0


@pytest.mark.parametrize(
    ("environ", "error"),
    [
        ({"FLOE_CONNECTIONS_DSN": "postgresql://floe:CANARY%zz@127.0.0.1/db"}, "(malformed DSN)"),
        ({"FLOE_CONNECTIONS_DSN": "postgresql://floe:CANARY@127.0.0.1:1/db"}, "(unreachable)"),
        ({"FLOE_CONNECTIONS_DSN_SECRET": "floe/missing"}, "cannot read FLOE_CONNECTIONS_DSN_SECRET"),
        ({"FLOE_BUCKET": "CANARY_Bad"}, "FLOE_BUCKET"),
    ],
)
def test_a_bad_setting_dsn_or_store_gives_one_error_report_and_one_error_line(
    requests: list[str], monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], error: str
) -> None:
    monkeypatch.delenv("FLOE_CONNECTIONS_DSN")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with recorded() as lines:
        report = tick({"connection_id": "c-ready"})
    assert (report["status"], report["connection_id"]) == ("error", "c-ready")
    assert error in report["error"]
    assert [line["msg"] for line in lines if line["level"] == "ERROR"] == ["run report"]
    assert "CANARY" not in json.dumps(lines).replace("CANARY_Bad", "")


def test_the_core_token_is_read_only_to_post_and_an_unreadable_one_skips_metrics_with_a_warning(
    requests: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOE_CORE_API_URL", "https://core.invalid/runs")
    monkeypatch.setenv("FLOE_CORE_API_TOKEN_SECRET", "floe/core-token")
    assert tick({"connection_id": "c-ready"})["status"] == "idle"
    assert "GetSecretValue" not in requests  # an idle tick posts nothing, so it reads no token
    write_event_file(boto3.client("s3"), BUCKET, config.load().live_prefix_for("acme"), "a")
    report = tick({"connection_id": "c-ready"})  # busy, and failing: its connection secret does not exist
    assert (report["status"], report["metrics_posted"]) == ("error", False)
    assert any(
        "metrics not sent" in warning and "FLOE_CORE_API_TOKEN_SECRET" in warning for warning in report["warnings"]
    )


def test_every_line_of_a_tick_names_the_request_the_connection_and_the_run(requests: list[str]) -> None:
    class Context:
        aws_request_id, function_name = "req-1", "floe-loader"

        def get_remaining_time_in_millis(self) -> int:
            return 30_000

    with recorded() as lines:
        first = handler({"connection_id": "c-ready"}, Context())
        handler({"connection_id": "c-ready"}, Context())
    assert [line["msg"] for line in lines] == ["tick started", "run report"] * 2
    for line in lines:
        assert (line["request_id"], line["function_name"], line["connection_id"]) == ("req-1", "floe-loader", "c-ready")
        assert line["level"] == "INFO"
    assert lines[0]["run_id"] == lines[1]["run_id"] == first["run_id"] != lines[2]["run_id"]
    # This process may have served an invocation before this test; the next one is warm either way.
    assert lines[2]["cold_start"] is False


@contextmanager
def recorded() -> Iterator[list[dict[str, Any]]]:
    """The `floe` logger's lines, as the JSON the Lambda writes."""
    lines: list[dict[str, Any]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(logs.JsonFormatter().format(record)))

    capture = Capture()
    logger = logging.getLogger("floe")
    logger.addHandler(capture)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)


def test_every_working_run_of_a_known_connection_is_kept_in_its_history(requests: list[str], tmp_path: Path) -> None:
    assert tick({"connection_id": "c-ready"})["status"] == "idle"  # no rule reads an idle run: not kept
    assert tick({"connection_id": "c-off"})["status"] == "skipped"
    write_event_file(boto3.client("s3"), BUCKET, config.load().live_prefix_for("acme"), "a")
    report = tick({"connection_id": "c-ready"})  # busy, and failing: its connection secret does not exist
    tick({"connection_id": "c-nope"})  # no row: nothing to keep it under
    with open_store(f"sqlite:///{tmp_path}/connections.db") as store:
        since = datetime.now(UTC) - timedelta(hours=1)
        [kept] = store.runs("c-ready", since=since)
        assert (kept.run_id, kept.status) == (report["run_id"], "error")
        assert store.runs("c-off", since=since) == store.runs("c-nope", since=since) == []


def test_a_history_that_cannot_be_written_never_fails_the_tick(requests: list[str], tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "connections.db")) as raw:
        raw.execute("DROP TABLE runs")
    assert tick({"connection_id": "c-ready"})["status"] == "idle"

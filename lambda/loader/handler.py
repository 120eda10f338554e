"""The AWS Lambda entry point: `loader.handler.handler({"connection_id": "..."}, context)`.

Import cost matters here (cold start): boto3 is imported at module level because every tick lists S3;
the Snowflake connector is imported only when a tick has files to load.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3

from kernel import config, logs
from kernel.connections import ConnectionStore, open_store
from loader.event import InvalidEvent, LoaderEvent
from loader.metrics import CoreMetrics
from loader.report import RunReport, RunStatus
from loader.tick import Deadline, Edges, run_tick

log = logs.get("loader")


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    logs.configure()
    deadline = Deadline(lambda: context.get_remaining_time_in_millis() / 1000)
    return run(event, deadline)


def run(event: Any, deadline: Deadline) -> dict[str, Any]:
    """Validate, run one tick, log the report as one line and return it (never raises for a bad tick)."""
    try:
        parsed = LoaderEvent.parse(event)
    except InvalidEvent as error:
        report = RunReport(run_id=str(uuid.uuid4()), connection_id="", started_at=datetime.now(UTC))
        report.status, report.error, report.completed_at = RunStatus.ERROR, str(error), datetime.now(UTC)
        return _logged(report, tick_id=None)
    settings = config.load()
    store = open_store(settings.connections_dsn)
    try:
        report = run_tick(parsed.connection_id, edges_for(settings, store), deadline)
        _remember(store, report)
    finally:
        store.close()
    return _logged(report, parsed.tick_id)


def _remember(store: ConnectionStore, report: RunReport) -> None:
    """Keep the run in the connection's history (`floe status`, docs/metrics.md). Best effort: the
    history only describes deliveries, so failing to write it must never fail the tick that made them."""
    if report.org_id is None:  # the row was never read (unknown connection): nothing to keep it under
        return
    try:
        store.record_run(report.history_record())
    except Exception:
        log.warning("run not recorded in the history", extra={"connection_id": report.connection_id}, exc_info=True)


def edges_for(settings: config.Settings, store: ConnectionStore, **overrides: Any) -> Edges:
    """The tick's I/O for one invocation (the benchmark overrides `sleep`)."""
    return Edges(
        settings=settings,
        store=store,
        s3=boto3.client("s3"),
        secrets=boto3.client("secretsmanager"),
        metrics=_metrics(settings),
        **overrides,
    )


def _metrics(settings: config.Settings) -> CoreMetrics | None:
    if not settings.core_api_url:
        return None
    token = None
    if settings.core_api_token_secret:
        try:
            secret = boto3.client("secretsmanager").get_secret_value(SecretId=settings.core_api_token_secret)
            token = secret["SecretString"]
        except Exception as error:
            from kernel.secrets import SecretError

            raise SecretError(f"cannot read the core API token secret {settings.core_api_token_secret!r}") from error
    return CoreMetrics(settings.core_api_url, token=token, attempts=settings.retry_attempts)


def _logged(report: RunReport, tick_id: str | None) -> dict[str, Any]:
    """One line per run; `tick_id`, when the task processor sent one, ties the run to its tick."""
    document = report.as_dict()
    level = 40 if report.status is RunStatus.ERROR else 20
    extra = {"report": document, "dead_lettered_batches": report.dead_lettered_batches, "tick_id": tick_id}
    log.log(level, "run report", extra=extra)
    plain: dict[str, Any] = json.loads(json.dumps(document, default=str))
    return plain

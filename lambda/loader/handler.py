"""The AWS Lambda entry point: `loader.handler.handler({"connection_id": "..."}, context)`.

Import cost matters here (cold start): boto3 is imported at module level because every tick lists S3;
the Snowflake connector is imported only when a tick has files to load.
"""

from __future__ import annotations

import functools
import itertools
import json
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from kernel import config, logs
from kernel.connections import ConnectionStore
from kernel.dsn import open_configured_store
from kernel.errors import FloeError, describe
from loader.data_access import scoped_clients
from loader.event import InvalidEvent, LoaderEvent
from loader.metrics import CoreMetrics, MetricsRejected, embedded_metrics
from loader.report import RunReport, RunStatus
from loader.tick import Deadline, Edges, run_tick

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

log = logs.get("loader")
_invocations = itertools.count()  # 0 on the first invocation of this process: its cold start


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    logs.configure()
    logs.start(
        request_id=getattr(context, "aws_request_id", None),
        function_name=getattr(context, "function_name", None),
        cold_start=next(_invocations) == 0,
    )
    deadline = Deadline(lambda: context.get_remaining_time_in_millis() / 1000)
    return run(event, deadline)


def run(event: Any, deadline: Deadline) -> dict[str, Any]:
    """Validate, run one tick, log the report as one line and return it (never raises for a bad tick:
    a bad event, setting, DSN or store gives one error report and one log line)."""
    run_id = str(uuid.uuid4())
    try:
        parsed = LoaderEvent.parse(event)
    except InvalidEvent as error:
        logs.bind(connection_id=None, run_id=run_id)
        return _logged(_failed(run_id, "", error), tick_id=None)
    # From here every line names the connection and run, so a crashed or timed-out tick can be found.
    logs.bind(connection_id=parsed.connection_id, run_id=run_id)
    log.info("tick started", extra={"tick_id": parsed.tick_id})
    try:
        settings = config.load()
        store = open_configured_store(settings)
    except Exception as error:  # describe() shows a FloeError's own message, anything else by type only
        if not isinstance(error, FloeError):  # a bug: where it happened (frames only, kernel.logs)
            log.error("tick set-up failed unexpectedly", exc_info=True)
        return _logged(_failed(run_id, parsed.connection_id, error), parsed.tick_id)
    try:
        report = run_tick(parsed.connection_id, edges_for(settings, store), deadline, run_id)
        _remember(store, report)
    finally:
        store.close()
    return _logged(report, parsed.tick_id)


def _failed(run_id: str, connection_id: str, error: Exception) -> RunReport:
    now = datetime.now(UTC)
    report = RunReport(run_id=run_id, connection_id=connection_id, started_at=now, completed_at=now)
    report.status, report.error = RunStatus.ERROR, describe(error)
    return report


def _remember(store: ConnectionStore, report: RunReport) -> None:
    """Keep a working run in the connection's history (`floe status`, docs/metrics.md): the status rules
    read no idle or skipped run, so those cost no write. Best effort: the history only describes
    deliveries, so failing to write it must never fail the tick that made them."""
    record = report.history_record()
    if report.org_id is None or not record.worked:  # an unknown connection has nothing to keep it under
        return
    try:
        store.record_run(record)
    except Exception:
        log.warning("run not recorded in the history", extra={"connection_id": report.connection_id}, exc_info=True)


def edges_for(settings: config.Settings, store: ConnectionStore, **overrides: Any) -> Edges:
    """The tick's I/O for one invocation (the benchmark overrides `sleep`)."""
    return Edges(
        settings=settings,
        store=store,
        s3=functools.cache(_s3_client),  # one per invocation, made only if used
        secrets=_secrets_client,
        metrics=_metrics(settings),
        scope=partial(scoped_clients, settings) if settings.loader_data_role_arn else None,
        **overrides,
    )


def _s3_client() -> S3Client:
    return boto3.client("s3")


def _secrets_client() -> SecretsManagerClient:
    return boto3.client("secretsmanager")


def _metrics(settings: config.Settings) -> CoreMetrics | None:
    if not settings.core_api_url:
        return None
    token = partial(_core_token, settings.core_api_token_secret) if settings.core_api_token_secret else None
    return CoreMetrics(settings.core_api_url, token=token, attempts=settings.retry_attempts)


def _core_token(secret_id: str) -> str:
    """Read when a run is posted. Unreadable: no POST (never an unauthenticated one), and the run stands."""
    try:
        return boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except (ClientError, BotoCoreError, KeyError) as error:
        raise MetricsRejected(
            f"cannot read the FLOE_CORE_API_TOKEN_SECRET secret ({type(error).__name__}): check it exists and "
            "the loader's execution role may read it",
            transient=False,
        ) from None


def _logged(report: RunReport, tick_id: str | None) -> dict[str, Any]:
    """One line per run, which is also the run's CloudWatch metrics (Embedded Metric Format); `tick_id`,
    when the task processor sent one, ties the run to its tick."""
    document = report.as_dict()
    level = 40 if report.status is RunStatus.ERROR else 20
    extra = {
        "report": document,
        "dead_lettered_batches": report.dead_lettered_batches,
        "tick_id": tick_id,
        **embedded_metrics(report),
    }
    log.log(level, "run report", extra=extra)
    plain: dict[str, Any] = json.loads(json.dumps(document, default=str))
    return plain

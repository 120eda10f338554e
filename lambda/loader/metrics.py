"""POST a run's metrics to the core API: retried with backoff, never able to fail or undo the load."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from kernel import logs
from kernel.errors import FloeError, describe
from loader.report import RunReport, RunStatus

log = logs.get("metrics")
TIMEOUT_SECONDS = 5.0


class MetricsRejected(FloeError):
    """Core did not take the run report; `transient` when a retry may fix it (5xx, 429, network)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class CoreMetrics:
    """`token` is called only when there is a run to post, so an idle tick reads no secret."""

    def __init__(
        self, url: str, token: Callable[[], str] | None = None, attempts: int = 3, backoff: float = 0.5
    ) -> None:
        self._url = url
        self._token = token
        self._attempts = attempts
        self._backoff = backoff

    def post(self, payload: dict[str, Any]) -> str | None:
        """None when core accepted the run; else why it was not sent (logged), for the report's warnings."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=4),
            retry=retry_if_exception(lambda e: isinstance(e, MetricsRejected) and e.transient),
            reraise=True,
        )
        try:
            headers = {"Authorization": f"Bearer {self._token()}"} if self._token else {}
            retrying(self._send, payload, headers)
        except MetricsRejected as error:
            log.warning("metrics not delivered", extra={"run_id": payload.get("run_id"), "reason": describe(error)})
            return str(error)
        return None

    def _send(self, payload: dict[str, Any], authorization: dict[str, str]) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(payload["run_id"]), **authorization}
        request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked in kernel.config
            self._url, data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS):  # noqa: S310
                return
        except urllib.error.HTTPError as error:
            if error.code >= 500 or error.code == 429:
                raise MetricsRejected(f"core answered HTTP {error.code}", transient=True) from None
            raise MetricsRejected(f"core refused the run report with HTTP {error.code}", transient=False) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise MetricsRejected(f"core unreachable: {type(reason).__name__}", transient=True) from None


NAMESPACE = "Floe"
# CloudWatch aggregates each metric per dimension set: per connection and status, per connection, and
# the roll-up over every connection (`[]`), which the account-wide alarms read. Terraform's alarms and
# dashboard use these exact names.
DIMENSION_SETS = [["connection_id", "status"], ["connection_id"], []]
_UNITS = {
    "EventsDelivered": "Count",
    "FilesLoaded": "Count",
    "FilesDeadLettered": "Count",
    "FilesInFlight": "Count",
    "LagSeconds": "Seconds",
    "RunDurationMs": "Milliseconds",
    "SnowflakeStatements": "Count",
    "WarehouseStatements": "Count",
    "RunFailed": "Count",
}


def embedded_metrics(report: RunReport) -> dict[str, Any]:
    """The run's metrics in CloudWatch's Embedded Metric Format, as top-level members of the report's log
    line: CloudWatch Logs extracts them itself, so a run costs no PutMetricData call (and the role needs
    no cloudwatch:* permission). Written directly rather than with aws-lambda-powertools, whose import
    would weigh on every idle cold start (docs/metrics.md). A run refused before it knew its connection
    has no `connection_id`, so it counts only in the roll-up (CloudWatch refuses empty dimension values)."""
    completed = report.completed_at or report.started_at
    values = {
        "EventsDelivered": report.events_delivered,
        "FilesLoaded": report.files_loaded,
        "FilesDeadLettered": report.files_dead_lettered,
        "FilesInFlight": report.files_in_flight,
        "LagSeconds": report.lag_seconds,
        "RunDurationMs": round((completed - report.started_at).total_seconds() * 1000),
        "SnowflakeStatements": report.snowflake_statements,
        "WarehouseStatements": report.warehouse_statements,
        "RunFailed": 1 if report.status is RunStatus.ERROR else 0,
    }
    dimensions = DIMENSION_SETS if report.connection_id else [[]]
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": dimensions,
        "Metrics": [{"Name": name, "Unit": unit} for name, unit in _UNITS.items()],
    }
    members = {"connection_id": report.connection_id, "status": report.status.value} if report.connection_id else {}
    timestamp = round(completed.timestamp() * 1000)
    return {"_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [directive]}, **members, **values}

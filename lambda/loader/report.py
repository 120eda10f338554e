"""The run report: returned by the handler, logged as one line, and (its metrics part) POSTed to core."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kernel.run_history import RunRecord

if TYPE_CHECKING:
    from loader.deliver import Delivery


class RunStatus(StrEnum):
    OK = "ok"  # every file this run saw was settled
    IDLE = "idle"  # nothing under the live prefix
    PARTIAL = "partial"  # work done, but some files are still in flight or could not be moved
    SKIPPED = "skipped"  # inactive connection, pending setup, or another run holds the lease
    ERROR = "error"  # the run could not do its work; the error says what to do


@dataclass
class RunReport:
    run_id: str
    connection_id: str
    started_at: datetime
    org_id: str | None = None
    status: RunStatus = RunStatus.OK
    reason: str | None = None
    error: str | None = None
    files_listed: int = 0
    files_ignored: int = 0
    files_sent: int = 0
    files_restaged: int = 0
    files_loaded: int = 0
    events_delivered: int = 0
    files_dead_lettered: int = 0
    dead_lettered_batches: int = 0
    files_in_flight: int = 0
    snowflake_statements: int = 0
    warehouse_statements: int = 0  # of those, the ones a warehouse runs (COPY_HISTORY, the lineage query)
    lag_seconds: float = 0.0  # age of the oldest live file when listed; 0 when there was none
    pipe_state: str | None = None
    dead_letter_manifest: str | None = None
    completed_at: datetime | None = None
    metrics_posted: bool | None = None
    warnings: list[str] = field(default_factory=list)

    def record(self, delivery: Delivery) -> None:
        """Write what a busy tick did into the report, and judge the run by it."""
        settled = delivery.settlement
        self.files_sent, self.files_restaged = delivery.files_sent, delivery.files_restaged
        self.files_loaded, self.events_delivered = settled.files_loaded, settled.events_delivered
        self.files_dead_lettered, self.files_in_flight = settled.files_dead_lettered, settled.files_in_flight
        self.dead_lettered_batches = 1 if settled.files_dead_lettered else 0
        self.dead_letter_manifest = settled.dead_letter_manifest
        self.snowflake_statements, self.pipe_state = delivery.snowflake_statements, delivery.pipe_state
        self.warehouse_statements = delivery.warehouse_statements
        self.warnings += delivery.warnings + settled.warnings
        if delivery.error:
            self.status, self.error = RunStatus.ERROR, delivery.error
        elif delivery.out_of_time:
            self.status, self.reason = RunStatus.PARTIAL, delivery.out_of_time
        elif settled.files_in_flight:
            self.status = RunStatus.PARTIAL
            self.reason = f"{settled.files_in_flight} files still in flight; the next tick follows them"

    @property
    def did_work(self) -> bool:
        return self.files_listed > 0 or self.status is RunStatus.ERROR

    def as_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for key, value in document.items():
            if isinstance(value, datetime):
                document[key] = value.isoformat()
        return document

    def history_record(self) -> RunRecord:
        """What the connection's run history keeps of this run."""
        return RunRecord(
            run_id=self.run_id,
            connection_id=self.connection_id,
            status=self.status.value,
            started_at=self.started_at,
            completed_at=self.completed_at or self.started_at,
            events_delivered=self.events_delivered,
            files_loaded=self.files_loaded,
            files_dead_lettered=self.files_dead_lettered,
            files_in_flight=self.files_in_flight,
            error=self.error,
        )

    def metrics(self) -> dict[str, Any]:
        """The documented metrics payload (docs/metrics.md); `run_id` is the idempotency key."""
        return {
            "run_id": self.run_id,
            "connection_id": self.connection_id,
            "organisation_id": self.org_id,
            "status": self.status.value,
            "events_delivered": self.events_delivered,
            "files_loaded": self.files_loaded,
            "files_dead_lettered": self.files_dead_lettered,
            "dead_lettered_batches": self.dead_lettered_batches,
            "files_in_flight": self.files_in_flight,
            "started_at": self.started_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "error": self.error,
        }

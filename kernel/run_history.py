"""A connection's recent runs, and the delivery status derived from them (docs/metrics.md, "Status").

The loader records one `RunRecord` per working tick in the connection store (bounded to `RETENTION`); `derive`
turns them into what core shows an organisation, after Flagsmith #7289's model: a status of active,
degraded, error or idle, the last delivery, events delivered in the last 24 h and 7 d, failed
deliveries in 24 h, and recent errors. `derive` is pure: it reads only the runs and the time given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

RETENTION = timedelta(days=8)  # covers the 7-day figures, with a day to spare for late readers
DAY, WEEK = timedelta(days=1), timedelta(days=7)
FAILING_STREAK = 3  # this many failed runs in a row (within a day) is an error, not a blip
IN_FLIGHT_STREAK = 5  # files still in flight after this many runs in a row is degraded
RECENT_ERRORS = 5
_NO_WORK = frozenset({"idle", "skipped"})  # runs that found nothing to do (or were not theirs to do)


class Health(StrEnum):
    ACTIVE = "active"  # delivering, no failures in the last 24 h
    DEGRADED = "degraded"  # delivering, but some runs failed or files wait too long
    ERROR = "error"  # every recent run fails, or dead letters keep growing
    IDLE = "idle"  # nothing delivered in the last 24 h, and nothing failing


@dataclass(frozen=True)
class RunRecord:
    """What the store keeps of one run report: counts and the error sentence (never a secret: it is
    `kernel.errors.describe`'s)."""

    run_id: str
    connection_id: str
    status: str
    started_at: datetime
    completed_at: datetime
    events_delivered: int = 0
    files_loaded: int = 0
    files_dead_lettered: int = 0
    files_in_flight: int = 0
    error: str | None = None

    @property
    def worked(self) -> bool:
        return self.status not in _NO_WORK

    @property
    def failed(self) -> bool:
        """The run could not do its work, or Snowflake refused some of its files."""
        return self.status == "error" or self.files_dead_lettered > 0


@dataclass(frozen=True)
class DeliveryStatus:
    status: Health
    reason: str
    last_delivery_at: datetime | None
    events_delivered_24h: int
    events_delivered_7d: int
    failed_deliveries_24h: int
    recent_errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "reason": self.reason,
            "last_delivery_at": self.last_delivery_at.isoformat() if self.last_delivery_at else None,
            "events_delivered_24h": self.events_delivered_24h,
            "events_delivered_7d": self.events_delivered_7d,
            "failed_deliveries_24h": self.failed_deliveries_24h,
            "recent_errors": self.recent_errors,
        }


def derive(runs: Sequence[RunRecord], now: datetime) -> DeliveryStatus:
    """The delivery status at `now` from a connection's runs (any order)."""
    ordered = sorted(runs, key=lambda run: run.completed_at)
    last_day = [run for run in ordered if now - run.completed_at <= DAY]
    worked_today = [run for run in last_day if run.worked]
    delivered = [run for run in ordered if run.events_delivered > 0]
    health, reason = _judge(worked_today, sum(run.events_delivered for run in last_day))
    return DeliveryStatus(
        status=health,
        reason=reason,
        last_delivery_at=delivered[-1].completed_at if delivered else None,
        events_delivered_24h=sum(run.events_delivered for run in last_day),
        events_delivered_7d=sum(run.events_delivered for run in ordered if now - run.completed_at <= WEEK),
        failed_deliveries_24h=sum(1 for run in worked_today if run.failed),
        recent_errors=[
            {"at": run.completed_at.isoformat(), "run_id": run.run_id, "error": run.error}
            for run in reversed(ordered)
            if run.error
        ][:RECENT_ERRORS],
    )


def _judge(worked_today: list[RunRecord], events_today: int) -> tuple[Health, str]:
    """The rules, in order; the first that holds decides (docs/metrics.md lists them)."""
    streak = worked_today[-FAILING_STREAK:]
    if len(streak) == FAILING_STREAK and all(run.status == "error" for run in streak):
        return Health.ERROR, f"the last {FAILING_STREAK} runs failed: {streak[-1].error}"
    if len(streak) == FAILING_STREAK and all(run.files_dead_lettered > 0 for run in streak):
        return Health.ERROR, f"the last {FAILING_STREAK} runs each dead-lettered files"
    failed = sum(1 for run in worked_today if run.failed)
    if failed:
        return Health.DEGRADED, f"{failed} of {len(worked_today)} runs in the last 24 h failed or dead-lettered files"
    waiting = worked_today[-IN_FLIGHT_STREAK:]
    if len(waiting) == IN_FLIGHT_STREAK and all(run.files_in_flight > 0 for run in waiting):
        return Health.DEGRADED, f"files have stayed in flight for {IN_FLIGHT_STREAK} runs in a row"
    if events_today == 0:
        return Health.IDLE, "nothing delivered in the last 24 h"
    return Health.ACTIVE, f"{events_today} events delivered in the last 24 h"

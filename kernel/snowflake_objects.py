"""Reading Snowflake's objects back: one home for SHOW-then-match-the-exact-name and for parsing
SYSTEM$PIPE_STATUS, used by the tick and by provisioning alike.

Each reader takes `run`, the caller's way of running one statement (the tick's is retried and counted),
so the reading rules live here and the I/O policy stays with the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kernel.render import Target, render

Run = Callable[[str], list[dict[str, Any]]]


@dataclass(frozen=True)
class PipeStatus:
    """SYSTEM$PIPE_STATUS's fields Floe reads (docs/snowflake-facts.md §2)."""

    execution_state: str
    pending_file_count: int
    error: str | None
    last_ingested: datetime | None = None

    @property
    def running(self) -> bool:
        return self.execution_state == "RUNNING"


def shown(run: Run, target: Target, kind: str, name: str) -> dict[str, Any] | None:
    """The SHOW row of the object named exactly `name` (SHOW's LIKE is a pattern), or None.
    SHOW runs in cloud services, without a warehouse (docs/snowflake-facts.md §10)."""
    rows = run(render("show", target, object=kind, name=name))
    return next((row for row in rows if row.get("NAME") == name), None)


def pipe_status(run: Run, target: Target) -> PipeStatus:
    rows = run(render("pipe_status", target))
    document: dict[str, Any] = json.loads(str(next(iter(rows[0].values())) or "{}")) if rows else {}
    return PipeStatus(
        execution_state=str(document.get("executionState", "UNKNOWN")),
        pending_file_count=int(document.get("pendingFileCount", 0)),
        error=document.get("error"),
        last_ingested=_parse_time(document.get("lastIngestedTimestamp")),
    )


def as_utc(value: object) -> datetime | None:
    """A timestamp Snowflake returned, in UTC (naive values are UTC already)."""
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None

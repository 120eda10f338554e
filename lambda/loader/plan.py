"""What to do with each live file, given the listing and the pipe's load history. Pure: no I/O.

A file's life (docs/architecture.md): NEW ──REFRESH──► SENT ──► LOADED ──► deleted from the live prefix
                                                         └──► FAILED ──► dead-lettered, then deleted.
The rules that keep every event exactly once in the table or exactly once in the dead-letter prefix:

- Only a terminal status from COPY_HISTORY settles a file. `Loaded` → delete; `Load failed`,
  `Partially loaded`, `Load skipped` → dead-letter (a partial load's good rows stay in the table; the
  manifest says so, and a replay of the file would load them again, so replay is a person's decision).
- A file the pipe may still be loading is never moved: `Load in progress`, or no history at all while
  the pipe has pending files or the file was just sent.
- A file with no history that REFRESH does not send although the pipe has nothing pending, for longer
  than `stranded_after`, is stranded (REFRESH sees it as already handled, or cannot see it): it is
  dead-lettered so that a person looks at it, instead of waiting forever.
- A file nearing REFRESH's 7-day window with no history is re-staged in place (same key, new
  LastModified) so REFRESH sees it again (docs/snowflake-facts.md §1); its key is unchanged, so the pipe's
  path+name load metadata still prevents a second load of a file that did load.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

# docs/snowflake-facts.md §1: REFRESH loads only files staged within the last 7 days; re-stage a day early.
RESTAGE_AFTER = timedelta(days=6)
# docs/snowflake-facts.md §2: the COPY_HISTORY table function covers the last 14 days.
HISTORY_RETENTION = timedelta(days=14)
# Load times are not earlier than the staging time; a margin absorbs clock skew between S3 and Snowflake.
HISTORY_MARGIN = timedelta(hours=1)


class LoadStatus(StrEnum):
    """COPY_HISTORY's STATUS values (docs/snowflake-facts.md §2)."""

    LOADED = "Loaded"
    FAILED = "Load failed"
    PARTIAL = "Partially loaded"
    IN_PROGRESS = "Load in progress"
    SKIPPED = "Load skipped"


class Decision(StrEnum):
    DELETE = "delete"
    DEAD_LETTER = "dead_letter"
    RETRY = "retry"  # load again under a new name (loader.retries)
    SEND = "send"
    WAIT = "wait"


@dataclass(frozen=True)
class LiveFile:
    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class LoadRecord:
    """One COPY_HISTORY row, its file named by its full S3 key."""

    key: str
    status: LoadStatus
    row_count: int = 0
    row_parsed: int | None = None
    error_count: int = 0
    first_error: str | None = None
    last_load_time: datetime | None = None


@dataclass(frozen=True)
class FilePlan:
    file: LiveFile
    decision: Decision
    reason: str
    record: LoadRecord | None = None
    restage: bool = False


def latest_records(records: Iterable[LoadRecord]) -> dict[str, LoadRecord]:
    """The newest record per key: a file can appear twice, e.g. failed before a pipe was re-created."""
    latest: dict[str, LoadRecord] = {}
    for record in records:
        current = latest.get(record.key)
        if current is None or _load_time(record) >= _load_time(current):
            latest[record.key] = record
    return latest


def _load_time(record: LoadRecord) -> datetime:
    return record.last_load_time or datetime.min.replace(tzinfo=UTC)


def plan_files(files: Iterable[LiveFile], history: Mapping[str, LoadRecord], now: datetime) -> list[FilePlan]:
    return [plan_file(file, history.get(file.key), now) for file in files]


def plan_file(file: LiveFile, record: LoadRecord | None, now: datetime) -> FilePlan:
    if record is None:
        restage = now - file.last_modified >= RESTAGE_AFTER
        return FilePlan(file, Decision.SEND, "no load history yet", None, restage)
    if record.status is LoadStatus.LOADED:
        return FilePlan(file, Decision.DELETE, f"loaded {record.row_count} rows", record)
    if record.status is LoadStatus.IN_PROGRESS:
        return FilePlan(file, Decision.WAIT, "load in progress", record)
    return FilePlan(file, Decision.DEAD_LETTER, _failure_reason(record), record)


def _failure_reason(record: LoadRecord) -> str:
    detail = f": {record.first_error}" if record.first_error else ""
    return f"{record.status.value} ({record.error_count} errors, {record.row_count} rows loaded){detail}"


def stranded(
    plans: Iterable[FilePlan],
    sent: frozenset[str],
    pipe_pending_files: int,
    now: datetime,
    stranded_after: timedelta,
) -> list[FilePlan]:
    """Files REFRESH will not send and the pipe is not loading, past the grace period: dead-letter them."""
    if pipe_pending_files:
        return []
    return [
        FilePlan(p.file, Decision.DEAD_LETTER, f"not loaded by the pipe within {stranded_after} (stranded)")
        for p in plans
        if p.decision is Decision.SEND and p.file.key not in sent and now - p.file.last_modified >= stranded_after
    ]


def found_in_table(plans: Iterable[FilePlan], rows_by_key: Mapping[str, int]) -> list[FilePlan]:
    """Files with no load record whose rows the table already holds (its lineage column says so): they
    were loaded, and Snowpipe forgot or COPY_HISTORY has not caught up. Delete them; never send or
    dead-letter them, either of which would put their events in twice."""
    return [
        FilePlan(
            p.file,
            Decision.DELETE,
            f"already in the table ({rows_by_key[p.file.key]} rows) though COPY_HISTORY has no record",
            LoadRecord(p.file.key, LoadStatus.LOADED, row_count=rows_by_key[p.file.key]),
        )
        for p in plans
        if p.record is None and rows_by_key.get(p.file.key, 0) > 0
    ]


def unsettled(plans: Iterable[FilePlan], sent: frozenset[str] = frozenset()) -> list[FilePlan]:
    """Files whose outcome is not known yet: in progress, or sent this tick without a record."""
    return [p for p in plans if p.decision is Decision.WAIT or (p.decision is Decision.SEND and p.file.key in sent)]


def history_start(files: Iterable[LiveFile], now: datetime) -> datetime:
    """START_TIME for COPY_HISTORY: before the oldest file was staged, within the function's 14 days."""
    oldest = min((f.last_modified for f in files), default=now)
    return max(oldest - HISTORY_MARGIN, now - HISTORY_RETENTION + timedelta(minutes=5))


def needs_history_first(files: Iterable[LiveFile], now: datetime) -> bool:
    """Only a file old enough to be re-staged needs its history read before REFRESH (the rare path)."""
    return any(now - f.last_modified >= RESTAGE_AFTER for f in files)


def settle_due(files: Iterable[LiveFile], last_settled: datetime | None, now: datetime, interval: timedelta) -> bool:
    """REFRESH mode: read COPY_HISTORY (a warehouse resume) and settle only when worth it: once per
    `interval`, or when a file nears REFRESH's 7-day window (its history must be read first anyway).
    A settle time in the future (a wrong clock) does not postpone settling forever."""
    if last_settled is None or last_settled > now or now - last_settled >= interval:
        return True
    return needs_history_first(files, now)

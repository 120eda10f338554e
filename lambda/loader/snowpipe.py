"""The connection's pipe seen through SQL: submit files, read COPY_HISTORY, the pipe's status and the
table's lineage.

`Submitter` is the seam between "tell Snowpipe about these files" and the rest of the tick:
`RefreshSubmitter` (`ALTER PIPE … REFRESH`, as the request asks) is one implementation; a Snowpipe REST
`insertFiles` submitter (docs/snowflake-facts.md §3) is the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from kernel.render import MAX_FILE_NAMES, RenderError, Target, literal, render
from kernel.snowflake_objects import PipeStatus, as_utc, pipe_status, shown
from kernel.snowflake_session import SnowflakeError, query
from loader.names import listed_key
from loader.plan import LiveFile, LoadRecord, LoadStatus

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection

    from loader.budget import Budget

T = TypeVar("T")


class Submitter(Protocol):
    def submit(self, files: Sequence[LiveFile]) -> frozenset[str]:
        """Queue `files` (those of them Snowpipe has not loaded yet); returns the S3 keys queued."""
        ...


class Snowpipe:
    def __init__(
        self,
        session: SnowflakeConnection,
        target: Target,
        attempts: int,
        budget: Budget,
        listed: frozenset[str] = frozenset(),
    ) -> None:
        self.session = session
        self.listed = listed  # the tick's live keys: names Snowflake shows are mapped back to these
        self.target = target
        self._attempts = attempts
        self.budget = budget
        self._stage_key_prefix = target.stage_url.split("/", 3)[3]
        self.statements = 0
        self.warehouse_statements = 0  # the ones that need (and bill) a warehouse

    def run(self, sql: str, *, warehouse: bool = False) -> list[dict[str, Any]]:
        """One statement, retried with exponential backoff on transient errors, a few times at most; each
        attempt only if the time budget covers it (`OutOfTime` otherwise, never retried). `warehouse`:
        the statement needs (and bills) a warehouse."""
        step = "`" + " ".join(sql.split()[:3]) + " …`"

        def send(timeout_seconds: int) -> list[dict[str, Any]]:
            self.statements += 1
            self.warehouse_statements += warehouse
            return query(self.session, sql, timeout_seconds)

        return self._retrying(lambda: self.budget.spend(step, send))

    def _retrying(self, call: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception(lambda e: isinstance(e, SnowflakeError) and e.transient),
            reraise=True,
        )
        return retrying(call)

    def history(self, start: datetime) -> list[LoadRecord]:
        """One COPY_HISTORY query covering every file of the table since `start`."""
        rows = self.run(render("copy_history", self.target, start_time=start), warehouse=True)
        return [self._record(row) for row in rows if row.get("STATUS") in _STATUSES]

    def status(self) -> PipeStatus:
        return pipe_status(self.run, self.target)

    def created_on(self) -> datetime | None:
        """When the pipe was (re-)created."""
        row = shown(self.run, self.target, "pipe", self.target.pipe)
        return as_utc(row.get("CREATED_ON")) if row else None

    def rows_in_table(self, keys: list[str], since: datetime | None) -> dict[str, int]:
        """Rows per file already in the table, by lineage (SOURCE_FILE_NAME), for files loaded since `since`
        (ever, if None); one statement per MAX_FILE_NAMES files."""
        relative = {key.removeprefix(self._stage_key_prefix): key for key in keys}
        # A name SQL cannot quote (a control character) is not asked for: it counts as not in the table.
        names = sorted(name for name in relative if _quotable(name))
        found: dict[str, int] = {}
        for start in range(0, len(names), MAX_FILE_NAMES):
            sql = render("loaded_files", self.target, names=names[start : start + MAX_FILE_NAMES], since=since)
            for row in self.run(sql, warehouse=True):
                found[relative[str(row["SOURCE_FILE_NAME"])]] = int(row["ROW_COUNT"])
        return found

    def key_of(self, name: str, stage_location: str | None = None) -> str:
        """The listed S3 key of a file Snowflake names relative to the stage or the bucket, or as a full
        s3:// URL, possibly URL-encoded (`loader.names`)."""
        return listed_key(self._spelled_key(name, stage_location), self.listed)

    def _spelled_key(self, name: str, stage_location: str | None) -> str:
        if name.startswith("s3://"):
            return name.split("/", 3)[3]
        if stage_location and stage_location.startswith("s3://"):
            base = stage_location.split("/", 3)[3] if stage_location.count("/") >= 3 else ""
            return f"{base.rstrip('/')}/{name}" if base else name
        return f"{self._stage_key_prefix}{name}"

    def _record(self, row: dict[str, Any]) -> LoadRecord:
        return LoadRecord(
            key=self.key_of(str(row["FILE_NAME"]), row.get("STAGE_LOCATION")),
            status=LoadStatus(row["STATUS"]),
            row_count=int(row.get("ROW_COUNT") or 0),
            row_parsed=None if row.get("ROW_PARSED") is None else int(row["ROW_PARSED"]),
            error_count=int(row.get("ERROR_COUNT") or 0),
            first_error=row.get("FIRST_ERROR_MESSAGE"),
            last_load_time=as_utc(row.get("LAST_LOAD_TIME")),
        )


class RefreshSubmitter:
    """`ALTER PIPE … REFRESH PREFIX = …`: the default, as the request asks (docs/snowflake-facts.md §1).
    REFRESH finds the files itself under `prefix` (the layout's fixed head), skipping loaded ones."""

    def __init__(self, pipe: Snowpipe, prefix: str) -> None:
        self._pipe = pipe
        self._prefix = prefix
        self.silent = False  # the last REFRESH printed no rows: which files it queued is unknown

    def submit(self, files: Sequence[LiveFile]) -> frozenset[str]:
        if not files:
            return frozenset()
        rows = self._pipe.run(render("refresh", self._pipe.target, prefix=self._prefix, modified_after=None))
        # The result's columns are undocumented (docs/snowflake-facts.md §1); the stand-in and,
        # as far as known, Snowflake return `File` and `Status` = SENT, or no rows at all (reading
        # refresh-silent).
        self.silent = not rows
        return frozenset(
            self._pipe.key_of(str(row["FILE"])) for row in rows if str(row.get("STATUS", "SENT")) == "SENT"
        )


_STATUSES = {s.value for s in LoadStatus}


def _quotable(name: str) -> bool:
    try:
        literal(name)
    except RenderError:
        return False
    return True

"""COPY_HISTORY and SYSTEM$PIPE_STATUS (docs/snowflake-facts.md §2).

Both are answered by rewriting the query: COPY_HISTORY's rows are materialised into a temp table of
the session, SYSTEM$PIPE_STATUS(...) becomes a string literal, and fakesnow runs the rest (column
lists, WHERE, ORDER BY) as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import pipes
from .context import Context
from .engine import TableLoader
from .errors import SnowflakeError
from .model import LoadRecord, QualifiedName, display
from .security import pipe_allows
from .sqltext import find_matching_paren, quote_string, split_name, split_top_level, unquote_string

_COPY_HISTORY_RE = re.compile(
    r"TABLE\s*\(\s*(?:(\"(?:[^\"]|\"\")*\"|[A-Za-z_][\w$]*)\s*\.\s*)?INFORMATION_SCHEMA\s*\.\s*COPY_HISTORY\s*\(",
    re.IGNORECASE,
)
_PIPE_STATUS_RE = re.compile(r"SYSTEM\$PIPE_STATUS\s*\(\s*('(?:[^'\\]|\\.|'')*')\s*\)", re.IGNORECASE)
_NOW_RE = re.compile(
    r"\b(?:CURRENT_TIMESTAMP|SYSDATE|GETDATE|LOCALTIMESTAMP|SYSTIMESTAMP)\b(?:\s*\(\s*\))?", re.IGNORECASE
)
HISTORY_TABLE = "_floe_copy_history"

_HISTORY_COLUMNS = [
    ("FILE_NAME", "VARCHAR"),
    ("STAGE_LOCATION", "VARCHAR"),
    ("LAST_LOAD_TIME", "TIMESTAMPTZ"),
    ("ROW_COUNT", "BIGINT"),
    ("ROW_PARSED", "BIGINT"),
    ("FILE_SIZE", "BIGINT"),
    ("FIRST_ERROR_MESSAGE", "VARCHAR"),
    ("FIRST_ERROR_LINE_NUMBER", "BIGINT"),
    ("FIRST_ERROR_CHARACTER_POS", "BIGINT"),
    ("FIRST_ERROR_COLUMN_NAME", "VARCHAR"),
    ("ERROR_COUNT", "BIGINT"),
    ("ERROR_LIMIT", "BIGINT"),
    ("STATUS", "VARCHAR"),
    ("TABLE_CATALOG_NAME", "VARCHAR"),
    ("TABLE_SCHEMA_NAME", "VARCHAR"),
    ("TABLE_NAME", "VARCHAR"),
    ("PIPE_CATALOG_NAME", "VARCHAR"),
    ("PIPE_SCHEMA_NAME", "VARCHAR"),
    ("PIPE_NAME", "VARCHAR"),
    ("PIPE_RECEIVED_TIME", "TIMESTAMPTZ"),
    ("BYTES_BILLED", "BIGINT"),
]


def mentions_copy_history(sql: str) -> bool:
    return _COPY_HISTORY_RE.search(sql) is not None


def mentions_pipe_status(sql: str) -> bool:
    return _PIPE_STATUS_RE.search(sql) is not None


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds")


def _evaluate_time(ctx: Context, expr: str) -> float:
    """A START_TIME/END_TIME expression evaluated by fakesnow with "now" on the stand-in's clock."""
    pinned = _NOW_RE.sub(f"TO_TIMESTAMP_LTZ('{_iso(ctx.now())}')", expr)
    cursor = ctx.session.conn.cursor()
    try:
        cursor.execute(f"SELECT {pinned}")
        value = cursor.fetchone()[0]
    except Exception as error:
        raise SnowflakeError(1003, f"SQL compilation error:\ninvalid time expression {expr}: {error}") from None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise SnowflakeError(1003, f"SQL compilation error:\n{expr} is not a timestamp")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _arguments(text: str) -> dict[str, str]:
    arguments: dict[str, str] = {}
    for part in split_top_level(text):
        name, arrow, value = part.partition("=>")
        if not arrow:
            raise SnowflakeError(1003, f"SQL compilation error:\nexpected NAME => value, found {part}")
        arguments[name.strip().upper()] = value.strip()
    return arguments


def _string_argument(value: str) -> str:
    if not value.startswith("'"):
        raise SnowflakeError(1003, f"SQL compilation error:\nexpected a string, found {value}")
    return unquote_string(value)


def _qualify_in(ctx: Context, database: str | None, parts: list[str]) -> QualifiedName:
    if len(parts) == 1 and database:
        return (database, ctx.session.schema or "PUBLIC", parts[0])
    if len(parts) == 2 and database:
        return (database, parts[0], parts[1])
    return ctx.qualify(parts, "COPY_HISTORY")


def rewrite_copy_history(ctx: Context, sql: str) -> str:
    """Materialise COPY_HISTORY(...) into a session temp table and point the query at it."""
    match = _COPY_HISTORY_RE.search(sql)
    assert match is not None
    database = split_name(match.group(1))[0] if match.group(1) else None
    args_close = find_matching_paren(sql, match.end() - 1)
    table_open = sql.index("(", match.start())
    table_close = find_matching_paren(sql, table_open)
    arguments = _arguments(sql[match.end() : args_close])
    if "TABLE_NAME" not in arguments or "START_TIME" not in arguments:
        raise SnowflakeError(1044, "SQL compilation error:\nTABLE_NAME and START_TIME are required", "42P13")
    table = _qualify_in(ctx, database, split_name(_string_argument(arguments["TABLE_NAME"])))
    TableLoader._describe(ctx.account.fakesnow.duck_conn.cursor(), table)
    start = _evaluate_time(ctx, arguments["START_TIME"])
    end = _evaluate_time(ctx, arguments["END_TIME"]) if "END_TIME" in arguments else ctx.now()
    pipe = None
    if "PIPE_NAME" in arguments:
        pipe = _qualify_in(ctx, database, split_name(_string_argument(arguments["PIPE_NAME"])))
    rows = [r for r in pipes.history_rows(ctx.account, table, pipe, ctx.now()) if start <= r.last_load_time <= end]
    _materialise(ctx, rows, lambda record: _monitors(ctx, record))
    return sql[: table_open - len("TABLE")].rstrip() + f" {HISTORY_TABLE}" + sql[table_close + 1 :]


def _monitors(ctx: Context, record: LoadRecord) -> bool:
    """facts §2: "Without MONITOR on the pipe, the pipe-name columns are NULL" (ownership includes it)."""
    if record.pipe is None:
        return False
    pipe = ctx.account.pipes.get(record.pipe)
    owner = pipe.owner if pipe is not None else ""
    return pipe_allows(ctx, owner, display(record.pipe), "MONITOR")


def _materialise(ctx: Context, records: list[LoadRecord], shows_pipe: Callable[[LoadRecord], bool]) -> None:
    duck: Any = ctx.session.conn._duck_conn
    columns = ", ".join(f"{name} {kind}" for name, kind in _HISTORY_COLUMNS)
    duck.execute(f"CREATE OR REPLACE TEMP TABLE {HISTORY_TABLE} ({columns})")
    if records:
        placeholders = ", ".join("?" for _ in _HISTORY_COLUMNS)
        rows = [_row(r, shows_pipe(r)) for r in records]
        duck.executemany(f"INSERT INTO {HISTORY_TABLE} VALUES ({placeholders})", rows)


def _row(record: LoadRecord, shows_pipe: bool) -> tuple[Any, ...]:
    pipe = record.pipe if record.pipe and shows_pipe else (None, None, None)
    return (
        record.file_name,
        record.stage_location,
        datetime.fromtimestamp(record.last_load_time, UTC),
        record.row_count,
        record.row_parsed,
        record.file_size,
        record.first_error_message,
        record.first_error_line_number,
        record.first_error_character_pos,
        record.first_error_column_name,
        record.error_count,
        record.error_limit,
        record.status,
        *record.table,
        *pipe,
        datetime.fromtimestamp(record.received_at, UTC) if record.pipe else None,
        record.file_size if record.status != "Load in progress" else None,
    )


def rewrite_pipe_status(ctx: Context, sql: str) -> str:
    def status_literal(match: re.Match[str]) -> str:
        name = ctx.qualify(split_name(unquote_string(match.group(1))), "SYSTEM$PIPE_STATUS")
        return quote_string(json.dumps(pipe_status(ctx, name)))

    return _PIPE_STATUS_RE.sub(status_literal, sql)


def pipe_status(ctx: Context, name: QualifiedName) -> dict[str, Any]:
    """facts §2: executionState, pendingFileCount, oldestPending* (only when pending), lastIngested*, error."""
    pipe = ctx.account.pipes.get(name)
    # docs/snowflake-facts.md §2: SYSTEM$PIPE_STATUS "Needs OWNERSHIP or MONITOR on the pipe".
    if pipe is None or not pipe_allows(ctx, pipe.owner, display(name), "MONITOR"):
        raise SnowflakeError(2003, f"Pipe '{display(name)}' does not exist or not authorized.", "02000")
    status: dict[str, Any] = {
        "executionState": pipes.execution_state(ctx.account, pipe),
        "pendingFileCount": len(pipe.queue),
    }
    if pipe.queue:
        oldest = min(pipe.queue, key=lambda q: q.received_at)
        status["oldestPendingFilePath"] = oldest.file.relative_path
        status["oldestFileTimestamp"] = _iso(oldest.received_at)
    if pipe.last_ingested_at is not None:
        status["lastIngestedTimestamp"] = _iso(pipe.last_ingested_at)
        status["lastIngestedFilePath"] = pipe.last_ingested_path
    if pipe.last_error is not None and pipe.last_error_at is not None:
        status["error"] = pipe.last_error
        status["lastPipeErrorTimestamp"] = _iso(pipe.last_error_at)
    return status

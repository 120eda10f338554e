"""The load engine shared by Snowpipe and bulk COPY: one staged file into one table.

A file is decompressed and split into JSON records here; the COPY transform then runs as SQL through
fakesnow (the records sit in a temp table with their ``$1`` value and METADATA$ columns), first into
a temp copy of the target so bad rows can be found, then into the table itself.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fakesnow.dialect import parse_one
from fakesnow.instance import FakeSnow

from .errors import SnowflakeError, does_not_exist
from .model import QualifiedName, display
from .sqltext import quote_ident

STATUS_LOADED = "LOADED"
STATUS_FAILED = "LOAD_FAILED"
STATUS_PARTIAL = "PARTIALLY_LOADED"

_SOURCE = "_floe_src"
_METADATA_COLUMNS = {
    "METADATA$FILENAME": "_floe_filename",
    "METADATA$FILE_ROW_NUMBER": "_floe_row",
    "METADATA$START_SCAN_TIME": "_floe_scan",
    "METADATA$FILE_LAST_MODIFIED": "_floe_modified",
}


@dataclass(frozen=True)
class OnError:
    """docs/snowflake-facts.md §5: CONTINUE, SKIP_FILE, SKIP_FILE_<n>, 'SKIP_FILE_<n>%', ABORT_STATEMENT."""

    mode: str  # "CONTINUE" | "SKIP_FILE" | "ABORT_STATEMENT"
    limit: int = 1
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> OnError:
        value = text.strip().upper()
        if value in ("CONTINUE", "ABORT_STATEMENT", "SKIP_FILE"):
            return cls(value)
        if match := re.fullmatch(r"SKIP_FILE_(\d+(?:\.\d+)?)%", value):
            return cls("SKIP_FILE", percent=float(match.group(1)))
        if match := re.fullmatch(r"SKIP_FILE_(\d+)", value):
            return cls("SKIP_FILE", limit=int(match.group(1)))
        raise SnowflakeError(1008, f"SQL compilation error:\ninvalid value [{text}] for parameter 'ON_ERROR'", "22023")

    def error_limit(self, rows_parsed: int) -> int:
        if self.mode == "CONTINUE":
            return rows_parsed
        if self.percent is not None:
            return max(1, math.ceil(rows_parsed * self.percent / 100))
        return self.limit


@dataclass
class RowError:
    line: int | None
    character: int | None
    message: str
    column: str | None = None


@dataclass
class Outcome:
    status: str
    rows_parsed: int
    rows_loaded: int
    error_limit: int
    errors: list[RowError] = field(default_factory=list)

    @property
    def first_error(self) -> RowError | None:
        return self.errors[0] if self.errors else None


@dataclass
class SourceFile:
    name: str  # as COPY_HISTORY shows it: relative to the stage URL
    data: bytes
    last_modified: float


def whole_file_failure(message: str, on_error: OnError) -> Outcome:
    return Outcome(STATUS_FAILED, 0, 0, on_error.error_limit(0), [RowError(None, None, message)])


def _decompress(file: SourceFile, options: dict[str, Any]) -> bytes:
    compression = str(options.get("COMPRESSION", "AUTO")).upper()
    looks_gzipped = file.data[:2] == b"\x1f\x8b" or file.name.endswith(".gz")
    if compression == "NONE" or (compression == "AUTO" and not looks_gzipped):
        return file.data
    try:
        return gzip.decompress(file.data)
    except (OSError, EOFError, zlib.error):
        raise _DecompressionError(
            f"Invalid data encountered during decompression for file: '{file.name}',"
            "compression type used: 'GZIP', cause: 'data error'"
        ) from None


class _DecompressionError(Exception):
    pass


def parse_records(text: str, options: dict[str, Any]) -> tuple[list[tuple[int, Any]], list[RowError], int]:
    """(line, value) for each JSON record, the parse errors, and the number of records seen."""
    if options.get("STRIP_OUTER_ARRAY") is True:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            return [], [RowError(error.lineno, error.colno, f"Error parsing JSON: {error.msg}")], 1
        values = document if isinstance(document, list) else [document]
        return [(1, value) for value in values], [], len(values)
    records: list[tuple[int, Any]] = []
    errors: list[RowError] = []
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        seen += 1
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            errors.append(RowError(number, error.colno, f"Error parsing JSON: {error.msg}, pos {error.pos}"))
    return records, errors, seen


def snowflake_message(duckdb_message: str) -> str:
    """Snowflake's wording for the conversion errors a transform usually hits."""
    message = re.sub(r"^\d{6} \(\w+\): ", "", duckdb_message).split("\n")[0]
    message = re.sub(r"^[A-Za-z ]+ Error: ", "", message)
    if match := re.search(
        r"Could not convert string '(.*?)' to (U?(?:INT|BIGINT|HUGEINT|DECIMAL|DOUBLE|FLOAT))", message
    ):
        return f"Numeric value '{match.group(1)}' is not recognized"
    if match := re.search(r"Could not convert string '(.*?)' to BOOL", message):
        return f"Boolean value '{match.group(1)}' is not recognized"
    if match := re.search(r"(?:timestamp|date).*?\"(.*?)\"", message, re.IGNORECASE):
        return f"Timestamp '{match.group(1)}' is not recognized"
    if "NOT NULL constraint" in message:
        return "NULL result in a non-nullable column"
    return message


# A transform's INSERT … SELECT as fakesnow would run it in DuckDB, by (database, schema, Snowflake SQL):
# translating it costs more than loading a small file, and every file of a pipe runs the same statement.
_TRANSLATED: dict[tuple[str, str, str], str] = {}


def _duckdb_sql(cursor: Any, sql: str) -> str:
    key = (str(cursor._conn.database), str(cursor._conn.schema), sql)
    if key not in _TRANSLATED:
        (statement,) = cursor._transform_explode(parse_one(sql))
        _TRANSLATED[key] = cursor._transform(statement, None).sql(dialect="duckdb")
    return _TRANSLATED[key]


class TableLoader:
    """Runs one file's records through a COPY transform into a table of one account."""

    def __init__(self, fakesnow: FakeSnow, table: QualifiedName) -> None:
        self.table = table
        probe = fakesnow.duck_conn.cursor()
        self.columns = self._describe(probe, table)
        self.conn = fakesnow.connect(table[0], table[1])
        self.duck: Any = self.conn._duck_conn

    @staticmethod
    def _describe(duck: Any, table: QualifiedName) -> list[tuple[str, str]]:
        try:
            rows = duck.execute(f"DESCRIBE {'.'.join(quote_ident(p) for p in table)}").fetchall()
        except Exception:
            raise does_not_exist("Table", display(table)) from None
        return [(str(row[0]), str(row[1])) for row in rows]

    @property
    def qualified(self) -> str:
        return ".".join(quote_ident(part) for part in self.table)

    def select_list(self, columns: list[str] | None, exprs: list[str] | None) -> tuple[list[str], list[str]]:
        """Target columns and the SQL expressions that fill them, read from the source temp table."""
        targets = columns or [name for name, _ in self.columns]
        if exprs is None:
            # docs/snowflake-facts.md §5: JSON without a transform loads into a single VARIANT column.
            if len(targets) != 1:
                raise SnowflakeError(
                    2019,
                    "SQL compilation error:\nJSON file format can produce one and only one column of type "
                    "variant, object, or array. Use CSV file format if you want to load more than one column.",
                    "0A000",
                )
            return targets, ["_floe_v"]
        if len(exprs) != len(targets):
            raise SnowflakeError(
                2020,
                f"SQL compilation error:\nInsert value list does not match column list expecting "
                f"{len(targets)} but got {len(exprs)}",
                "21S01",
            )
        return targets, [_rewrite_expr(expr) for expr in exprs]

    def stage_records(self, file: SourceFile, records: list[tuple[int, Any]], scan_time: float) -> None:
        self.duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {_SOURCE} (_floe_row BIGINT, _floe_line BIGINT, _floe_v JSON, "
            "_floe_filename VARCHAR, _floe_scan TIMESTAMPTZ, _floe_modified TIMESTAMPTZ)"
        )
        scan = datetime.fromtimestamp(scan_time, UTC)
        modified = datetime.fromtimestamp(file.last_modified, UTC)
        rows = [
            (index, line, json.dumps(value), file.name, scan, modified)
            for index, (line, value) in enumerate(records, start=1)
        ]
        if rows:
            self.duck.executemany(f"INSERT INTO {_SOURCE} VALUES (?, ?, ?, ?, ?, ?)", rows)

    def evaluate(self, targets: list[str], exprs: list[str], records: int) -> tuple[str, list[RowError]]:
        """Fill a temp copy of the target; bad rows are found one by one when the batch fails."""
        scratch = "_floe_out"
        column_list = ", ".join(quote_ident(t) for t in targets)
        self.duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {scratch} AS SELECT {column_list} FROM {self.qualified} LIMIT 0"
        )
        select = ", ".join(exprs)
        cursor = self.conn.cursor()
        try:
            batch = f"INSERT INTO {scratch} SELECT {select} FROM {_SOURCE} ORDER BY _floe_row"
            cursor._duck_conn.execute(_duckdb_sql(cursor, batch))
            return scratch, []
        except Exception:
            self.duck.execute(f"DELETE FROM {scratch}")
        errors: list[RowError] = []
        for row in range(1, records + 1):
            try:
                cursor.execute(f"INSERT INTO {scratch} SELECT {select} FROM {_SOURCE} WHERE _floe_row = {row}")
            except Exception as error:
                errors.append(self._row_error(cursor, row, targets, exprs, str(error)))
        return scratch, errors

    def _row_error(self, cursor: Any, row: int, targets: list[str], exprs: list[str], message: str) -> RowError:
        line = self.duck.execute(f"SELECT _floe_line FROM {_SOURCE} WHERE _floe_row = {row}").fetchone()[0]
        column = None
        for index, (target, expr) in enumerate(zip(targets, exprs, strict=True), start=1):
            try:
                cursor.execute(f"SELECT {expr} FROM {_SOURCE} WHERE _floe_row = {row}")
            except Exception:
                column = f'"{self.table[2]}"["{target}":{index}]'
                break
        return RowError(int(line), 1, snowflake_message(message), column)

    def commit(self, scratch: str, targets: list[str]) -> int:
        column_list = ", ".join(quote_ident(t) for t in targets)
        count = int(self.duck.execute(f"SELECT count(*) FROM {scratch}").fetchone()[0])
        if count:
            self.duck.execute(f"INSERT INTO {self.qualified} ({column_list}) SELECT * FROM {scratch}")
        return count

    def close(self) -> None:
        self.conn.close()


def _rewrite_expr(expr: str) -> str:
    """``$1`` (optionally ``alias.$1``) and METADATA$ columns -> the source temp table's columns."""
    rewritten = re.sub(r"(?:\b[A-Za-z_][\w]*\.)?\$1\b", "_floe_v", expr)
    for metadata, column in _METADATA_COLUMNS.items():
        rewritten = re.sub(re.escape(metadata) + r"\b", column, rewritten, flags=re.IGNORECASE)
    return rewritten


@dataclass
class Prepared:
    """A file evaluated into its scratch table, not yet in the target."""

    loader: TableLoader
    outcome: Outcome
    scratch: str | None
    targets: list[str]
    owns_loader: bool = True  # False: the loader is shared by a batch, which closes it

    def release(self) -> None:
        if self.owns_loader:
            self.loader.close()


def prepare(
    fakesnow: FakeSnow,
    table: QualifiedName,
    *,
    columns: list[str] | None,
    exprs: list[str] | None,
    file: SourceFile,
    options: dict[str, Any],
    on_error: OnError,
    scan_time: float,
    shared: TableLoader | None = None,
) -> Prepared:
    """shared: a loader of the table that the caller keeps for several files, committing each before the
    next is prepared (each file replaces the loader's temp tables)."""
    loader = shared or TableLoader(fakesnow, table)
    owned = shared is None
    try:
        targets, select = loader.select_list(columns, exprs)
        try:
            text = _decompress(file, options).decode("utf-8", errors="replace")
        except _DecompressionError as error:
            return Prepared(loader, whole_file_failure(str(error), on_error), None, targets, owned)
        records, parse_errors, seen = parse_records(text, options)
        loader.stage_records(file, records, scan_time)
        scratch, row_errors = loader.evaluate(targets, select, len(records))
    except BaseException:
        if owned:
            loader.close()
        raise
    errors = sorted(parse_errors + row_errors, key=lambda e: e.line or 0)
    good = len(records) - len(row_errors)
    return Prepared(loader, _decide(on_error, seen, good, errors), scratch, targets, owned)


def _decide(on_error: OnError, parsed: int, good: int, errors: list[RowError]) -> Outcome:
    limit = on_error.error_limit(parsed)
    if not errors:
        return Outcome(STATUS_LOADED, parsed, good, limit)
    if on_error.mode == "CONTINUE":
        status = STATUS_PARTIAL if good else STATUS_FAILED
    elif on_error.mode == "SKIP_FILE" and len(errors) < limit and good:
        status = STATUS_PARTIAL
    else:
        status = STATUS_FAILED
    return Outcome(status, parsed, good if status == STATUS_PARTIAL else 0, limit, errors)


def commit(prepared: Prepared) -> Outcome:
    """Insert the good rows of a loaded or partially loaded file; always releases the connection."""
    try:
        if prepared.scratch and prepared.outcome.status != STATUS_FAILED:
            try:
                prepared.outcome.rows_loaded = prepared.loader.commit(prepared.scratch, prepared.targets)
            except Exception as error:
                prepared.outcome = Outcome(
                    STATUS_FAILED,
                    prepared.outcome.rows_parsed,
                    0,
                    prepared.outcome.error_limit,
                    [RowError(None, None, snowflake_message(str(error)))],
                )
        return prepared.outcome
    finally:
        prepared.release()


def discard(prepared: Prepared) -> None:
    prepared.release()

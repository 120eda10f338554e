"""Connections: the model, and its stores (PostgreSQL in production, SQLite as the embedded default).

A connection's lease lives on its own row (owner, fencing token, expiry) and is taken by one
conditional UPDATE against the database's clock, so it survives a crashed run and holds no database
connection or lock while the run works. Both stores run the same SQL; a small dialect fills in the
clock expression and column types.
"""

from __future__ import annotations

import builtins
import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from kernel.config import ConfigError, LoadMode
from kernel.errors import FloeError
from kernel.identifiers import CONNECTION_ID_PATTERN, ORG_ID_PATTERN, identifier_problem
from kernel.run_history import RETENTION, RunRecord

DEFAULT_FILE_FORMAT = "FLOE_EVENTS_JSON"

# Account locator (xy12345.us-east-1.aws) or org-account name (myorg-account_1).
ACCOUNT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
# A Secrets Manager secret name or ARN.
SECRET_REF_PATTERN = re.compile(r"[A-Za-z0-9/_+=.@:-]{1,2048}")
OWNER_PATTERN = re.compile(r"[\x21-\x7e]{1,200}")
TEMPLATE_VERSION_MAX = 128


class ConnectionStatus(StrEnum):
    PENDING_CUSTOMER_SETUP = "pending_customer_setup"
    READY = "ready"
    ERROR = "error"


_STATUS_BY_VALUE = {status.value: status for status in ConnectionStatus}


class InvalidConnection(FloeError):
    """A connection field is malformed; `field` names it (the value is never echoed)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"invalid connection {field}: {rule}")
        self.field = field


class ConnectionStoreError(FloeError):
    """Base of the stores' own errors."""


class UnknownConnection(ConnectionStoreError):
    def __init__(self, connection_id: str) -> None:
        super().__init__(f"unknown connection {connection_id!r}")
        self.connection_id = connection_id


class DuplicateConnection(ConnectionStoreError):
    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id!r} already exists")
        self.connection_id = connection_id


class StoreUnavailable(ConnectionStoreError):
    """The connection database refused or could not be reached; `kind` names why, never the DSN."""

    transient = True

    def __init__(self, kind: str) -> None:
        super().__init__(f"cannot connect to the connections database ({kind}): check FLOE_CONNECTIONS_DSN(_SECRET)")
        self.kind = kind


AUTHENTICATION_FAILED = "authentication failed"
MALFORMED_DSN = "malformed DSN"


def _failure_kind(error: Exception) -> str:
    """Read from the driver's text, which is never shown: libpq's sqlstate is unset on connection errors."""
    if type(error).__name__ == "ProgrammingError":  # the DSN did not parse (its text quotes the DSN)
        return MALFORMED_DSN
    text = str(error).lower()
    if "authentication failed" in text:
        return AUTHENTICATION_FAILED
    if "invalid" in text:  # parsed, but an option's value is refused (sslmode=bogus)
        return MALFORMED_DSN
    return "unreachable"


class StoreMissing(ConnectionStoreError):
    """A read-only command found no connection database where FLOE_CONNECTIONS_DSN points."""


class LeaseLost(ConnectionStoreError):
    """The caller's lease is no longer the connection's current one (expired, taken over or released)."""


@dataclass(frozen=True, kw_only=True)
class Connection:
    connection_id: str
    org_id: str
    account: str
    user: str
    role: str
    warehouse: str
    database: str
    schema: str
    table: str
    file_format: str = DEFAULT_FILE_FORMAT
    secret_ref: str
    active: bool = True
    status: ConnectionStatus = ConnectionStatus.PENDING_CUSTOMER_SETUP
    status_detail: str | None = None
    template_version: str | None = None
    # The database, schema and table `floe provision` last brought to ready (`target_names`): the tick
    # loads only there, so an edited row moves nothing until provision runs (docs/architecture.md).
    provisioned_target: str | None = None
    load_mode: LoadMode | None = None  # None: the deployment's FLOE_LOAD_MODE
    last_settled_at: datetime | None = None  # REFRESH mode: when a tick last read COPY_HISTORY and settled

    def __post_init__(self) -> None:
        _check_pattern("connection_id", self.connection_id, CONNECTION_ID_PATTERN)
        _check_pattern("org_id", self.org_id, ORG_ID_PATTERN)
        _check_pattern("account", self.account, ACCOUNT_PATTERN)
        for name in ("user", "role", "warehouse", "database", "schema", "table", "file_format"):
            _check_identifier(name, getattr(self, name))
        _check_pattern("secret_ref", self.secret_ref, SECRET_REF_PATTERN)
        if not isinstance(self.active, bool):
            raise InvalidConnection("active", "must be a bool")
        object.__setattr__(self, "status", _parse_status(self.status))
        if self.status_detail is not None and not isinstance(self.status_detail, str):
            raise InvalidConnection("status_detail", "must be a string or None")
        if self.template_version is not None:
            _check_text("template_version", self.template_version, TEMPLATE_VERSION_MAX)
        if self.provisioned_target is not None and _names_of(self.provisioned_target) is None:
            raise InvalidConnection("provisioned_target", "must be a JSON list of database, schema and table")
        if self.load_mode is not None:
            object.__setattr__(self, "load_mode", _parse_load_mode(self.load_mode))
        if self.last_settled_at is not None and not isinstance(self.last_settled_at, datetime):
            raise InvalidConnection("last_settled_at", "must be a datetime or None")

    def mode(self, default: LoadMode) -> LoadMode:
        """The connection's own load mode, else the deployment's."""
        return self.load_mode or default

    @property
    def target_names(self) -> str:
        """Where this row says to load, in the form `provisioned_target` records."""
        return target_names(self.database, self.schema, self.table)

    @property
    def target_moved(self) -> bool:
        """The row names another database, schema or table than provision set up (or none recorded)."""
        provisioned = None if self.provisioned_target is None else _names_of(self.provisioned_target)
        return provisioned != [self.database, self.schema, self.table]


def target_names(database: str, schema: str, table: str) -> str:
    return json.dumps([database, schema, table])


def _names_of(text: str) -> list[str] | None:
    try:
        names = json.loads(text)
    except ValueError:
        return None
    if isinstance(names, list) and len(names) == 3 and all(isinstance(n, str) for n in names):
        return names
    return None


def _check_pattern(field: str, value: object, pattern: re.Pattern[str]) -> None:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidConnection(field, f"must match {pattern.pattern}")


def _check_text(field: str, value: object, max_length: int) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= max_length or not value.isprintable():
        raise InvalidConnection(field, f"must be 1-{max_length} printable characters")


def _check_identifier(field: str, value: object) -> None:
    """The renderer's own rule (quoting happens there), so a stored row is always one Floe can render."""
    if (problem := identifier_problem(value)) is not None:
        raise InvalidConnection(field, problem)


def _parse_load_mode(value: object) -> LoadMode:
    if isinstance(value, str) and value in tuple(LoadMode):
        return LoadMode(value)
    raise InvalidConnection("load_mode", f"must be one of {', '.join(LoadMode)}")


def _parse_status(value: object) -> ConnectionStatus:
    if isinstance(value, str) and value in _STATUS_BY_VALUE:
        return _STATUS_BY_VALUE[value]
    raise InvalidConnection("status", f"must be one of {', '.join(_STATUS_BY_VALUE)}")


@dataclass(frozen=True)
class Lease:
    connection_id: str
    owner: str
    token: int  # fencing token: strictly increasing per connection across acquisitions
    expires_at: datetime  # UTC, from the database's clock


class ConnectionStore(Protocol):
    def migrate(self) -> None: ...
    def schema_version(self) -> int: ...
    def applied_version(self) -> int: ...
    def add(self, connection: Connection) -> None: ...
    def save(self, connection: Connection) -> None: ...
    def get(self, connection_id: str) -> Connection: ...
    def list(self, active_only: bool = False) -> builtins.list[Connection]: ...
    def set_template_version(self, connection_id: str, version: str, lease: Lease) -> None: ...
    def set_provisioned_target(self, connection_id: str, names: str) -> None: ...
    def set_load_mode(self, connection_id: str, mode: LoadMode | None) -> None: ...
    def set_last_settled(self, connection_id: str, at: datetime, lease: Lease) -> None: ...
    def set_status(self, connection_id: str, status: ConnectionStatus | str, detail: str | None = None) -> None: ...
    def set_active(self, connection_id: str, active: bool) -> None: ...
    def remove(self, connection_id: str) -> None: ...
    def record_run(self, run: RunRecord) -> None: ...
    def runs(self, connection_id: str, since: datetime) -> builtins.list[RunRecord]: ...
    def acquire_lease(self, connection_id: str, owner: str, ttl: timedelta) -> Lease | None: ...
    def release_lease(self, lease: Lease) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


# -- SQL shared by both stores ------------------------------------------------------------------------

# Model field -> column. `user`, `table`... are reserved words (and a bare `user` in PostgreSQL is
# current_user), so those columns carry a suffix.
_RENAMED = {name: f"{name}_name" for name in ("user", "role", "database", "schema", "table")}
_COLUMN_OF_FIELD = {field.name: _RENAMED.get(field.name, field.name) for field in fields(Connection)}
_FIELDS = tuple(_COLUMN_OF_FIELD)
_COLUMNS = ", ".join(_COLUMN_OF_FIELD.values())
_PLACEHOLDERS = ", ".join("?" for _ in _FIELDS)
# `save` never moves the provisioned target: only provision records it (an edited row stays unprovisioned).
_UPSERT_SET = ", ".join(
    f"{c} = excluded.{c}" for c in _COLUMN_OF_FIELD.values() if c not in ("connection_id", "provisioned_target")
)
_SELECT = f"SELECT {_COLUMNS} FROM connections"


@dataclass(frozen=True)
class _Dialect:
    now: str  # the database's clock, in the type of the `timestamp` column
    seconds: str  # turns a `?` float of seconds into something addable to `now`
    timestamp: str
    boolean: str
    bigint: str
    json_array: str  # the function building a JSON array text from its arguments
    stamp: Callable[[datetime], object]  # a datetime as the `timestamp` column takes it


_POSTGRES = _Dialect(
    now="now()",
    seconds="? * interval '1 second'",
    timestamp="TIMESTAMPTZ",
    boolean="BOOLEAN",
    bigint="BIGINT",
    json_array="json_build_array",
    stamp=lambda value: value,
)
# SQLite timestamps are REAL Unix seconds: sortable, millisecond precision from julianday('now').
_SQLITE = _Dialect(
    now="((julianday('now') - 2440587.5) * 86400.0)",
    seconds="?",
    timestamp="REAL",
    boolean="INTEGER",
    bigint="INTEGER",
    json_array="json_array",
    stamp=lambda value: value.timestamp(),
)


def _utc_datetime(value: datetime | float) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(value, UTC)


_STATUS_VALUES = ", ".join(f"'{status.value}'" for status in ConnectionStatus)

# (version, statements); statements are formatted with the dialect. Append only, never edit.
_MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            f"""CREATE TABLE connections (
                connection_id TEXT PRIMARY KEY,
                org_id TEXT NOT NULL,
                account TEXT NOT NULL,
                user_name TEXT NOT NULL,
                role_name TEXT NOT NULL,
                warehouse TEXT NOT NULL,
                database_name TEXT NOT NULL,
                schema_name TEXT NOT NULL,
                table_name TEXT NOT NULL,
                file_format TEXT NOT NULL,
                secret_ref TEXT NOT NULL,
                active {{d.boolean}} NOT NULL,
                status TEXT NOT NULL CHECK (status IN ({_STATUS_VALUES})),
                status_detail TEXT,
                template_version TEXT,
                lease_owner TEXT,
                lease_token {{d.bigint}} NOT NULL DEFAULT 0,
                lease_expires_at {{d.timestamp}}
            )""",
            "CREATE INDEX connections_org_id ON connections (org_id)",
        ),
    ),
    (
        2,
        (
            "ALTER TABLE connections ADD COLUMN provisioned_target TEXT",
            # A ready row was provisioned (or last loaded) at its current names: pin it there, so a
            # row edited after this release waits for `floe provision`.
            "UPDATE connections SET provisioned_target = "
            "CAST({d.json_array}(database_name, schema_name, table_name) AS TEXT) WHERE status = 'ready'",
        ),
    ),
    (
        3,
        (
            """CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                connection_id TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at {d.timestamp} NOT NULL,
                completed_at {d.timestamp} NOT NULL,
                events_delivered {d.bigint} NOT NULL,
                files_loaded {d.bigint} NOT NULL,
                files_dead_lettered {d.bigint} NOT NULL,
                files_in_flight {d.bigint} NOT NULL,
                error TEXT
            )""",
            "CREATE INDEX runs_connection_completed ON runs (connection_id, completed_at)",
        ),
    ),
    (
        4,
        (
            "ALTER TABLE connections ADD COLUMN load_mode TEXT CHECK (load_mode IN ('refresh', 'rest'))",
            "ALTER TABLE connections ADD COLUMN last_settled_at {d.timestamp}",
        ),
    ),
)
_RUN_COLUMNS = tuple(field.name for field in fields(RunRecord))


LATEST_SCHEMA_VERSION = max(version for version, _ in _MIGRATIONS)


class _SqlStore(ABC):
    """Every store operation, over three driver hooks: `_query`, `_transaction` and `close`.

    SQL uses `?` placeholders; a driver with another style translates them.
    """

    _dialect: _Dialect
    # Serialises concurrent migrate() calls; SQLite's BEGIN IMMEDIATE already does.
    _migration_lock: str | None = None

    @abstractmethod
    def _query(self, sql: str, params: Sequence[object] = ()) -> builtins.list[tuple[Any, ...]]:
        """Run one statement; return its rows (none for a statement without a result)."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """Group statements into one transaction that holds the write lock (SQLite) from its start."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self, sql: str, params: Sequence[object] = ()) -> builtins.list[tuple[Any, ...]]:
        """One write statement as its own transaction; returns its RETURNING rows."""
        with self._transaction():
            return self._query(sql, params)

    # -- schema ---------------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Apply the migrations this database lacks, in one transaction (a no-op when up to date)."""
        d = self._dialect
        with self._transaction():
            self._query(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                f"version INTEGER PRIMARY KEY, applied_at {d.timestamp} NOT NULL)"
            )
            if self._migration_lock:
                self._query(self._migration_lock)
            # Each missing version, not only those above the highest: versions are numbered by branch
            # and may be merged out of order.
            applied = {int(row[0]) for row in self._query("SELECT version FROM schema_version")}
            for version, statements in _MIGRATIONS:
                if version not in applied:
                    for statement in statements:
                        self._query(statement.format(d=d))
                    self._query(f"INSERT INTO schema_version VALUES (?, {d.now})", (version,))

    def schema_version(self) -> int:
        (version,) = self._query("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0]
        return int(version)

    def applied_version(self) -> int:
        """`schema_version()`, or 0 before the first migration created its table."""
        try:
            return self.schema_version()
        except Exception:  # no schema_version table yet; the driver's text is not ours to show
            return 0

    def require_migrated(self) -> None:
        """A `StoreMissing` error unless every migration is applied (read-only callers never migrate)."""
        current = self.applied_version()
        if current < LATEST_SCHEMA_VERSION:
            raise StoreMissing(
                f"the connection database is at schema version {current}, Floe needs {LATEST_SCHEMA_VERSION}"
            )

    # -- rows -----------------------------------------------------------------------------------------

    def add(self, connection: Connection) -> None:
        rows = self._write(
            f"INSERT INTO connections ({_COLUMNS}) VALUES ({_PLACEHOLDERS}) "
            "ON CONFLICT (connection_id) DO NOTHING RETURNING connection_id",
            _row_of(connection, self._dialect),
        )
        if not rows:
            raise DuplicateConnection(connection.connection_id)

    def save(self, connection: Connection) -> None:
        """Insert or update every column except the lease's."""
        self._write(
            f"INSERT INTO connections ({_COLUMNS}) VALUES ({_PLACEHOLDERS}) "
            f"ON CONFLICT (connection_id) DO UPDATE SET {_UPSERT_SET}",
            _row_of(connection, self._dialect),
        )

    def get(self, connection_id: str) -> Connection:
        rows = self._query(f"{_SELECT} WHERE connection_id = ?", (connection_id,))
        if not rows:
            raise UnknownConnection(connection_id)
        return _connection_of(rows[0])

    def list(self, active_only: bool = False) -> builtins.list[Connection]:
        where, params = (" WHERE active = ?", (True,)) if active_only else ("", ())
        rows = self._query(f"{_SELECT}{where} ORDER BY connection_id", params)
        return [_connection_of(row) for row in rows]

    def set_status(self, connection_id: str, status: ConnectionStatus | str, detail: str | None = None) -> None:
        rows = self._write(
            "UPDATE connections SET status = ?, status_detail = ? WHERE connection_id = ? RETURNING connection_id",
            (_parse_status(status).value, detail, connection_id),
        )
        if not rows:
            raise UnknownConnection(connection_id)

    def set_active(self, connection_id: str, active: bool) -> None:
        """Pause (False) or resume (True): the dispatcher lists, and the tick loads, only active rows."""
        rows = self._write(
            "UPDATE connections SET active = ? WHERE connection_id = ? RETURNING connection_id",
            (active, connection_id),
        )
        if not rows:
            raise UnknownConnection(connection_id)

    def remove(self, connection_id: str) -> None:
        """Delete the row and its run history."""
        with self._transaction():
            if not self._query(
                "DELETE FROM connections WHERE connection_id = ? RETURNING connection_id", (connection_id,)
            ):
                raise UnknownConnection(connection_id)
            self._query("DELETE FROM runs WHERE connection_id = ?", (connection_id,))

    # -- run history ----------------------------------------------------------------------------------

    def record_run(self, run: RunRecord) -> None:
        """Keep one run (a repeated run id is kept once) and forget the connection's runs past RETENTION."""
        values = [self._dialect.stamp(v) if isinstance(v, datetime) else v for v in astuple(run)]
        with self._transaction():
            self._query(
                f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' for _ in _RUN_COLUMNS)}) "
                "ON CONFLICT (run_id) DO NOTHING",
                values,
            )
            self._query(
                "DELETE FROM runs WHERE connection_id = ? AND completed_at < ?",
                (run.connection_id, self._dialect.stamp(run.completed_at - RETENTION)),
            )

    def runs(self, connection_id: str, since: datetime) -> builtins.list[RunRecord]:
        """The connection's runs completed at or after `since`, oldest first."""
        rows = self._query(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE connection_id = ? AND completed_at >= ? "
            "ORDER BY completed_at",
            (connection_id, self._dialect.stamp(since)),
        )
        return [_run_of(row) for row in rows]

    def set_template_version(self, connection_id: str, version: str, lease: Lease) -> None:
        """Record the template version, fenced: only while `lease` is still the current, live one."""
        if lease.connection_id != connection_id:
            raise LeaseLost("the lease belongs to another connection")
        _check_text("template_version", version, TEMPLATE_VERSION_MAX)
        rows = self._write(
            "UPDATE connections SET template_version = ? "
            "WHERE connection_id = ? AND lease_owner = ? AND lease_token = ? "
            f"AND lease_expires_at > {self._dialect.now} RETURNING connection_id",
            (version, connection_id, lease.owner, lease.token),
        )
        if not rows:
            self._require(connection_id)
            raise LeaseLost(f"lease {lease.token} on {connection_id!r} is no longer current")

    def set_provisioned_target(self, connection_id: str, names: str) -> None:
        """Record where provision brought the connection to ready (`Connection.target_names`)."""
        if _names_of(names) is None:
            raise InvalidConnection("provisioned_target", "must be a JSON list of database, schema and table")
        rows = self._write(
            "UPDATE connections SET provisioned_target = ? WHERE connection_id = ? RETURNING connection_id",
            (names, connection_id),
        )
        if not rows:
            raise UnknownConnection(connection_id)

    def set_load_mode(self, connection_id: str, mode: LoadMode | None) -> None:
        """The connection's own load mode; None: the deployment's FLOE_LOAD_MODE. Takes effect at the next tick."""
        value = None if mode is None else _parse_load_mode(mode).value
        rows = self._write(
            "UPDATE connections SET load_mode = ? WHERE connection_id = ? RETURNING connection_id",
            (value, connection_id),
        )
        if not rows:
            raise UnknownConnection(connection_id)

    def set_last_settled(self, connection_id: str, at: datetime, lease: Lease) -> None:
        """Record when the tick last settled from COPY_HISTORY, fenced like `set_template_version`."""
        if lease.connection_id != connection_id:
            raise LeaseLost("the lease belongs to another connection")
        rows = self._write(
            "UPDATE connections SET last_settled_at = ? "
            "WHERE connection_id = ? AND lease_owner = ? AND lease_token = ? "
            f"AND lease_expires_at > {self._dialect.now} RETURNING connection_id",
            (_db_time(at, self._dialect), connection_id, lease.owner, lease.token),
        )
        if not rows:
            self._require(connection_id)
            raise LeaseLost(f"lease {lease.token} on {connection_id!r} is no longer current")

    # -- lease ----------------------------------------------------------------------------------------

    def acquire_lease(self, connection_id: str, owner: str, ttl: timedelta) -> Lease | None:
        """Take the lease if free or expired (one conditional UPDATE); None while a live holder has it."""
        if OWNER_PATTERN.fullmatch(owner) is None:
            raise InvalidConnection("lease owner", "1-200 printable ASCII characters without spaces")
        if ttl <= timedelta(0):
            raise InvalidConnection("lease ttl", "must be positive")
        d = self._dialect
        rows = self._write(
            f"UPDATE connections SET lease_owner = ?, lease_token = lease_token + 1, "
            f"lease_expires_at = {d.now} + {d.seconds} "
            f"WHERE connection_id = ? AND (lease_owner IS NULL OR lease_expires_at <= {d.now}) "
            "RETURNING lease_token, lease_expires_at",
            (owner, ttl.total_seconds(), connection_id),
        )
        if not rows:
            self._require(connection_id)
            return None
        token, expires_at = rows[0]
        return Lease(connection_id, owner, int(token), _utc_datetime(expires_at))

    def release_lease(self, lease: Lease) -> bool:
        """Release if `lease` is still the holder (owner and token match); False if it was lost."""
        rows = self._write(
            "UPDATE connections SET lease_owner = NULL, lease_expires_at = NULL "
            "WHERE connection_id = ? AND lease_owner = ? AND lease_token = ? RETURNING connection_id",
            (lease.connection_id, lease.owner, lease.token),
        )
        return bool(rows)

    def _require(self, connection_id: str) -> None:
        if not self._query("SELECT 1 FROM connections WHERE connection_id = ?", (connection_id,)):
            raise UnknownConnection(connection_id)


def _row_of(connection: Connection, dialect: _Dialect) -> tuple[object, ...]:
    values = {name: getattr(connection, name) for name in _FIELDS}
    # Plain str for the enums: drivers need not know them.
    values["status"] = connection.status.value
    values["load_mode"] = connection.load_mode.value if connection.load_mode else None
    if connection.last_settled_at is not None:
        values["last_settled_at"] = _db_time(connection.last_settled_at, dialect)
    return tuple(values.values())


def _db_time(at: datetime, dialect: _Dialect) -> object:
    """A datetime as the `timestamp` column holds it (SQLite: REAL Unix seconds)."""
    return at.timestamp() if dialect is _SQLITE else at.astimezone(UTC)


def _run_of(row: Sequence[Any]) -> RunRecord:
    values = dict(zip(_RUN_COLUMNS, row, strict=True))
    for name in ("started_at", "completed_at"):
        values[name] = _utc_datetime(values[name])
    return RunRecord(**values)


def _connection_of(row: Sequence[Any]) -> Connection:
    values = dict(zip(_FIELDS, row, strict=True))
    values["active"] = bool(values["active"])  # SQLite stores 0/1
    if values["last_settled_at"] is not None:
        values["last_settled_at"] = _utc_datetime(values["last_settled_at"])
    return Connection(**values)


class PostgresStore(_SqlStore):
    """One autocommit psycopg connection; every lease operation is a single short statement."""

    _dialect = _POSTGRES
    _migration_lock = "LOCK TABLE schema_version IN SHARE ROW EXCLUSIVE MODE"
    STATEMENT_TIMEOUT = "15s"  # a lease statement stuck behind a lock fails instead of hanging a tick

    def __init__(self, dsn: str, connect_timeout_s: int = 10) -> None:
        import psycopg  # here, not at the top: a SQLite deployment's cold start never pays for it

        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s)
        except psycopg.Error as error:  # its text can quote the DSN, password included: name the kind only
            kind = _failure_kind(error)
            if kind == MALFORMED_DSN:  # no retry fixes it: a configuration error
                raise ConfigError(
                    f"cannot connect to the connections database ({kind}): fix FLOE_CONNECTIONS_DSN(_SECRET)"
                ) from None
            raise StoreUnavailable(kind) from None
        self._conn.execute(f"SET statement_timeout = '{self.STATEMENT_TIMEOUT}'")

    def _query(self, sql: str, params: Sequence[object] = ()) -> builtins.list[tuple[Any, ...]]:
        cursor = self._conn.execute(sql.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description is not None else []

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    def _write(self, sql: str, params: Sequence[object] = ()) -> builtins.list[tuple[Any, ...]]:
        return self._query(sql, params)  # autocommit: a single statement is already atomic

    def close(self) -> None:
        self._conn.close()


class SqliteStore(_SqlStore):
    """The embedded store: WAL, and BEGIN IMMEDIATE around every write.

    BEGIN IMMEDIATE takes the write lock before anything is read, so racing processes queue on the busy
    timeout and each then sees its predecessor's lease; a deferred transaction that read first (as
    migrate() does) could instead fail with SQLITE_BUSY on a stale snapshot.
    """

    _dialect = _SQLITE
    BUSY_TIMEOUT_S = 30.0

    def __init__(self, path: str | Path) -> None:
        self._conn = sqlite3.connect(path, timeout=self.BUSY_TIMEOUT_S, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes under WAL

    def _query(self, sql: str, params: Sequence[object] = ()) -> builtins.list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


_SCHEME_PATTERN = re.compile(r"[a-z][a-z0-9+.-]{0,31}")


def open_store(dsn: str, *, create: bool = True) -> ConnectionStore:
    """`postgresql://…` / `postgres://…` → PostgresStore; `sqlite:///path` → SqliteStore.

    `sqlite:///rel/path` is relative to the working directory, `sqlite:////abs/path` absolute; the
    parent directory is created, unless `create` is False (a read-only caller): then a missing file is
    a `StoreMissing` error and nothing is created.
    """
    scheme, separator, rest = dsn.partition("://")
    scheme = scheme.lower()
    if not separator or _SCHEME_PATTERN.fullmatch(scheme) is None:
        raise ConfigError("FLOE_CONNECTIONS_DSN must start with postgresql://, postgres:// or sqlite:///")
    if scheme in ("postgresql", "postgres"):
        return _checked(PostgresStore(dsn), create)
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError(
                "FLOE_CONNECTIONS_DSN: a SQLite DSN is sqlite:///relative/path or sqlite:////absolute/path"
            )
        path = Path(rest[1:])
        if not create and not path.is_file():
            raise StoreMissing(f"no connection database at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return _checked(SqliteStore(path), create)
    raise ConfigError(
        f"FLOE_CONNECTIONS_DSN scheme {scheme!r} is not supported: use postgresql://, postgres:// or sqlite:///"
    )


def _checked(store: _SqlStore, create: bool) -> _SqlStore:
    if not create:
        try:
            store.require_migrated()
        except StoreMissing:
            store.close()
            raise
    return store

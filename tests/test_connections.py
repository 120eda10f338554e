"""The connection model, open_store, and the stores' rows and schema, on real PostgreSQL and SQLite."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack.postgres import PostgresStartError, TemporaryPostgres, scratch_schema
from kernel import connections
from kernel.config import ConfigError, LoadMode
from kernel.connections import (
    DEFAULT_FILE_FORMAT,
    LATEST_SCHEMA_VERSION,
    Connection,
    ConnectionStatus,
    ConnectionStore,
    DuplicateConnection,
    InvalidConnection,
    LeaseLost,
    PostgresStore,
    SqliteStore,
    UnknownConnection,
    _SqlStore,
    open_store,
)
from kernel.errors import FloeError
from kernel.run_history import RETENTION, RunRecord


@pytest.fixture
def store(store_dsn: str) -> Iterator[ConnectionStore]:
    with open_store(store_dsn) as opened:
        opened.migrate()
        yield opened


def make_connection(**overrides: Any) -> Connection:
    fields: dict[str, Any] = {
        "connection_id": "c-1",
        "org_id": "acme",
        "account": "myorg-acme_prod",
        "user": "FLOE_LOADER",
        "role": "FLOE_ROLE",
        "warehouse": "FLOE_WH",
        "database": "EVENTS",
        "schema": "PUBLIC",
        "table": "FLAG_EVENTS",
        "secret_ref": "floe/connections/c-1",
    }
    return Connection(**(fields | overrides))


# -- the model ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("org_id", ["a", "0", "acme", "acme-eu-1", "1-2-3", "a" * 49])
def test_org_id_accepts_lowercase_path_safe_names(org_id: str) -> None:
    assert make_connection(org_id=org_id).org_id == org_id


@pytest.mark.parametrize(
    "org_id",
    [
        "../x",
        "a/b",
        "%2F",
        "a%2Fb",
        "Acme",
        "",
        "-acme",
        "acme_1",
        "acme.eu",
        " acme",
        "acme\n",
        "a" * 50,  # floe-snowflake-<org_id> must fit IAM's 64-character role names
        "\u0430cme",  # Cyrillic a
        "\uff41cme",  # fullwidth a
        "acme\u200b",  # zero-width space
        "\u0661",  # Arabic-Indic digit one
    ],
)
def test_org_id_refuses_anything_else(org_id: str) -> None:
    with pytest.raises(InvalidConnection, match="org_id") as raised:
        make_connection(org_id=org_id)
    assert raised.value.field == "org_id"


def test_invalid_value_is_not_echoed() -> None:
    with pytest.raises(InvalidConnection) as raised:
        make_connection(org_id="secret-Looking/Value")
    assert "secret-Looking" not in str(raised.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("connection_id", ""),
        ("connection_id", "c/1"),
        ("account", "acme.snowflakecomputing.com/x"),
        ("account", ""),
        ("user", ""),
        ("table", "EVENTS\nDROP"),
        ("schema", "x" * 256),
        ("file_format", ""),
        ("secret_ref", "floe/connections/c 1"),
        ("active", "yes"),
        ("status", "bogus"),
        ("template_version", ""),
    ],
)
def test_other_fields_are_validated(field: str, value: object) -> None:
    with pytest.raises(InvalidConnection) as raised:
        make_connection(**{field: value})
    assert raised.value.field == field


def test_defaults_and_status_coercion() -> None:
    connection = make_connection(status="ready")
    assert connection.status is ConnectionStatus.READY
    assert make_connection().status is ConnectionStatus.PENDING_CUSTOMER_SETUP
    assert make_connection().file_format == DEFAULT_FILE_FORMAT
    assert make_connection().active is True


# -- open_store ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn", ["mysql://floe:hunter2@db/floe", "floe:hunter2@db", "hunter2", "http://x:hunter2@y", ""]
)
def test_open_store_refuses_other_schemes_without_echoing_the_password(dsn: str) -> None:
    with pytest.raises(ConfigError, match="DSN") as raised:
        open_store(dsn)
    assert "hunter2" not in str(raised.value)


def test_open_store_names_the_bad_scheme() -> None:
    with pytest.raises(ConfigError, match="'mysql'"):
        open_store("mysql://floe:pw@db/floe")


@pytest.mark.parametrize("dsn", ["sqlite://relative.db", "sqlite:///", "sqlite://"])
def test_open_store_refuses_malformed_sqlite_dsns(dsn: str) -> None:
    with pytest.raises(ConfigError, match="sqlite"):
        open_store(dsn)


def test_open_store_sqlite_relative_path_creates_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///.floe/nested/connections.db") as store:
        assert isinstance(store, SqliteStore)
        store.migrate()
    assert (tmp_path / ".floe" / "nested" / "connections.db").is_file()


def test_open_store_sqlite_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "connections.db"
    with open_store(f"sqlite:///{target}") as store:
        store.migrate()
    assert target.is_file()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_postgres_schemes(pg_dsn: str, scheme: str) -> None:
    dsn = scheme + pg_dsn[pg_dsn.index("://") :]
    with open_store(dsn) as store:
        assert isinstance(store, PostgresStore)


# -- schema -------------------------------------------------------------------------------------------


def test_migrate_creates_the_schema(store_dsn: str) -> None:
    with open_store(store_dsn) as store:
        with pytest.raises((sqlite3.OperationalError, psycopg.errors.UndefinedTable)):
            store.list()
        store.migrate()
        assert store.list() == []
        assert store.schema_version() == LATEST_SCHEMA_VERSION


def test_migrate_twice_is_a_no_op(store: ConnectionStore, store_dsn: str) -> None:
    store.add(make_connection())
    store.migrate()
    with open_store(store_dsn) as other:
        other.migrate()
    assert store.schema_version() == LATEST_SCHEMA_VERSION
    assert store.list() == [make_connection()]


def test_migration_2_pins_ready_rows_at_their_current_names(store_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows from before provisioned_target: a ready one was provisioned (or loaded) at its current names."""
    with open_store(store_dsn) as store:
        assert isinstance(store, _SqlStore)
        monkeypatch.setattr(connections, "_MIGRATIONS", connections._MIGRATIONS[:1])
        store.migrate()
        for connection_id, status in (("c-ready", "ready"), ("c-new", "pending_customer_setup")):
            store._query(
                "INSERT INTO connections (connection_id, org_id, account, user_name, role_name, warehouse, "
                "database_name, schema_name, table_name, file_format, secret_ref, active, status) "
                "VALUES (?, 'acme', 'A', 'U', 'R', 'W', 'Analytics DB', 'Sch\u00e9ma \"1\"', 'T', 'F', 'floe/x', ?, ?)",
                (connection_id, True, status),
            )
        monkeypatch.undo()
        store.migrate()
        assert store.schema_version() == LATEST_SCHEMA_VERSION
        ready, new = store.get("c-ready"), store.get("c-new")
    assert ready.provisioned_target is not None
    assert not ready.target_moved
    assert (new.provisioned_target, new.target_moved) == (None, True)


def test_only_provision_records_the_provisioned_target(store: ConnectionStore) -> None:
    """`save` (an edit of the row) never moves it: the tick then sees the edit as unprovisioned."""
    store.add(make_connection())
    store.set_provisioned_target("c-1", make_connection().target_names)
    assert not store.get("c-1").target_moved
    store.save(make_connection(database="EVENTS_ELSEWHERE", provisioned_target=None))
    edited = store.get("c-1")
    assert (edited.database, edited.provisioned_target) == ("EVENTS_ELSEWHERE", make_connection().target_names)
    assert edited.target_moved
    with pytest.raises(UnknownConnection):
        store.set_provisioned_target("nope", edited.target_names)


@pytest.mark.parametrize("recorded", ["", "[]", '["A", "B"]', '{"database": "A"}', "not json", '["A", "B", 3]'])
def test_a_malformed_provisioned_target_is_refused(recorded: str) -> None:
    with pytest.raises(InvalidConnection, match="provisioned_target"):
        make_connection(provisioned_target=recorded)


# -- rows ---------------------------------------------------------------------------------------------


def test_add_then_get_round_trips_every_field(store: ConnectionStore) -> None:
    connection = make_connection(
        active=False,
        status=ConnectionStatus.ERROR,
        status_detail="role missing",
        template_version="sha256:abc",
        file_format="MY_FORMAT",
        table='odd "name"',
    )
    store.add(connection)
    assert store.get("c-1") == connection


def test_add_refuses_a_duplicate(store: ConnectionStore) -> None:
    store.add(make_connection())
    with pytest.raises(DuplicateConnection):
        store.add(make_connection(org_id="other"))
    assert store.get("c-1").org_id == "acme"


def test_get_unknown_raises_a_floe_error_naming_the_id(store: ConnectionStore) -> None:
    with pytest.raises(UnknownConnection) as raised:
        store.get("nope")
    assert isinstance(raised.value, FloeError)
    assert str(raised.value) == "unknown connection 'nope'"


def test_save_inserts_then_updates(store: ConnectionStore) -> None:
    store.save(make_connection())
    changed = make_connection(warehouse="BIGGER_WH", active=False, template_version="v2")
    store.save(changed)
    assert store.get("c-1") == changed
    assert len(store.list()) == 1


def test_list_orders_by_id_and_filters_active(store: ConnectionStore) -> None:
    for connection_id, active in [("c-3", True), ("c-1", False), ("c-2", True)]:
        store.add(make_connection(connection_id=connection_id, active=active))
    assert [c.connection_id for c in store.list()] == ["c-1", "c-2", "c-3"]
    assert [c.connection_id for c in store.list(active_only=True)] == ["c-2", "c-3"]


def test_set_status(store: ConnectionStore) -> None:
    store.add(make_connection())
    store.set_status("c-1", ConnectionStatus.ERROR, "storage integration missing")
    row = store.get("c-1")
    assert (row.status, row.status_detail) == (ConnectionStatus.ERROR, "storage integration missing")
    store.set_status("c-1", "ready")
    row = store.get("c-1")
    assert (row.status, row.status_detail) == (ConnectionStatus.READY, None)


def test_set_status_refuses_unknown_rows_and_statuses(store: ConnectionStore) -> None:
    with pytest.raises(UnknownConnection):
        store.set_status("nope", ConnectionStatus.READY)
    store.add(make_connection())
    with pytest.raises(InvalidConnection, match="status"):
        store.set_status("c-1", "bogus")
    assert store.get("c-1").status is ConnectionStatus.PENDING_CUSTOMER_SETUP


def test_pause_resume_and_remove(store: ConnectionStore) -> None:
    store.add(make_connection())
    store.set_active("c-1", False)
    assert store.get("c-1").active is False
    assert store.list(active_only=True) == []
    store.set_active("c-1", True)
    assert store.get("c-1").active is True
    store.remove("c-1")
    assert store.list() == []
    with pytest.raises(UnknownConnection):
        store.set_active("c-1", True)
    with pytest.raises(UnknownConnection):
        store.remove("c-1")


def test_run_history_is_kept_once_per_run_and_bounded(store: ConnectionStore) -> None:
    store.add(make_connection())
    now = datetime.now(UTC).replace(microsecond=0)

    def run(run_id: str, age: timedelta, events: int) -> RunRecord:
        at = now - age
        return RunRecord(run_id, "c-1", "ok", at - timedelta(seconds=5), at, events_delivered=events)

    old, recent = run("r-old", RETENTION + timedelta(hours=1), 3), run("r-new", timedelta(0), 7)
    store.record_run(old)
    store.record_run(recent)  # past RETENTION, the old one goes
    store.record_run(recent)
    assert store.runs("c-1", since=now - 2 * RETENTION) == [recent]
    store.set_active("c-1", False)
    store.remove("c-1")
    assert store.runs("c-1", since=now - RETENTION) == []


def test_stores_share_one_database(store: ConnectionStore, store_dsn: str) -> None:
    with open_store(store_dsn) as other:
        other.add(make_connection())
    assert store.get("c-1") == make_connection()
    store.save(replace(make_connection(), status=ConnectionStatus.READY))
    with open_store(store_dsn) as other:
        assert other.get("c-1").status is ConnectionStatus.READY


# -- the throwaway cluster ----------------------------------------------------------------------------


def test_temporary_postgres_fails_clearly_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(PostgresStartError, match="initdb"), TemporaryPostgres(bin_dir=tmp_path / "no-bin"):
        pass
    assert list(scratch.iterdir()) == []


def test_scratch_schema_isolates_and_drops(pg_dsn: str) -> None:
    with scratch_schema(pg_dsn, prefix="iso") as dsn, psycopg.connect(dsn) as conn:
        (schema,) = conn.execute("SELECT current_schema()").fetchone() or (None,)
        assert isinstance(schema, str)
        assert schema.startswith("iso_")
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None


# -- migration 4: load mode and last settle time -------------------------------------------------------


def test_load_mode_defaults_to_the_deployment_and_can_be_set_per_connection(store: ConnectionStore) -> None:
    store.add(make_connection())
    assert store.get("c-1").load_mode is None
    assert store.get("c-1").mode(LoadMode.REFRESH) is LoadMode.REFRESH
    store.set_load_mode("c-1", LoadMode.REST)
    assert store.get("c-1").mode(LoadMode.REFRESH) is LoadMode.REST
    with pytest.raises(InvalidConnection, match="load_mode"):
        make_connection(load_mode="copy")


def test_last_settled_is_written_only_under_the_current_lease(store: ConnectionStore) -> None:
    store.add(make_connection())
    lease = store.acquire_lease("c-1", "run-a", timedelta(minutes=5))
    assert lease is not None
    at = datetime(2026, 12, 2, 10, 0, 0, 500000, tzinfo=UTC)
    store.set_last_settled("c-1", at, lease)
    settled = store.get("c-1").last_settled_at
    assert settled is not None
    assert abs((settled - at).total_seconds()) < 0.01
    store.release_lease(lease)
    with pytest.raises(LeaseLost):
        store.set_last_settled("c-1", at + timedelta(hours=1), lease)
    store.save(store.get("c-1"))  # a row read and saved back keeps its settle time
    assert store.get("c-1").last_settled_at == settled


def test_migrate_applies_a_missing_version_below_the_highest(
    store: ConnectionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Versions are numbered per branch and merged out of order: each missing one still applies."""
    store.add(make_connection())
    store.set_status("c-1", ConnectionStatus.PENDING_CUSTOMER_SETUP, "")
    newest = LATEST_SCHEMA_VERSION + 2
    landed_first = (newest, ("UPDATE connections SET status_detail = status_detail || 'a'",))
    monkeypatch.setattr("kernel.connections._MIGRATIONS", (*connections._MIGRATIONS, landed_first))
    store.migrate()
    merged_later = (newest - 1, ("UPDATE connections SET status_detail = status_detail || 'b'",))
    monkeypatch.setattr("kernel.connections._MIGRATIONS", (*connections._MIGRATIONS, merged_later))
    store.migrate()
    store.migrate()  # applied once only
    assert store.get("c-1").status_detail == "ab"
    assert store.schema_version() == newest

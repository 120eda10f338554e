"""What a non-owner role can do with a pipe and its load history.

Facts: docs/snowflake-facts.md §1 (REFRESH privileges), §2 (COPY_HISTORY and
SYSTEM$PIPE_STATUS access).
"""

from __future__ import annotations

import pytest
from snowflake.connector.errors import DatabaseError

from .harness import KeyPair, Loading, Target, copy_history, get, history_of, names_file, pipe_status, query, refresh
from .harness import records as make_records


def _loader_role(target: Target, loading: Loading) -> tuple[str, str, KeyPair]:
    """A role with USAGE on database, schema, stage and warehouse and SELECT, INSERT on the table (§1's
    list, minus OPERATE), and a key-pair SERVICE user holding it."""
    role = target.create_role("LOADER")
    key = KeyPair.generate()
    user = target.create_user(
        "LOADER", properties=f"TYPE = SERVICE RSA_PUBLIC_KEY = '{key.public_b64}' DEFAULT_ROLE = {role}"
    )
    for grant in (
        f"GRANT USAGE ON DATABASE {target.database} TO ROLE {role}",
        f"GRANT USAGE ON SCHEMA {target.database}.{target.schema} TO ROLE {role}",
        f"GRANT USAGE ON STAGE {loading.stage} TO ROLE {role}",
        f"GRANT SELECT, INSERT ON TABLE {loading.table} TO ROLE {role}",
        f"GRANT USAGE ON WAREHOUSE {target.account.warehouse} TO ROLE {role}",
        f"GRANT ROLE {role} TO USER {user}",
    ):
        query(target.admin, grant)
    return role, user, key


def test_session_runs_as_the_requested_user_and_role(target: Target) -> None:
    """current_role (https://docs.snowflake.com/en/sql-reference/functions/current_role) and current_user:
    a session opened with `role=` runs as that role, so the privilege tests below test that role."""
    loading = target.setup_loading("whoami")
    role, user, key = _loader_role(target, loading)
    conn = target.connect(user, private_key=key.der, role=role, warehouse=target.account.warehouse, in_schema=True)
    rows = query(conn, "SELECT CURRENT_ROLE() AS R, CURRENT_USER() AS U")
    assert [(get(r, "R"), get(r, "U")) for r in rows] == [(role, user)]


def test_refresh_by_a_non_owner_needs_operate(target: Target) -> None:
    """§1: "A non-owner can REFRESH with OPERATE on the pipe, USAGE on an external stage …, SELECT and
    INSERT on the table, and USAGE on the database and schema"; "OPERATE also allows pause/resume". Without
    OPERATE the same role's REFRESH is refused."""
    loading = target.setup_loading("operate")
    role, user, key = _loader_role(target, loading)
    conn = target.connect(user, private_key=key.der, role=role, warehouse=target.account.warehouse, in_schema=True)
    staged = target.put_file(loading.prefix, "events", make_records("operate", 1))

    with pytest.raises(DatabaseError):
        refresh(conn, loading.pipe)

    query(target.admin, f"GRANT OPERATE ON PIPE {loading.pipe} TO ROLE {role}")
    sent = refresh(conn, loading.pipe)
    assert names_file(sent, staged.basename), sent
    query(conn, f"ALTER PIPE {loading.pipe} SET PIPE_EXECUTION_PAUSED = TRUE")
    query(conn, f"ALTER PIPE {loading.pipe} SET PIPE_EXECUTION_PAUSED = FALSE")
    assert get(target.wait_loaded(loading, [staged])[staged.basename], "STATUS") == "Loaded"


def test_copy_history_and_pipe_status_need_monitor_for_pipe_details(target: Target) -> None:
    """§2 COPY_HISTORY access: "USAGE on the database and schema containing the pipe plus any privilege on
    the table"; "Without MONITOR on the pipe, the pipe-name columns are NULL". SYSTEM$PIPE_STATUS "Needs
    OWNERSHIP or MONITOR on the pipe"."""
    loading = target.setup_loading("monitor")
    role, user, key = _loader_role(target, loading)
    staged = target.put_file(loading.prefix, "events", make_records("monitor", 1))
    refresh(target.admin, loading.pipe)
    target.wait_loaded(loading, [staged])
    conn = target.connect(user, private_key=key.der, role=role, warehouse=target.account.warehouse, in_schema=True)

    rows = history_of(copy_history(conn, loading.table), staged.basename)
    assert len(rows) == 1, rows
    assert get(rows[0], "STATUS") == "Loaded"
    for column in ("PIPE_CATALOG_NAME", "PIPE_SCHEMA_NAME", "PIPE_NAME"):
        assert get(rows[0], column) is None, f"{column} shown without MONITOR: {rows[0]}"
    with pytest.raises(DatabaseError):
        pipe_status(conn, loading.pipe)

    query(target.admin, f"GRANT MONITOR ON PIPE {loading.pipe} TO ROLE {role}")
    rows = history_of(copy_history(conn, loading.table), staged.basename)
    assert str(get(rows[0], "PIPE_NAME")).upper() == loading.pipe.rsplit(".", 1)[-1]
    assert pipe_status(conn, loading.pipe)["executionState"] == "RUNNING"

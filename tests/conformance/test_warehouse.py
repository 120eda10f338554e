"""Which statements need a running warehouse, and auto-resume.

Facts: docs/snowflake-facts.md §2 (COPY_HISTORY is a SELECT; SHOW needs no warehouse),
§6 (auto-resume, billing per resume).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from snowflake.connector.errors import DatabaseError

from .harness import Target, copy_history, get, query


def _resumes(stats: Mapping[str, Any] | None) -> int:
    assert stats is not None
    return int(stats["warehouse_resumes"])


def _state(target: Target, warehouse: str) -> str:
    rows = query(target.admin, f"SHOW WAREHOUSES LIKE '{warehouse}'")
    assert len(rows) == 1, rows
    return str(get(rows[0], "state")).upper()


def test_suspended_warehouse_without_auto_resume(target: Target) -> None:
    """§2 / use-warehouse (https://docs.snowflake.com/en/sql-reference/sql/use-warehouse): "the warehouse
    must be running before you can execute queries and DML statements", so a COPY_HISTORY query (a SELECT,
    §2 "likely yes") on a suspended warehouse with AUTO_RESUME = FALSE fails with Snowflake's error naming
    the warehouse problem; §2/§6 SHOW commands are "Not required to execute" on a warehouse and DDL runs
    without one, and none of it resumes the warehouse."""
    loading = target.setup_loading("wh")
    warehouse = target.create_warehouse(
        "WH_OFF", properties="WAREHOUSE_SIZE = XSMALL AUTO_RESUME = FALSE INITIALLY_SUSPENDED = TRUE"
    )
    query(target.admin, f"USE WAREHOUSE {warehouse}")

    with pytest.raises(DatabaseError, match=r"(?i)warehouse"):
        copy_history(target.admin, loading.table)

    before = target.stats()
    query(target.admin, f"CREATE TABLE {target.fq(target.name('WH_DDL'))} (X NUMBER)")
    assert len(query(target.admin, f"SHOW PIPES LIKE '{loading.pipe.rsplit('.', 1)[-1]}'")) == 1
    assert len(query(target.admin, f"SHOW STAGES LIKE '{loading.stage.rsplit('.', 1)[-1]}'")) == 1
    assert _state(target, warehouse) == "SUSPENDED"
    if not target.is_live:
        after = target.stats()
        assert before is not None
        assert after is not None
        assert _resumes(after) == _resumes(before)
        # §6: SHOW and DDL "avoid this cost": none of them ran on the warehouse.
        assert int(after["warehouse_statements"]) == int(before["warehouse_statements"]), (before, after)


def test_auto_resume_runs_the_query_and_resumes_once(target: Target) -> None:
    """warehouses-overview (§2, §6): with auto-resume Snowflake "automatically resumes the warehouse when
    any statement that requires a warehouse is submitted"; the query then runs. Each start is billed
    (§6: 60-second minimum), so the stand-in counts exactly one resume for two queries in a row
    (the count is checked on the stand-in only)."""
    loading = target.setup_loading("whauto")
    warehouse = target.create_warehouse(
        "WH_AUTO",
        properties="WAREHOUSE_SIZE = XSMALL AUTO_SUSPEND = 60 AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE",
    )
    query(target.admin, f"USE WAREHOUSE {warehouse}")
    assert _state(target, warehouse) == "SUSPENDED"
    before = target.stats()

    assert copy_history(target.admin, loading.table) == []
    assert copy_history(target.admin, loading.table) == []
    assert _state(target, warehouse) in {"STARTED", "RESUMING"}
    if not target.is_live:
        assert _resumes(target.stats()) == _resumes(before) + 1


def test_turning_auto_resume_on_lets_the_failing_query_run(target: Target) -> None:
    """§2/§6 together: the same COPY_HISTORY query that failed on a suspended warehouse with AUTO_RESUME =
    FALSE runs once `ALTER WAREHOUSE … SET AUTO_RESUME = TRUE`, resuming the warehouse once (stand-in
    count)."""
    loading = target.setup_loading("whflip")
    warehouse = target.create_warehouse(
        "WH_FLIP", properties="WAREHOUSE_SIZE = XSMALL AUTO_RESUME = FALSE INITIALLY_SUSPENDED = TRUE"
    )
    query(target.admin, f"USE WAREHOUSE {warehouse}")
    with pytest.raises(DatabaseError):
        copy_history(target.admin, loading.table)

    before = target.stats()
    query(target.admin, f"ALTER WAREHOUSE {warehouse} SET AUTO_RESUME = TRUE")
    assert copy_history(target.admin, loading.table) == []
    if not target.is_live:
        assert _resumes(target.stats()) == _resumes(before) + 1

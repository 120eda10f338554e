"""The pure planner: what happens to each file, given the listing and the load history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kernel.layout import DEFAULT_LAYOUT, Layout
from loader.plan import (
    Decision,
    LiveFile,
    LoadRecord,
    LoadStatus,
    found_in_table,
    history_start,
    latest_records,
    plan_file,
    stranded,
    unsettled,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def live(name: str, age: timedelta = timedelta(minutes=5)) -> LiveFile:
    return LiveFile(f"live/acme/events/{name}", 100, NOW - age)


def record(file: LiveFile, status: LoadStatus, rows: int = 0, at: datetime = NOW) -> LoadRecord:
    return LoadRecord(file.key, status, row_count=rows, last_load_time=at, first_error="bad" if rows == 0 else None)


def test_loaded_file_is_deleted_and_counts_its_rows() -> None:
    f = live("a.json.gz")
    plan = plan_file(f, record(f, LoadStatus.LOADED, rows=7), NOW)
    assert plan.decision is Decision.DELETE
    assert plan.record is not None
    assert plan.record.row_count == 7


@pytest.mark.parametrize("status", [LoadStatus.FAILED, LoadStatus.PARTIAL, LoadStatus.SKIPPED])
def test_failed_partial_and_skipped_files_are_dead_lettered_with_their_error(status: LoadStatus) -> None:
    f = live("a.json.gz")
    plan = plan_file(f, record(f, status), NOW)
    assert plan.decision is Decision.DEAD_LETTER
    assert status.value in plan.reason
    assert "bad" in plan.reason


def test_file_in_progress_waits() -> None:
    f = live("a.json.gz")
    assert plan_file(f, record(f, LoadStatus.IN_PROGRESS), NOW).decision is Decision.WAIT


def test_file_without_history_is_sent_and_restaged_only_near_the_refresh_window() -> None:
    fresh, old = live("fresh.json.gz"), live("old.json.gz", age=timedelta(days=6, hours=1))
    assert plan_file(fresh, None, NOW).restage is False
    assert plan_file(old, None, NOW).restage is True
    assert plan_file(old, None, NOW).decision is Decision.SEND


def test_latest_record_wins_when_a_file_appears_twice() -> None:
    f = live("a.json.gz")
    failed = record(f, LoadStatus.FAILED, at=NOW - HOUR)
    loaded = record(f, LoadStatus.LOADED, rows=3, at=NOW)
    assert latest_records([loaded, failed])[f.key].status is LoadStatus.LOADED
    assert latest_records([failed, loaded])[f.key].status is LoadStatus.LOADED


def test_unsettled_counts_waiting_files_and_files_sent_this_tick_only() -> None:
    sent_now, queued_before, loading = live("s.json.gz"), live("q.json.gz"), live("l.json.gz")
    plans = [
        plan_file(sent_now, None, NOW),
        plan_file(queued_before, None, NOW),
        plan_file(loading, record(loading, LoadStatus.IN_PROGRESS), NOW),
    ]
    assert {p.file.key for p in unsettled(plans, frozenset({sent_now.key}))} == {sent_now.key, loading.key}


def test_stranded_needs_an_idle_pipe_an_unsent_file_and_the_grace_period() -> None:
    old, young, sent = live("old.json.gz", 2 * HOUR), live("young.json.gz"), live("sent.json.gz", 2 * HOUR)
    plans = [plan_file(f, None, NOW) for f in (old, young, sent)]
    found = stranded(plans, frozenset({sent.key}), pipe_pending_files=0, now=NOW, stranded_after=HOUR)
    assert [p.file.key for p in found] == [old.key]
    assert found[0].decision is Decision.DEAD_LETTER
    assert "stranded" in found[0].reason
    assert stranded(plans, frozenset(), pipe_pending_files=1, now=NOW, stranded_after=HOUR) == []


def test_history_start_precedes_the_oldest_file_but_stays_inside_fourteen_days() -> None:
    assert history_start([live("a", 2 * HOUR)], NOW) == NOW - 3 * HOUR
    assert history_start([live("a", timedelta(days=30))], NOW) > NOW - timedelta(days=14)
    assert history_start([], NOW) == NOW - HOUR


def test_layout_matches_the_writers_keys_and_nothing_else() -> None:
    layout = Layout(DEFAULT_LAYOUT)
    assert layout.fixed_head == "events/"
    assert layout.matches("events/env_key=abc/year=2026/month=11/day=23/hour=12/part-0001.json.gz")
    assert layout.matches("events/env_key=a b+%/year=2026/month=11/day=23/hour=12/ü näme.json.gz")
    assert not layout.matches("events/env_key=abc/year=2026/month=11/day=23/part-0001.json.gz")
    assert not layout.matches("errors/env_key=abc/year=2026/month=11/day=23/hour=12/x.json.gz")
    assert not layout.matches("events/env_key=abc/year=2026/month=11/day=23/hour=12/x.json")
    assert not layout.matches("events/env_key=a/b/year=2026/month=11/day=23/hour=12/x.json.gz")


def test_files_the_table_already_holds_are_deleted_with_their_row_counts() -> None:
    known, unknown, recorded = live("known.json.gz"), live("unknown.json.gz"), live("recorded.json.gz")
    plans = [plan_file(known, None, NOW), plan_file(unknown, None, NOW)]
    plans.append(plan_file(recorded, record(recorded, LoadStatus.FAILED), NOW))
    found = found_in_table(plans, {known.key: 12, recorded.key: 3})
    assert [(p.file.key, p.decision, p.record.row_count if p.record else None) for p in found] == [
        (known.key, Decision.DELETE, 12)
    ]
    assert "already in the table" in found[0].reason

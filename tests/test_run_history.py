"""The delivery status derived from a connection's runs: pure, no servers (docs/metrics.md, "Status")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kernel.run_history import FAILING_STREAK, IN_FLIGHT_STREAK, Health, RunRecord, derive

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def run(minutes_ago: float, status: str = "ok", *, events: int = 0, **counts: int) -> RunRecord:
    at = NOW - timedelta(minutes=minutes_ago)
    error = "Snowflake refused the login" if status == "error" else None
    return RunRecord(
        f"r-{minutes_ago}",
        "c-1",
        status,
        at - timedelta(seconds=30),
        at,
        events_delivered=events,
        files_dead_lettered=counts.get("dead", 0),
        files_in_flight=counts.get("in_flight", 0),
        error=error,
    )


def test_no_runs_at_all_is_idle() -> None:
    status = derive([], NOW)
    assert (status.status, status.last_delivery_at, status.events_delivered_7d) == (Health.IDLE, None, 0)


def test_delivering_without_failures_is_active_with_its_totals() -> None:
    runs = [run(10, events=5), run(5, "idle"), run(60 * 30, events=100), run(60 * 24 * 6, events=1000)]
    status = derive(runs, NOW)
    assert status.status is Health.ACTIVE
    assert (status.events_delivered_24h, status.events_delivered_7d) == (5, 1105)
    assert status.last_delivery_at == NOW - timedelta(minutes=10)
    assert status.failed_deliveries_24h == 0


def test_nothing_delivered_for_a_day_is_idle_even_with_idle_ticks() -> None:
    status = derive([run(60 * 25, events=10), run(5, "idle"), run(1, "skipped")], NOW)
    assert status.status is Health.IDLE
    assert status.last_delivery_at == NOW - timedelta(minutes=60 * 25)


def test_one_failure_among_deliveries_is_degraded() -> None:
    status = derive([run(30, events=5), run(20, "error"), run(10, events=5)], NOW)
    assert status.status is Health.DEGRADED
    assert status.failed_deliveries_24h == 1
    assert status.recent_errors[0]["error"] == "Snowflake refused the login"


def test_a_dead_lettered_file_is_a_failed_delivery() -> None:
    status = derive([run(20, events=5, dead=1), run(10, events=5)], NOW)
    assert (status.status, status.failed_deliveries_24h) == (Health.DEGRADED, 1)


@pytest.mark.parametrize(
    "failing",
    [
        [run(m, "error") for m in range(FAILING_STREAK, 0, -1)],
        [run(m, "partial", events=1, dead=2) for m in range(FAILING_STREAK, 0, -1)],
    ],
    ids=["every run fails", "dead letters keep growing"],
)
def test_a_failing_streak_is_an_error(failing: list[RunRecord]) -> None:
    status = derive([run(60, events=50), *failing, run(0.5, "skipped")], NOW)
    assert status.status is Health.ERROR


def test_a_failing_streak_a_day_old_no_longer_counts() -> None:
    old = [run(60 * 25 + m, "error") for m in range(FAILING_STREAK)]
    assert derive(old, NOW).status is Health.IDLE


def test_files_in_flight_for_many_runs_is_degraded() -> None:
    waiting = [run(m, "partial", events=1, in_flight=3) for m in range(IN_FLIGHT_STREAK, 0, -1)]
    assert derive(waiting, NOW).status is Health.DEGRADED
    assert derive(waiting[1:], NOW).status is Health.ACTIVE


def test_recent_errors_are_newest_first_and_bounded() -> None:
    runs = [run(m, "error") for m in range(1, 20)]
    errors = derive(runs, NOW).recent_errors
    assert len(errors) == 5
    assert errors[0]["run_id"] == "r-1"

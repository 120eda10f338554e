"""The edges of Snowpipe's memory (docs/snowflake-facts.md §1, §2, §5): a re-created pipe, REFRESH's 7-day
window, loads that outlast the Lambda's budget, and COPY_HISTORY lagging behind the load. Each must still
end with every event exactly once in the table or its file exactly once in the dead-letter prefix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from devstack.snowflake.server import StandIn

from .harness import World, make_world, recreate_pipe

ORG = "edge"
ACCOUNT = "EDGE_ACCOUNT"


@pytest.fixture
def world(standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return make_world(standin, monkeypatch, tmp_path, [ORG], dsn=f"sqlite:///{tmp_path}/connections.db")


def test_a_pipe_recreated_while_a_file_waits_in_its_queue_loads_it_once(world: World) -> None:
    world.standin.control.configure(ACCOUNT, load_delay_seconds=None)  # queued until drained
    world.write(ORG, "queued")
    assert world.tick(ORG)["status"] == "partial"
    recreate_pipe(world, ORG)  # the admin's CREATE OR REPLACE PIPE forgets the queue and the history
    world.standin.control.configure(ACCOUNT, load_delay_seconds=0.05)
    world.settle(ORG)
    assert world.check(ORG).violations == []


def test_a_pipe_recreated_after_a_load_but_before_the_delete_loads_it_once(world: World) -> None:
    """A file that loaded while no tick was looking (budget ended, or the tick crashed) is still in the
    live prefix when an admin re-creates the pipe: the new pipe has no load history for it."""
    world.standin.control.configure(ACCOUNT, load_delay_seconds=None)
    world.write(ORG, "loaded-not-deleted")
    assert world.tick(ORG)["status"] == "partial"
    assert world.standin.control.drain(ACCOUNT)["loaded"] == 1  # loaded after the tick gave up
    recreate_pipe(world, ORG)
    world.standin.control.configure(ACCOUNT, load_delay_seconds=0.05)
    world.settle(ORG)
    assert world.check(ORG).violations == []


@pytest.mark.parametrize("age_days", [6.5, 7.5, 15.5, 40.0])
def test_files_near_or_past_the_refresh_window_load_once(world: World, age_days: float) -> None:
    """Shift the tick's clock and the stand-in's together, so S3's LastModified looks `age_days` old to
    both. One file never reached the pipe (must be re-staged and loaded); one loaded but was not deleted
    (must be deleted, not re-staged and loaded again). Past 14 days COPY_HISTORY and the pipe's load
    metadata have forgotten the load too: only the table's lineage remembers it."""
    world.standin.control.configure(ACCOUNT, load_delay_seconds=None)
    world.write(ORG, "loaded-long-ago")
    assert world.tick(ORG)["status"] == "partial"
    assert world.standin.control.drain(ACCOUNT)["loaded"] == 1
    world.write(ORG, "never-sent")
    shift = timedelta(days=age_days)
    world.standin.control.advance_clock(shift.total_seconds())
    world.standin.control.configure(ACCOUNT, load_delay_seconds=0.05)
    first = world.shifted_tick(ORG, shift)
    assert first["files_restaged"] == 1, first
    world.settle(ORG, shift=shift)
    assert world.check(ORG).violations == []


def test_a_file_unconfirmed_for_many_budgets_is_never_moved_and_then_loads_once(world: World) -> None:
    world.standin.control.configure(ACCOUNT, load_delay_seconds=None)
    files = [world.write(ORG, f"slow-{i}") for i in range(2)]
    for _ in range(3):
        report = world.tick(ORG)
        assert (report["status"], report["files_in_flight"], report["files_dead_lettered"]) == ("partial", 2, 0)
    assert world.live_keys(ORG) == sorted(f.key for f in files)
    # Past the stranded grace period (1 h) on both clocks: a file the pipe still holds is not stranded.
    shift = timedelta(hours=2)
    world.standin.control.advance_clock(shift.total_seconds())
    report = world.shifted_tick(ORG, shift)
    assert (report["files_in_flight"], report["files_dead_lettered"]) == (2, 0), report
    world.standin.control.drain(ACCOUNT)
    world.settle(ORG, shift=shift)
    assert world.check(ORG).violations == []


def test_copy_history_lagging_past_the_budget_delays_the_delete_but_loads_once(world: World) -> None:
    lag = timedelta(minutes=10)  # on the stand-in's clock, which the test moves: no race with the tick
    world.standin.control.configure(ACCOUNT, history_lag_seconds=lag.total_seconds())
    world.write(ORG, "lagging")
    first = world.tick(ORG)
    assert (first["status"], first["files_loaded"]) == ("partial", 0), first
    second = world.tick(ORG)  # the pipe will not resend it, COPY_HISTORY does not show it yet
    assert (second["files_loaded"], second["files_dead_lettered"]) == (0, 0), second
    world.standin.control.advance_clock(lag.total_seconds())
    world.settle(ORG, shift=lag)
    assert world.check(ORG).violations == []


def test_copy_history_lagging_past_the_stranded_grace_period_loads_once(world: World) -> None:
    """COPY_HISTORY's latency is undocumented (docs/snowflake-facts.md §2). A load whose record is later than
    FLOE_STRANDED_AFTER_SECONDS (1 h) looks stranded: REFRESH does not resend it, nothing is pending."""
    world.standin.control.configure(ACCOUNT, history_lag_seconds=2 * 3600)
    world.write(ORG, "late-record")
    first = world.tick(ORG)
    assert first["files_loaded"] == 0, first
    shift = timedelta(minutes=90)
    world.standin.control.advance_clock(shift.total_seconds())
    world.shifted_tick(ORG, shift)
    world.standin.control.advance_clock(3600)  # the record arrives at last
    world.settle(ORG, shift=shift + timedelta(hours=1))
    assert world.check(ORG).violations == []

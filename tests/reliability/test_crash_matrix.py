"""Crash consistency: a tick SIGKILLed at every boundary between its external calls, then ticks until
quiet, ends with every event once in the table or its file once in the dead-letter prefix.

Each point runs crash_runner.py as its own process (the stack's servers stay in this one), with
FLOE_CRASH_FILES good files (default 3) and one corrupt file, in one organisation, one after the other.
`FLOE_CRASH_MATRIX_OUT=path` writes the points x outcomes table (docs/reliability.md holds one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.aws import MotoServer
from devstack.core_api import CoreReceiver
from devstack.snowflake.server import StandIn

from .crash_runner import POINTS_BY_MODE
from .harness import LEASE_REASON, World, make_world

ORG = "crash"
CRASH_FILES = int(os.environ.get("FLOE_CRASH_FILES", "3"))
# Short, so recovery does not wait long for a dead run's lease; longer than one tick, which the loader
# caps at its lease (less FLOE_TIME_MARGIN_SECONDS) so that it never outlives it.
LEASE_SECONDS = 6
# The lease is released before the metrics POST (docs/architecture.md step 10).
RELEASED_BEFORE = {"before-metrics-post", "after-metrics-post"}


@dataclass
class Outcome:
    point: str
    last_call: str
    lease_after_crash: str
    recovery: str
    rows: str
    dead_letters: str
    live_left: int
    metrics_events: str
    verdict: str


OUTCOMES: list[Outcome] = []


@pytest.fixture(scope="module")
def crash_world(
    standin_server: StandIn, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    moto_server.reset()
    standin_server.control.reset()
    work = tmp_path_factory.mktemp("crash")
    with CoreReceiver() as core, pytest.MonkeyPatch.context() as monkeypatch:
        world = make_world(
            standin_server,
            monkeypatch,
            work,
            [ORG],
            dsn=f"sqlite:///{work}/connections.db",
            core=core,
            load_delay_seconds=0.5,  # a load takes a while: the tick polls COPY_HISTORY more than once
        )
        # Short only after onboarding: `floe provision` holds the lease too, and must not lose it.
        monkeypatch.setenv("FLOE_LEASE_SECONDS", str(LEASE_SECONDS))
        # REFRESH settles every tick here: the settle gate only postpones the same steps
        # (tests/test_load_modes.py covers it).
        monkeypatch.setenv("FLOE_SETTLE_INTERVAL", "0")
        yield world
    if target := os.environ.get("FLOE_CRASH_MATRIX_OUT"):
        Path(target).write_text(render_matrix(OUTCOMES))


@pytest.mark.parametrize(
    ("mode", "point"), [(mode, point) for mode, points in POINTS_BY_MODE.items() for point in points]
)
def test_a_tick_killed_at_any_boundary_ends_exactly_once(
    crash_world: World, mode: str, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOE_LOAD_MODE", mode)  # the killed tick's process and the recovery ticks
    world = crash_world
    assert world.core is not None
    posted_before = {r["run_id"] for r in world.core.runs()}
    # Names unique per mode: the pipe's load metadata skips a name it loaded before (14 days).
    files = [world.write(ORG, f"{mode}-{point}-{i}") for i in range(CRASH_FILES)]
    files.append(world.write(ORG, f"{mode}-{point}-corrupt", corrupt=True))

    # The stand-in loads one file at a time (~0.1 s each): a large run needs a budget that lets them load.
    budget = 15 + len(files) * 0.2
    child = world.child(ORG, point, budget=budget, list_page_size=max(2, (len(files) + 1) // 2))
    lease_owner = world.lease_owner(ORG)  # read at once: the dead run's lease, if it held one
    recovery = world.settle(ORG, timeout=budget * 2)
    verdict = world.check(ORG, files)
    posted = [r for r in world.core.runs() if r["run_id"] not in posted_before]
    metrics_events = sum(r["events_delivered"] for r in posted)
    waited = sum(1 for r in recovery if r["status"] == "skipped" and r["reason"] == LEASE_REASON)
    OUTCOMES.append(
        Outcome(
            point=f"{mode}: {point}",
            last_call=" ".join(child.journal[-1].split()[1:]) if child.journal else "-",
            lease_after_crash="held" if lease_owner else "free",
            recovery=f"{len(recovery)} ticks ({waited} skipped: lease)",
            rows=f"{verdict.rows_found}/{verdict.rows_expected}",
            dead_letters=f"{verdict.dead_letters_found}/{verdict.dead_letters_expected}",
            live_left=verdict.live_left,
            metrics_events=f"{metrics_events}/{verdict.rows_expected}",
            verdict="exactly once" if verdict.ok else "; ".join(verdict.violations),
        )
    )

    report = (child.result or {}).get("report", {})
    ended = {k: report.get(k) for k in ("status", "error", "reason", "files_listed", "files_sent", "files_loaded")}
    assert child.killed, f"not killed at {point} (exit {child.returncode}): {ended} {child.stderr}"
    assert verdict.ok, verdict.violations
    assert (lease_owner is None) == (point in RELEASED_BEFORE), f"lease owner after the crash: {lease_owner}"
    assert world.lease_owner(ORG) is None, "the lease is still held after recovery"
    # A crash may lose a run's count (documented in docs/metrics.md) but must never count an event twice.
    assert metrics_events <= verdict.rows_expected


def render_matrix(outcomes: list[Outcome]) -> str:
    header = (
        "| kill point | last call observed | lease after crash | recovery | rows found/expected "
        "| dead letters found/expected | live left | metrics events posted/expected | outcome |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    lines = [
        f"| `{o.point}` | {o.last_call} | {o.lease_after_crash} | {o.recovery} | {o.rows} | {o.dead_letters} "
        f"| {o.live_left} | {o.metrics_events} | {o.verdict} |"
        for o in outcomes
    ]
    return header + "\n".join(lines) + "\n"

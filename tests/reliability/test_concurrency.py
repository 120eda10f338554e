"""Overlapping invocations, each its own process, on a real PostgreSQL connection store: one run works per
connection at a time, the rest report `skipped`, nothing loads twice, and nobody starves once the holder
ends or dies and its lease expires."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.postgres import scratch_schema
from devstack.snowflake.server import StandIn

from .harness import LEASE_REASON, World, collect, make_world

ORGS = ["conc-a", "conc-b", "conc-c"]
CROWD = {"conc-a": 5, "conc-b": 2, "conc-c": 2}  # processes per connection, all released at once
EXPIRING_LEASE_SECONDS = 2


@pytest.fixture
def pg_world(standin: StandIn, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with scratch_schema(pg_dsn, prefix="reliability") as dsn:
        yield make_world(
            standin,
            monkeypatch,
            tmp_path,
            ORGS,
            dsn=dsn,
            environment={"FLOE_LEASE_SECONDS": "60"},
            load_delay_seconds=0.3,  # the holder keeps its lease for a second or two
        )


def test_overlapping_invocations_work_one_at_a_time_per_connection(pg_world: World, tmp_path: Path) -> None:
    world = pg_world
    for org in ORGS:
        for i in range(3):
            world.write(org, f"crowd-{i}")
    go = tmp_path / "go"
    spawned = [(org, *world.spawn(org, go_file=go)) for org, count in CROWD.items() for _ in range(count)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.ready.*"))) < len(spawned) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()  # every process has imported the loader: they reach the lease together
    results: dict[str, list[dict[str, Any]]] = {org: [] for org in ORGS}
    for org, process, result, journal in spawned:
        _, stderr = process.communicate(timeout=120)
        child = collect(process, result, journal, stderr)
        assert child.returncode == 0, child.stderr
        assert child.result is not None
        results[org].append(child.result)

    for org, runs in results.items():
        statuses = sorted(r["report"]["status"] for r in runs)
        print(f"{org}: {len(runs)} processes -> {statuses}")  # the numbers docs/reliability.md quotes
        workers = [r for r in runs if r["report"]["status"] != "skipped"]
        skipped = [r for r in runs if r["report"]["status"] == "skipped"]
        assert workers, f"{org}: nobody worked"
        assert all(r["report"]["reason"] == LEASE_REASON for r in skipped), org
        assert sum(r["report"]["files_loaded"] for r in workers) == 3, org
        held = sorted((lease["acquired_at"], lease["released_at"]) for r in workers for lease in r["leases"])
        assert all(start < end for start, end in held), held
        overlaps = [(a, b) for a, b in itertools.pairwise(held) if b[0] < a[1]]
        assert overlaps == [], f"{org}: two runs held the lease at once: {overlaps}"
    # The crowd on the busy connection did overlap: the test is only meaningful if some were turned away.
    assert any(r["report"]["status"] == "skipped" for r in results["conc-a"])
    for org in ORGS:
        assert world.check(org).violations == []
        assert world.lease_owner(org) is None


def test_a_dead_holder_blocks_only_until_its_lease_expires(pg_world: World) -> None:
    world = pg_world
    world.write("conc-a", "late-0")
    world.write("conc-b", "other-0")
    short = {"FLOE_LEASE_SECONDS": str(EXPIRING_LEASE_SECONDS)}
    dead = world.child("conc-a", "lease-acquired", environment=short)
    assert dead.killed, dead.stderr
    died_at = time.monotonic()
    assert world.lease_owner("conc-a") is not None
    assert world.tick("conc-b")["files_loaded"] == 1  # another connection is not held up meanwhile

    statuses = []
    while time.monotonic() - died_at < EXPIRING_LEASE_SECONDS + 10:
        report = world.tick("conc-a")
        statuses.append((round(time.monotonic() - died_at, 1), report["status"], report.get("reason")))
        if report["status"] != "skipped":
            break
        assert report["reason"] == LEASE_REASON
        time.sleep(0.2)
    assert statuses[-1][1] == "ok", statuses
    assert statuses[-1][0] < EXPIRING_LEASE_SECONDS + 3, f"starved: {statuses}"
    assert world.check("conc-a").violations == []
    assert world.check("conc-b").violations == []
    assert world.lease_owner("conc-a") is None

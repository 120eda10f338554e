"""The connection lease on real PostgreSQL and SQLite: semantics, fencing, and a multi-process race."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier

import pytest

from kernel.connections import (
    Connection,
    ConnectionStore,
    InvalidConnection,
    Lease,
    LeaseLost,
    UnknownConnection,
    open_store,
)

LIVE = timedelta(minutes=5)
TINY = timedelta(milliseconds=20)
PAST_TINY_S = 0.15  # sleep long enough for a TINY lease to have expired on the database's clock


@pytest.fixture
def store(store_dsn: str) -> Iterator[ConnectionStore]:
    with open_store(store_dsn) as opened:
        opened.migrate()
        opened.add(connection("c-1"))
        yield opened


def connection(connection_id: str) -> Connection:
    return Connection(
        connection_id=connection_id,
        org_id="acme",
        account="myorg-acme",
        user="FLOE",
        role="FLOE",
        warehouse="FLOE_WH",
        database="EVENTS",
        schema="PUBLIC",
        table="FLAG_EVENTS",
        secret_ref=f"floe/connections/{connection_id}",
    )


def test_acquire_and_release(store: ConnectionStore) -> None:
    before = datetime.now(UTC)
    lease = store.acquire_lease("c-1", "run-a", LIVE)
    assert lease is not None
    assert (lease.connection_id, lease.owner, lease.token) == ("c-1", "run-a", 1)
    assert lease.expires_at.tzinfo is UTC
    # The database's clock sets the expiry; on this machine it agrees with ours within a few seconds.
    assert abs(lease.expires_at - (before + LIVE)) < timedelta(seconds=5)
    assert store.release_lease(lease) is True
    assert store.release_lease(lease) is False


def test_a_live_lease_blocks_another_owner(store: ConnectionStore) -> None:
    held = store.acquire_lease("c-1", "run-a", LIVE)
    assert held is not None
    assert store.acquire_lease("c-1", "run-b", LIVE) is None
    assert store.acquire_lease("c-1", "run-a", LIVE) is None  # not re-entrant either
    assert store.release_lease(held) is True
    assert store.acquire_lease("c-1", "run-b", LIVE) is not None


def test_an_expired_lease_is_taken_over(store: ConnectionStore) -> None:
    stale = store.acquire_lease("c-1", "run-a", TINY)
    assert stale is not None
    time.sleep(PAST_TINY_S)
    fresh = store.acquire_lease("c-1", "run-b", LIVE)
    assert fresh is not None
    assert fresh.owner == "run-b"
    assert fresh.token > stale.token


def test_a_stale_owner_cannot_release_or_write_after_takeover(store: ConnectionStore) -> None:
    stale = store.acquire_lease("c-1", "run-a", TINY)
    assert stale is not None
    time.sleep(PAST_TINY_S)
    fresh = store.acquire_lease("c-1", "run-b", LIVE)
    assert fresh is not None

    assert store.release_lease(stale) is False
    with pytest.raises(LeaseLost):
        store.set_template_version("c-1", "v-stale", stale)
    assert store.get("c-1").template_version is None

    store.set_template_version("c-1", "v-fresh", fresh)
    assert store.get("c-1").template_version == "v-fresh"
    assert store.acquire_lease("c-1", "run-c", LIVE) is None  # the failed release freed nothing
    assert store.release_lease(fresh) is True


def test_same_owner_name_with_an_old_token_is_fenced(store: ConnectionStore) -> None:
    first = store.acquire_lease("c-1", "worker", TINY)
    assert first is not None
    time.sleep(PAST_TINY_S)
    second = store.acquire_lease("c-1", "worker", LIVE)
    assert second is not None
    assert store.release_lease(first) is False
    with pytest.raises(LeaseLost):
        store.set_template_version("c-1", "v1", first)
    store.set_template_version("c-1", "v2", second)


def test_set_template_version_needs_a_live_current_lease(store: ConnectionStore) -> None:
    lease = store.acquire_lease("c-1", "run-a", LIVE)
    assert lease is not None
    store.set_template_version("c-1", "v1", lease)
    assert store.release_lease(lease) is True
    with pytest.raises(LeaseLost):
        store.set_template_version("c-1", "v2", lease)

    expiring = store.acquire_lease("c-1", "run-b", TINY)
    assert expiring is not None
    time.sleep(PAST_TINY_S)
    with pytest.raises(LeaseLost):  # expired, even though nobody has taken it over yet
        store.set_template_version("c-1", "v3", expiring)
    assert store.get("c-1").template_version == "v1"


def test_set_template_version_refuses_another_connections_lease(store: ConnectionStore) -> None:
    store.add(connection("c-2"))
    lease = store.acquire_lease("c-2", "run-a", LIVE)
    assert lease is not None
    with pytest.raises(LeaseLost, match="another connection"):
        store.set_template_version("c-1", "v1", lease)


def test_token_increases_strictly_across_acquisitions(store: ConnectionStore) -> None:
    tokens = []
    for attempt in range(6):
        lease = store.acquire_lease("c-1", f"run-{attempt}", TINY if attempt % 2 else LIVE)
        assert lease is not None
        tokens.append(lease.token)
        if attempt % 2:
            time.sleep(PAST_TINY_S)  # let it expire
        else:
            assert store.release_lease(lease)
    assert tokens == list(range(1, 7))


def test_save_leaves_the_lease_alone(store: ConnectionStore) -> None:
    lease = store.acquire_lease("c-1", "run-a", LIVE)
    assert lease is not None
    store.save(connection("c-1"))
    assert store.acquire_lease("c-1", "run-b", LIVE) is None
    assert store.release_lease(lease) is True


def test_unknown_connection(store: ConnectionStore) -> None:
    with pytest.raises(UnknownConnection):
        store.acquire_lease("nope", "run-a", LIVE)
    with pytest.raises(UnknownConnection):
        store.set_template_version("nope", "v1", Lease("nope", "run-a", 1, datetime.now(UTC)))
    assert store.release_lease(Lease("nope", "run-a", 1, datetime.now(UTC))) is False


@pytest.mark.parametrize(("owner", "ttl"), [("", LIVE), ("run a", LIVE), ("run-a", timedelta(0))])
def test_acquire_refuses_bad_arguments(store: ConnectionStore, owner: str, ttl: timedelta) -> None:
    with pytest.raises(InvalidConnection, match="lease"):
        store.acquire_lease("c-1", owner, ttl)


# -- the race -----------------------------------------------------------------------------------------

RACERS = 4
TRIALS = 30
RACE_TIMEOUT_S = 120


def _race(dsn: str, owner: str, barrier: Barrier, results: multiprocessing.Queue[tuple[int, str, str]]) -> None:
    """One racing process: per trial, wait for the others, then try to take that trial's lease."""
    try:
        with open_store(dsn) as store:
            for trial in range(TRIALS):
                barrier.wait(timeout=RACE_TIMEOUT_S)
                lease = store.acquire_lease(f"race-{trial}", owner, LIVE)
                results.put((trial, owner, "lost" if lease is None else str(lease.token)))
    except BaseException as exc:
        results.put((-1, owner, repr(exc)))
        raise


def test_exactly_one_process_wins_each_race(store: ConnectionStore, store_dsn: str) -> None:
    """RACERS processes race for a lease TRIALS times; odd trials race to take over an expired one."""
    for trial in range(TRIALS):
        store.add(connection(f"race-{trial}"))
        if trial % 2:
            assert store.acquire_lease(f"race-{trial}", "crashed-run", TINY) is not None
    time.sleep(PAST_TINY_S)

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RACERS)
    results: multiprocessing.Queue[tuple[int, str, str]] = context.Queue()
    racers = [context.Process(target=_race, args=(store_dsn, f"racer-{n}", barrier, results)) for n in range(RACERS)]
    for racer in racers:
        racer.start()
    try:
        outcomes = _collect(results, RACERS * TRIALS)
    finally:
        for racer in racers:
            racer.join(timeout=RACE_TIMEOUT_S)
            if racer.is_alive():
                racer.kill()
    assert [racer.exitcode for racer in racers] == [0] * RACERS

    for trial in range(TRIALS):
        winners = [(owner, token) for owner, token in outcomes[trial] if token != "lost"]
        assert len(winners) == 1, f"trial {trial}: {outcomes[trial]}"
        owner, token = winners[0]
        assert int(token) == 1 + trial % 2
        # The database agrees: the reported winner holds the lease.
        assert store.release_lease(Lease(f"race-{trial}", owner, int(token), datetime.now(UTC)))


def _collect(results: multiprocessing.Queue[tuple[int, str, str]], count: int) -> dict[int, list[tuple[str, str]]]:
    outcomes: dict[int, list[tuple[str, str]]] = {}
    deadline = time.monotonic() + RACE_TIMEOUT_S
    for _ in range(count):
        try:
            trial, owner, outcome = results.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"racers reported {sum(map(len, outcomes.values()))} of {count} outcomes in time")
        if trial < 0:
            pytest.fail(f"{owner} failed: {outcome}")
        outcomes.setdefault(trial, []).append((owner, outcome))
    return outcomes

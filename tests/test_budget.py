"""The time budget before each Snowflake request (pure: a fake clock)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from loader import budget as budget_module
from loader.budget import FIRST_REQUEST_SECONDS, Budget, OutOfTime
from loader.tick import Deadline


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(budget_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def _budget(clock: Clock, seconds: float, margin: float = 1.0) -> Budget:
    end = clock.now + seconds
    return Budget(Deadline(lambda: end - clock.now), margin)


def test_the_first_request_is_judged_by_the_prior(clock: Clock) -> None:
    assert _budget(clock, 1.0 + FIRST_REQUEST_SECONDS).check("the login") == int(FIRST_REQUEST_SECONDS)
    with pytest.raises(OutOfTime, match="before the login"):
        _budget(clock, 0.9 + FIRST_REQUEST_SECONDS).check("the login")


def test_the_slowest_request_seen_sets_the_expected_cost(clock: Clock) -> None:
    budget = _budget(clock, 9.5)

    def slow(timeout_seconds: int) -> int:
        clock.now += 3.0
        return timeout_seconds

    assert budget.spend("the login", slow) == 8  # its timeout: the whole seconds left less the margin
    assert budget.expected() == 3.0
    assert budget.spend("a statement", slow) == 5
    with pytest.raises(OutOfTime, match=r"2\.5 s left .* 3\.0 s expected"):
        budget.spend("a third", slow)
    assert clock.now == 6.0  # refused before it started


def test_a_fast_first_request_replaces_the_prior(clock: Clock) -> None:
    budget = _budget(clock, 10.0)
    budget.spend("the login", lambda _: None)
    assert budget.expected(requests=4) == 0.0
    assert budget.covers(requests=4, after_seconds=9.0)
    assert not budget.covers(after_seconds=9.5)


def test_the_time_spent_by_a_failing_request_is_learned_too(clock: Clock) -> None:
    budget = _budget(clock, 30.0)

    def fails(_: int) -> None:
        clock.now += 5.0
        raise TimeoutError

    with pytest.raises(TimeoutError):
        budget.spend("a statement", fails)
    assert budget.expected() == 5.0


@pytest.mark.parametrize(("left", "expected"), [(None, (30, 60, 120)), (7, (7, 7, 7)), (45, (30, 45, 45))])
def test_the_login_and_every_statement_time_out_within_the_time_left(
    monkeypatch: pytest.MonkeyPatch, left: int | None, expected: tuple[int, int, int]
) -> None:
    import snowflake.connector

    from kernel.config import Settings
    from kernel.secrets import SnowflakeCredentials
    from kernel.snowflake_session import open_session
    from tests.hostile.test_connection_properties import BASE

    seen: dict[str, Any] = {}
    monkeypatch.setattr(snowflake.connector, "connect", lambda **arguments: seen.update(arguments))
    open_session(BASE, SnowflakeCredentials(password="x"), Settings(), query_tag="t", timeout_seconds=left)
    statement = seen["session_parameters"]["STATEMENT_TIMEOUT_IN_SECONDS"]
    assert (seen["login_timeout"], seen["network_timeout"], statement) == expected

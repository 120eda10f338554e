"""A Snowflake statement that fails transiently is tried FLOE_RETRY_ATTEMPTS times in all, with waits that
grow (loader.snowpipe.Snowpipe.run); a permanent error is not retried. No servers: the query is faked."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from devstack.scenario import new_connection
from kernel import config
from kernel.render import Target
from kernel.snowflake_session import SnowflakeError
from loader.budget import Budget
from loader.snowpipe import Snowpipe
from loader.tick import Deadline


def pipe(monkeypatch: pytest.MonkeyPatch, error: SnowflakeError, sleeps: list[float]) -> tuple[Snowpipe, list[str]]:
    monkeypatch.setattr("tenacity.nap.time.sleep", sleeps.append)
    sent: list[str] = []

    def failing(_session: Any, sql: str, _timeout: int) -> list[dict[str, Any]]:
        sent.append(sql)
        raise error

    monkeypatch.setattr("loader.snowpipe.query", failing)
    settings = config.load()
    target = Target.from_connection(new_connection("acme", "ACME_ACCOUNT", settings), settings, "123456789012")
    budget = Budget(Deadline.after(600), 0)
    return Snowpipe(session=None, target=target, attempts=settings.retry_attempts, budget=budget), sent  # type: ignore[arg-type]


def test_a_transient_error_is_tried_floe_retry_attempts_times_with_growing_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOE_RETRY_ATTEMPTS", "4")
    sleeps: list[float] = []
    snowpipe, sent = pipe(monkeypatch, SnowflakeError("network", transient=True), sleeps)
    with pytest.raises(SnowflakeError):
        snowpipe.run("SELECT 1")
    assert len(sent) == 4
    assert len(sleeps) == 3
    assert all(later > earlier for earlier, later in itertools.pairwise(sleeps))


def test_a_permanent_error_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    snowpipe, sent = pipe(monkeypatch, SnowflakeError("syntax", transient=False), sleeps)
    with pytest.raises(SnowflakeError):
        snowpipe.run("SELECT 1")
    assert (len(sent), sleeps) == (1, [])

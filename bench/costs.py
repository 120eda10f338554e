"""The latency and warehouse-cost model (pure): what a count of statements costs on a real account.

Facts cited as "§n" are sections of docs/snowflake-facts.md.

- Latency: every statement pays one round trip and every login one login time, added by the stand-in
  (`statement_latency_seconds`, `login_latency_seconds`). The facts give no figure for either (§7 only
  says key-pair logins are slower than password ones and that JWTs are throttled), so both are
  assumptions, set on the command line; the defaults are stated in docs/benchmarks.md.
- Warehouse (§6): per-second billing with a 60 s minimum each time the warehouse starts; an XS
  warehouse costs 1 credit per hour. A warehouse suspends after AUTO_SUSPEND idle seconds and a
  statement that needs it resumes it (§2, auto-resume).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TICK_INTERVAL_SECONDS = 60.0  # one tick per connection per minute
TICKS_PER_DAY = 1440
MINIMUM_BILLED_SECONDS = 60.0  # §6: "60-second minimum each time the warehouse starts"
XS_CREDITS_PER_HOUR = 1.0  # §6: XS = 0.017 credits for 0-60 s, i.e. 1 credit/hour


@dataclass(frozen=True)
class LatencyModel:
    statement_seconds: float
    login_seconds: float

    def modelled_seconds(self, statements: int, logins: int) -> float:
        return statements * self.statement_seconds + logins * self.login_seconds


@dataclass(frozen=True)
class WarehouseDay:
    billed_seconds: float
    resumes: int

    @property
    def credits_xs(self) -> float:
        return self.billed_seconds / 3600 * XS_CREDITS_PER_HOUR


def warehouse_day(
    busy_seconds: Sequence[float],
    *,
    auto_suspend: float,
    interval: float = TICK_INTERVAL_SECONDS,
    minimum: float = MINIMUM_BILLED_SECONDS,
) -> WarehouseDay:
    """Bill a warehouse used `busy_seconds[i]` seconds at the start of tick i (0: not used).

    A running period lasts from a resume until AUTO_SUSPEND seconds after the last use; each period is
    billed per second with the 60 s minimum (§6)."""
    billed, resumes = 0.0, 0
    started: float | None = None
    last_end = 0.0
    for index, busy in enumerate(busy_seconds):
        if busy <= 0:
            continue
        at = index * interval
        if started is not None and at - last_end >= auto_suspend:
            billed += max(minimum, last_end + auto_suspend - started)
            started = None
        if started is None:
            started, resumes = at, resumes + 1
        last_end = max(last_end, at + busy)
    if started is not None:
        billed += max(minimum, last_end + auto_suspend - started)
    return WarehouseDay(billed, resumes)


def busy_pattern(busy_seconds: float, idle_seconds: float, busy_every: int, ticks: int = TICKS_PER_DAY) -> list[float]:
    """A day of ticks where every `busy_every`-th tick has files (0: none has)."""
    return [busy_seconds if busy_every and index % busy_every == 0 else idle_seconds for index in range(ticks)]


def repeated(per_tick: Sequence[float], ticks: int = TICKS_PER_DAY) -> list[float]:
    """A day of ticks that repeats a measured run of ticks (its per-tick warehouse seconds)."""
    if not per_tick:
        return [0.0] * ticks
    return [per_tick[index % len(per_tick)] for index in range(ticks)]

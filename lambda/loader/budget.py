"""The tick's time budget for Snowflake: before each request (the login included), the time left, less
`FLOE_TIME_MARGIN_SECONDS`, must cover what the request is expected to cost, or the tick stops cleanly
(files stay for the next tick, the report says why, the lease is released and metrics are posted)
instead of being killed by Lambda mid-request with none of that.

The expected cost is the slowest request seen so far in this run (a slow account stays slow for the
whole run), and a prior before the first. Timeouts handed to the connector come from the time left, so
no single request can outlive the budget either.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from kernel.errors import FloeError

if TYPE_CHECKING:
    from loader.tick import Deadline

T = TypeVar("T")

# Before anything is measured (the login): a key-pair login to Snowflake typically answers within a
# second. A slower one is learned at once, and its own timeout is capped by the time left anyway.
FIRST_REQUEST_SECONDS = 1.0


class OutOfTime(FloeError):
    """Too little time is left for the next Snowflake request; the tick stops before making it."""

    transient = True


class Budget:
    def __init__(self, deadline: Deadline, margin_seconds: float) -> None:
        self._deadline = deadline
        self._margin = margin_seconds
        self._slowest: float | None = None

    def left(self) -> float:
        """Seconds left for Snowflake: the invocation's remaining time less the margin."""
        return self._deadline.remaining() - self._margin

    def expected(self, requests: int = 1) -> float:
        return requests * (FIRST_REQUEST_SECONDS if self._slowest is None else self._slowest)

    def covers(self, requests: int = 1, after_seconds: float = 0.0) -> bool:
        return self.left() - after_seconds >= self.expected(requests)

    def check(self, step: str, requests: int = 1) -> int:
        """Raise OutOfTime unless the time left covers `step`; else the whole seconds left, the timeout
        for the step's requests."""
        if not self.covers(requests):
            raise OutOfTime(
                f"stopped before {step} to stay within the time budget: {max(self.left(), 0.0):.1f} s left "
                f"(less the margin), {self.expected(requests):.1f} s expected; files stay for the next tick"
            )
        return max(1, math.floor(self.left()))

    def spend(self, step: str, call: Callable[[int], T], requests: int = 1) -> T:
        """Check, then run `call(timeout_seconds)`, learning its cost (per request)."""
        timeout = self.check(step, requests)
        start = time.monotonic()
        try:
            return call(timeout)
        finally:
            cost = (time.monotonic() - start) / requests
            self._slowest = cost if self._slowest is None else max(self._slowest, cost)

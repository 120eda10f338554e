"""The stand-in's clock: real time plus an offset the control API can advance."""

from __future__ import annotations

import bisect
import threading
import time
from datetime import UTC, datetime


class Clock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (real time of an advance, total offset from then on)
        self._advances: list[tuple[float, float]] = []

    def _offset_at(self, real: float) -> float:
        index = bisect.bisect_right(self._advances, (real, float("inf")))
        return self._advances[index - 1][1] if index else 0.0

    def now(self) -> float:
        """Seconds since the epoch on the stand-in's clock."""
        real = time.time()
        with self._lock:
            return real + self._offset_at(real)

    def offset(self) -> float:
        with self._lock:
            return self._advances[-1][1] if self._advances else 0.0

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            total = (self._advances[-1][1] if self._advances else 0.0) + seconds
            self._advances.append((time.time(), total))

    def reset(self) -> None:
        with self._lock:
            self._advances.clear()

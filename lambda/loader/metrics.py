"""POST a run's metrics to the core API: retried with backoff, never able to fail or undo the load."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from kernel import logs
from kernel.errors import FloeError

log = logs.get("metrics")
TIMEOUT_SECONDS = 5.0


class MetricsRejected(FloeError):
    """Core did not take the run report; `transient` when a retry may fix it (5xx, 429, network)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class CoreMetrics:
    def __init__(self, url: str, token: str | None = None, attempts: int = 3, backoff: float = 0.5) -> None:
        self._url = url
        self._token = token
        self._attempts = attempts
        self._backoff = backoff

    def post(self, payload: dict[str, Any]) -> bool:
        """True when core accepted the run; False (logged) when it did not after every retry."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=4),
            retry=retry_if_exception(lambda e: isinstance(e, MetricsRejected) and e.transient),
            reraise=True,
        )
        try:
            retrying(self._send, payload)
        except MetricsRejected as error:
            log.warning("metrics not delivered", extra={"run_id": payload.get("run_id"), "reason": str(error)})
            return False
        return True

    def _send(self, payload: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(payload["run_id"])}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked in kernel.config
            self._url, data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS):  # noqa: S310
                return
        except urllib.error.HTTPError as error:
            if error.code >= 500 or error.code == 429:
                raise MetricsRejected(f"core answered HTTP {error.code}", transient=True) from None
            raise MetricsRejected(f"core refused the run report with HTTP {error.code}", transient=False) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise MetricsRejected(f"core unreachable: {type(reason).__name__}", transient=True) from None

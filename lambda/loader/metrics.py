"""POST a run's metrics to the core API: retried with backoff, never able to fail or undo the load."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from provisioner import logs

log = logs.get("metrics")
TIMEOUT_SECONDS = 5.0


class MetricsRejected(Exception):
    """Core answered with a status a retry may fix (5xx, 429) or the network failed."""


class CoreMetrics:
    def __init__(self, url: str, token: str | None = None, attempts: int = 3, backoff: float = 0.5) -> None:
        self._url = url
        self._token = token
        self._attempts = attempts
        self._backoff = backoff

    def post(self, payload: dict[str, Any]) -> bool:
        """True when core accepted the run; False (logged) when it did not after every retry."""
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=4),
            retry=retry_if_exception_type(MetricsRejected),
            reraise=True,
        )
        try:
            retrying(self._send, payload)
        except (MetricsRejected, ValueError) as error:
            log.warning("metrics not delivered", extra={"run_id": payload.get("run_id"), "reason": str(error)})
            return False
        return True

    def _send(self, payload: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(payload["run_id"])}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked in provisioner.config
            self._url, data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS):  # noqa: S310
                return
        except urllib.error.HTTPError as error:
            if error.code >= 500 or error.code == 429:
                raise MetricsRejected(f"core answered HTTP {error.code}") from None
            raise ValueError(f"core refused the run report with HTTP {error.code}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise MetricsRejected(f"core unreachable: {type(reason).__name__}") from None

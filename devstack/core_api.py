"""A stand-in for the core API's run-metrics endpoint: records what it is sent, fails or stalls on demand."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _Behaviour:
    failures_left: int = 0
    failure_status: int = 503
    stalls_left: int = 0
    stall_seconds: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class CoreReceiver:
    """POST anything under `url`; `runs()` gives each run once, keyed by its Idempotency-Key."""

    def __init__(self, port: int = 0) -> None:
        self._behaviour = _Behaviour()
        handler = _handler_for(self._behaviour)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/v1/warehouse-delivery/runs"

    def __enter__(self) -> CoreReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._behaviour.lock:
            self._behaviour.failures_left = count
            self._behaviour.failure_status = status

    def stall_next(self, count: int, seconds: float) -> None:
        with self._behaviour.lock:
            self._behaviour.stalls_left = count
            self._behaviour.stall_seconds = seconds

    @property
    def received(self) -> list[Received]:
        """Every request that was accepted (answered 2xx), in order, retries included."""
        with self._behaviour.lock:
            return list(self._behaviour.received)

    def runs(self) -> list[dict[str, Any]]:
        """Accepted run reports, one per idempotency key (the last accepted wins)."""
        by_key = {r.headers.get("idempotency-key", ""): r.body for r in self.received}
        return list(by_key.values())


def _handler_for(behaviour: _Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            stall, status = self._decide()
            if stall:
                time.sleep(stall)
            if status >= 300:
                self._answer(status, {"error": "injected failure"})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._answer(400, {"error": "body is not JSON"})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            with behaviour.lock:
                behaviour.received.append(Received(self.path, headers, body))
            self._answer(202, {"accepted": True})

        def _decide(self) -> tuple[float, int]:
            with behaviour.lock:
                stall = 0.0
                if behaviour.stalls_left > 0:
                    behaviour.stalls_left -= 1
                    stall = behaviour.stall_seconds
                if behaviour.failures_left > 0:
                    behaviour.failures_left -= 1
                    return stall, behaviour.failure_status
                return stall, 202

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read `received`, not stderr."""

    return Handler

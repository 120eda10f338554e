"""Run one loader tick in this process and SIGKILL it at a chosen boundary between external calls.

    python tests/reliability/crash_runner.py CONNECTION_ID [--kill-at POINT] [--budget SECONDS]
        [--list-page-size N] [--go-file PATH] [--result PATH]

The environment is the local stack's (AWS_ENDPOINT_URL, FLOE_CONNECTIONS_DSN, FLOE_SNOWFLAKE_*, ...): the
servers live in the test process, this process reaches them over HTTP or the database, like a Lambda.

The harness only observes and interrupts the product from outside: botocore `before-call`/`after-call`
events (AWS operations), a wrapper around `kernel.snowflake_session.query` (SQL kinds) and
`open_session` (login), around the stores' `acquire_lease`/`release_lease`, and around
`loader.metrics.CoreMetrics._send` (the metrics POST). `--list-page-size` sets MaxKeys on ListObjectsV2
requests: S3 may return fewer than 1,000 keys a page, and this makes a multi-page listing from a few files.

Exit status: 0 the tick ended (result written), 3 the kill point was never reached (result written),
-9 killed at the point (the `journal` file, one line per observed call, says what ran before).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

NOT_REACHED = 3


@dataclass(frozen=True)
class Boundary:
    """The `nth` call named `name` on `channel`, `before` or `after` it ran."""

    channel: str  # aws | sql | lease | login | metrics
    name: str
    phase: str
    nth: int = 1


# Every point the matrix kills at, in the order a tick reaches them.
POINTS: dict[str, Boundary] = {
    "lease-acquired": Boundary("lease", "acquire", "after"),
    "list-page-1": Boundary("aws", "s3.ListObjectsV2", "after", 1),
    "list-page-2": Boundary("aws", "s3.ListObjectsV2", "after", 2),
    "secret-read": Boundary("aws", "secretsmanager.GetSecretValue", "after"),
    "logged-in": Boundary("login", "open_session", "after"),
    "before-refresh": Boundary("sql", "refresh", "before"),
    "after-refresh": Boundary("sql", "refresh", "after"),
    "history-poll-1": Boundary("sql", "copy_history", "after", 1),
    "history-poll-2": Boundary("sql", "copy_history", "after", 2),
    "dead-letter-copied": Boundary("aws", "s3.CopyObject", "after"),
    "manifest-written": Boundary("aws", "s3.PutObject", "after"),
    "before-delete": Boundary("aws", "s3.DeleteObjects", "before"),
    "delete-batch-1": Boundary("aws", "s3.DeleteObjects", "after", 1),
    "before-metrics-post": Boundary("metrics", "post", "before"),
    "after-metrics-post": Boundary("metrics", "post", "after"),
    # REST mode (FLOE_LOAD_MODE=rest): insertFiles and insertReport take REFRESH's and COPY_HISTORY's places.
    "before-insert-files": Boundary("rest", "insertFiles", "before"),
    "after-insert-files": Boundary("rest", "insertFiles", "after"),
    "report-poll-1": Boundary("rest", "insertReport", "after", 1),
    "report-poll-2": Boundary("rest", "insertReport", "after", 2),
}
# The points each load mode reaches.
REST_ONLY = {"before-insert-files", "after-insert-files", "report-poll-1", "report-poll-2"}
REFRESH_ONLY = {"before-refresh", "after-refresh", "history-poll-1", "history-poll-2"}
POINTS_BY_MODE = {
    "refresh": [p for p in POINTS if p not in REST_ONLY],
    "rest": [p for p in POINTS if p not in REFRESH_ONLY],
}


def sql_kind(sql: str) -> str:
    text = " ".join(sql.upper().split())
    if text.startswith("ALTER PIPE") and " REFRESH" in text:
        return "refresh"
    if "COPY_HISTORY" in text:
        return "copy_history"
    if "SYSTEM$PIPE_STATUS" in text:
        return "pipe_status"
    return "other"


class Observer:
    def __init__(self, kill_at: Boundary | None, journal: Path | None) -> None:
        self.kill_at = kill_at
        self.journal = journal
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.leases: list[dict[str, Any]] = []

    def saw(self, channel: str, name: str, phase: str) -> None:
        self.counts[(channel, name, phase)] += 1
        nth = self.counts[(channel, name, phase)]
        if self.journal is not None:
            with self.journal.open("a") as out:
                out.write(f"{time.time():.3f} {channel} {name} {phase} {nth}\n")
        target = self.kill_at
        if target and (target.channel, target.name, target.phase, target.nth) == (channel, name, phase, nth):
            os.kill(os.getpid(), signal.SIGKILL)


def install(observer: Observer, list_page_size: int | None) -> None:
    """Wrap the product's outward calls. Must run before `loader` is imported: `loader.snowpipe` binds
    `query` at import time."""
    import boto3

    from kernel import connections, snowflake_session

    original_query = snowflake_session.query

    @wraps(original_query)
    def query(session: Any, sql: str, timeout_seconds: int | None = None) -> list[dict[str, Any]]:
        kind = sql_kind(sql)
        observer.saw("sql", kind, "before")
        rows = original_query(session, sql, timeout_seconds)
        observer.saw("sql", kind, "after")
        return rows

    snowflake_session.query = query

    original_open = snowflake_session.open_session

    @wraps(original_open)
    def open_session(*args: Any, **kwargs: Any) -> Any:
        observer.saw("login", "open_session", "before")
        session = original_open(*args, **kwargs)
        observer.saw("login", "open_session", "after")
        return session

    snowflake_session.open_session = open_session

    store_class: Any = connections._SqlStore
    original_acquire, original_release = store_class.acquire_lease, store_class.release_lease

    def acquire_lease(self: Any, *args: Any, **kwargs: Any) -> Any:
        lease = original_acquire(self, *args, **kwargs)
        if lease is not None:
            observer.leases.append({"token": lease.token, "acquired_at": time.time(), "released_at": None})
            observer.saw("lease", "acquire", "after")
        return lease

    def release_lease(self: Any, lease: Any) -> Any:
        for held in observer.leases:
            if held["token"] == lease.token:
                held["released_at"] = time.time()
        observer.saw("lease", "release", "before")
        return original_release(self, lease)

    store_class.acquire_lease, store_class.release_lease = acquire_lease, release_lease

    def short_pages(params: dict[str, Any], **_: Any) -> None:
        params["MaxKeys"] = list_page_size

    def before_call(model: Any, **_: Any) -> None:
        observer.saw("aws", f"{model.service_model.service_name}.{model.name}", "before")

    def after_call(model: Any, **_: Any) -> None:
        observer.saw("aws", f"{model.service_model.service_name}.{model.name}", "after")

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    if list_page_size:
        boto3.DEFAULT_SESSION.events.register("before-parameter-build.s3.ListObjectsV2", short_pages)
    boto3.DEFAULT_SESSION.events.register("before-call", before_call)
    boto3.DEFAULT_SESSION.events.register("after-call", after_call)


def install_rest(observer: Observer) -> None:
    """The Snowpipe REST requests, named by their endpoint (the last segment of the URL's path)."""
    from loader import snowpipe_rest

    original_call = snowpipe_rest._OneShot._call

    def call(self: Any, method: str, url: str, *args: Any) -> Any:
        kind = url.split("?", 1)[0].rsplit("/", 1)[-1]
        observer.saw("rest", kind, "before")
        answer = original_call(self, method, url, *args)
        observer.saw("rest", kind, "after")
        return answer

    snowpipe_rest._OneShot._call = call  # type: ignore[method-assign,assignment]


def install_metrics(observer: Observer) -> None:
    from loader import metrics

    original_send = metrics.CoreMetrics._send

    def send(self: Any, payload: dict[str, Any], authorization: dict[str, str]) -> None:
        observer.saw("metrics", "post", "before")
        original_send(self, payload, authorization)
        observer.saw("metrics", "post", "after")

    metrics.CoreMetrics._send = send  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("connection_id")
    parser.add_argument("--kill-at", choices=sorted(POINTS), default=None)
    parser.add_argument("--budget", type=float, default=20.0, help="the tick's time budget (Lambda remaining time)")
    parser.add_argument("--list-page-size", type=int, default=None)
    parser.add_argument("--go-file", type=Path, default=None, help="wait (after imports) until this file exists")
    parser.add_argument("--result", type=Path, default=None)
    parser.add_argument("--journal", type=Path, default=None)
    args = parser.parse_args(argv)

    observer = Observer(POINTS[args.kill_at] if args.kill_at else None, args.journal)
    install(observer, args.list_page_size)
    import loader.snowpipe
    from kernel import snowflake_session
    from loader.handler import run
    from loader.tick import Deadline

    if getattr(loader.snowpipe, "query", None) not in (None, snowflake_session.query):
        print("harness cannot observe SQL: loader.snowpipe holds its own reference to query", file=sys.stderr)
        return 2
    install_metrics(observer)
    install_rest(observer)

    if args.go_file is not None:  # start many processes together, once each has paid for its imports
        args.go_file.with_name(f"{args.go_file.name}.ready.{os.getpid()}").touch()
        while not args.go_file.exists():
            time.sleep(0.005)
    started = time.time()
    report = run({"connection_id": args.connection_id}, Deadline.after(args.budget))
    result = {
        "report": report,
        "started_at": started,
        "ended_at": time.time(),
        "leases": observer.leases,
        "calls": {" ".join(k): v for k, v in observer.counts.items()},
    }
    if args.result is not None:
        args.result.write_text(json.dumps(result, default=str))
    return NOT_REACHED if args.kill_at else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

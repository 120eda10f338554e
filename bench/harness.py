"""The parent process: the local stack (moto, the Snowflake stand-in, the core receiver), one onboarded
organisation per (scenario, approach), its files, and the scenario processes it starts and serves."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bench.costs import LatencyModel
from bench.workers import Job, Result

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from devstack.stack import LocalStack
    from kernel.config import Settings
    from kernel.connections import Connection

PUT_THREADS = 16
CORRUPT_MESSAGE = "Invalid data encountered during decompression for file: '{name}'"


class BenchFailed(RuntimeError):
    pass


@dataclass
class Org:
    org_id: str
    account: str
    connection: Connection
    events_per_file: int = 1
    corrupt: set[str] = field(default_factory=set)


class Harness:
    def __init__(self, latency: LatencyModel, snowpipe: str = "auto") -> None:
        self.latency = latency
        self.snowpipe = snowpipe
        self._stack = ExitStack()
        self._directory = tempfile.TemporaryDirectory(prefix="floe-bench-")
        self.local: LocalStack
        self.settings: Settings
        self.env: dict[str, str] = {}
        self.orgs: dict[str, Org] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Harness:
        from devstack.stack import LocalStack
        from kernel import config
        from kernel.connections import open_store

        self.local = self._stack.enter_context(LocalStack())
        self.env = {
            **self.local.environment(),
            "FLOE_CONNECTIONS_DSN": f"sqlite:///{self._directory.name}/connections.db",
            "TMPDIR": self._directory.name,
        }
        os.environ.update(self.env)
        self.settings = config.load()
        with open_store(self.settings.connections_dsn) as store:
            store.migrate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
        self._directory.cleanup()

    # ---- organisations and their files ----------------------------------------------------------

    def onboard(self, name: str) -> Org:
        """A ready connection in its own stand-in account, its warehouse suspended, latency modelled."""
        from devstack.scenario import onboard, run_as_admin
        from kernel.connections import open_store

        org_id = f"b-{name}".lower()
        account = org_id.upper().replace("-", "_")
        with open_store(self.settings.connections_dsn) as store:
            connection = onboard(org_id, account, standin=self.local.snowflake, settings=self.settings, store=store)
        run_as_admin(self.local.snowflake, account, "ALTER WAREHOUSE COMPUTE_WH SUSPEND")
        self.local.snowflake.control.configure(
            account,
            load_delay_seconds=None,
            statement_latency_seconds=self.latency.statement_seconds,
            login_latency_seconds=self.latency.login_seconds,
        )
        org = Org(org_id, account, connection)
        # Files arrive after the pipe exists (S3 stamps whole seconds): a file stamped in the second the
        # pipe was created would count as staged before it, which the tick treats as a rare case.
        time.sleep(1.1)
        with self._lock:
            self.orgs[account] = org
        return org

    def onboard_many(self, names: list[str], threads: int = 8) -> list[Org]:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(self.onboard, names))

    def put_files(self, org: Org, count: int, *, corrupt_percent: float = 0, file_kb: float = 0) -> None:
        """`count` gzip NDJSON files in the writer's layout; 1 event each unless `file_kb` pads them.
        Every (100 / corrupt_percent)-th file is cut short (Snowpipe reports it failed)."""
        import boto3

        s3: S3Client = boto3.client("s3")
        prefix = self.settings.live_prefix_for(org.org_id)
        at = datetime.now(UTC)
        good = _event_file(at, file_kb)
        bad = good[: len(good) // 2]
        every = round(100 / corrupt_percent) if corrupt_percent else 0
        keys = [_key(prefix, at, index) for index in range(count)]
        corrupt = {keys[index] for index in range(count) if every and index % every == every - 1}

        def put(key: str) -> None:
            s3.put_object(Bucket=self.settings.bucket, Key=key, Body=bad if key in corrupt else good)

        with ThreadPoolExecutor(PUT_THREADS) as pool:
            list(pool.map(put, keys))
        org.events_per_file = _events_in(good)
        org.corrupt |= corrupt

    # ---- Snowflake counters ---------------------------------------------------------------------

    def stats(self, org: Org) -> dict[str, Any]:
        return dict(self.local.snowflake.control.stats(org.account))

    # ---- scenario processes ---------------------------------------------------------------------

    def run(self, kind: str, org: Org | None, env: dict[str, str] | None = None, **extra: Any) -> Result:
        """Run one worker in a fresh (spawned) process, serving its drain requests; Snowflake counters
        are the difference across the run."""
        from bench.workers import main

        job: Job = {"kind": kind, "env": {**self.env, **(env or {})}, **extra}
        if org is not None:
            job.update(connection_id=org.connection.connection_id, account=org.account)
        before = self.stats(org) if org else None
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=main, args=(job, child), daemon=False)
        process.start()
        result: Result | None = None
        while result is None:
            if parent.poll(0.05):
                message, payload = parent.recv()
                if message == "drain":
                    parent.send(self.drain(payload))
                elif message == "result":
                    result = payload
                else:
                    process.join()
                    raise BenchFailed(f"{kind} worker failed: {payload}")
            elif not process.is_alive():
                raise BenchFailed(f"{kind} worker exited with code {process.exitcode} and no result")
        process.join()
        if org is not None and before is not None:
            result["snowflake"] = difference(before, self.stats(org))
        return result

    def drain(self, account: str) -> float:
        """Snowpipe's work: load every queued file of the account now; returns the seconds it took."""
        from devstack.snowflake import pipes

        started = time.perf_counter()
        org = self.orgs[account]
        state = self.local.snowflake.state
        stand_in_account = state.account(account)
        if stand_in_account is None:
            raise BenchFailed(f"no stand-in account {account}")
        # `auto` and `engine`: the stand-in's engine loads every file (about 20 ms a small file);
        # `instant` records them without reading them.
        if self.snowpipe == "instant":
            _record_loaded(state.runtime, stand_in_account, org)
        else:
            pipes.load_due(state.runtime, stand_in_account, everything=True)
        return time.perf_counter() - started


def _record_loaded(runtime: Any, account: Any, org: Org) -> None:
    """Every queued file becomes a COPY_HISTORY record at once, as the stand-in's engine would record it
    (`Loaded` with the file's events, or `Load failed` for a corrupt file), without reading the object:
    the stand-in's `load_queued` minus the load itself. The table gets no rows."""
    from devstack.snowflake import engine, pipes

    with account.lock:
        for pipe in account.pipes.values():
            if pipe.paused:
                continue
            now = runtime.clock.now()
            on_error = engine.OnError.parse(pipe.copy.on_error or "SKIP_FILE")
            queue, pipe.queue = pipe.queue, []
            for queued in queue:
                if queued.file.key in org.corrupt:
                    outcome = engine.whole_file_failure(
                        CORRUPT_MESSAGE.format(name=queued.file.relative_path), on_error
                    )
                else:
                    rows = org.events_per_file
                    outcome = engine.Outcome(engine.STATUS_LOADED, rows, rows, on_error.error_limit(rows))
                record = pipes._record(
                    account, pipe.copy, queued.file, outcome, received_at=queued.received_at, now=now, pipe=pipe
                )
                account.history.append(record)
                if outcome.status != engine.STATUS_FAILED:
                    pipe.last_ingested_at, pipe.last_ingested_path = now, queued.file.relative_path


def difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    kinds = {
        kind: after["statements_by_kind"].get(kind, 0) - before["statements_by_kind"].get(kind, 0)
        for kind in after["statements_by_kind"]
    }
    return {
        "logins": after["logins"] - before["logins"],
        "statements": after["statements"] - before["statements"],
        "by_kind": {kind: count for kind, count in sorted(kinds.items()) if count},
        "warehouse_statements": after["warehouse_statements"] - before["warehouse_statements"],
        "warehouse_resumes": after["warehouse_resumes"] - before["warehouse_resumes"],
        "rest_requests": {
            kind: count - before["rest_requests_by_kind"].get(kind, 0)
            for kind, count in after["rest_requests_by_kind"].items()
            if count != before["rest_requests_by_kind"].get(kind, 0)
        },
    }


def event_file_key(prefix: str, index: int) -> str:
    """A key in the writer's layout for the current hour."""
    return _key(prefix, datetime.now(UTC), index)


def one_event_file() -> bytes:
    return _event_file(datetime.now(UTC), 0)


def _key(prefix: str, at: datetime, index: int) -> str:
    return (
        f"{prefix}events/env_key=env-bench/year={at:%Y}/month={at:%m}/day={at:%d}/hour={at:%H}/part-{index:06d}.json.gz"
    )


def _event_file(at: datetime, file_kb: float) -> bytes:
    """One flag-evaluation event; padded with more (incompressible-ish) events up to `file_kb` KiB."""
    from devstack.events import evaluation_events, gzip_ndjson

    if not file_kb:
        return gzip_ndjson(evaluation_events(1, "env-bench", 0, at))
    rng = random.Random(7)
    records: list[dict[str, Any]] = []
    body = b""
    while len(body) < file_kb * 1024:
        batch = evaluation_events(50, "env-bench", len(records), at)
        for record in batch:
            record["identifier"] = f"user-{rng.getrandbits(64):016x}"
        records.extend(batch)
        body = gzip_ndjson(records)
    return body


def _events_in(body: bytes) -> int:
    return sum(1 for line in gzip.decompress(body).splitlines() if line.strip() and json.loads(line))

"""What runs in a scenario's own process (multiprocessing spawn): Floe's tick, the floor, the usual
COPY loader, the fan-out pool. Each measures its own wall time, AWS requests and peak RSS and sends one
result to the parent, which hosts the local stack and loads queued files when a worker asks (`drain`):
that time is Snowpipe's, not the loader's, and is reported apart."""

from __future__ import annotations

import json
import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection as Channel
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

    from kernel.config import Settings
    from kernel.connections import Connection

Job = dict[str, Any]
Result = dict[str, Any]


def main(job: Job, channel: Channel) -> None:
    """The spawned process's entry point: run `job["kind"]`, send its result (or its error)."""
    os.environ.update(job["env"])
    try:
        result = WORKERS[job["kind"]](job, channel)
    except BaseException as error:
        channel.send(("error", f"{type(error).__name__}: {error}"))
        raise
    result["peak_rss_mb"] = peak_rss_mb()
    channel.send(("result", result))


def peak_rss_mb() -> float:
    """This process's peak resident set since it started its program (Linux VmHWM).

    `getrusage(RUSAGE_SELF).ru_maxrss` is not used: Linux carries the pre-exec high-water mark into it,
    so a spawned worker would report the parent's (the whole local stack's) size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Drainer:
    """Asks the parent to load every queued file of the account now (Snowpipe's work), timing it."""

    def __init__(self, channel: Channel, account: str) -> None:
        self._channel, self._account = channel, account
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, _: float = 0.0) -> None:
        started = time.perf_counter()
        self._channel.send(("drain", self._account))
        self._channel.recv()
        self.seconds += time.perf_counter() - started
        self.calls += 1


class AwsRequests:
    """Counts the AWS operations sent through boto3's default session (every client the code makes)."""

    def __init__(self) -> None:
        self.by_service: dict[str, Counter[str]] = {}

    @contextmanager
    def recording(self) -> Iterator[AwsRequests]:
        import boto3

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None

        def record(model: Any, **_: Any) -> None:
            service = model.service_model.service_name
            self.by_service.setdefault(service, Counter())[model.name] += 1

        session.events.register("before-call", record)
        try:
            yield self
        finally:
            session.events.unregister("before-call", record)

    def of(self, service: str) -> dict[str, int]:
        return dict(sorted(self.by_service.get(service, Counter()).items()))


class SnowflakeTimer:
    """Time spent inside Snowflake calls (login and statements), measured on the client."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


# ---- Floe's tick -----------------------------------------------------------------------------------


def tick(job: Job, channel: Channel) -> Result:
    """One tick as the handler runs it (`loader.handler.run`), except that the tick's sleep before a
    poll asks the parent to load the queued files instead of waiting for them."""

    import loader.snowpipe
    from kernel import config, snowflake_session
    from kernel.connections import open_store
    from loader.handler import edges_for
    from loader.tick import Deadline, run_tick

    drainer = Drainer(channel, job["account"])
    timer = SnowflakeTimer()
    snowflake_session.open_session = timer.wrap(snowflake_session.open_session)
    vars(loader.snowpipe)["query"] = timer.wrap(vars(loader.snowpipe)["query"])
    requests = AwsRequests()
    with requests.recording():
        started = time.perf_counter()
        settings = config.load()
        store = open_store(settings.connections_dsn)
        try:
            report = run_tick(job["connection_id"], edges_for(settings, store, sleep=drainer), Deadline.after(3600))
        finally:
            store.close()
        wall = time.perf_counter() - started
    return {
        "status": report.status.value,
        "error": report.error,
        "files": report.files_listed,
        "events": report.events_delivered,
        "files_loaded": report.files_loaded,
        "files_dead_lettered": report.files_dead_lettered,
        "files_in_flight": report.files_in_flight,
        "wall_s": wall - drainer.seconds,
        "snowpipe_load_s": drainer.seconds,
        "snowflake_s": timer.seconds,
        "s3": requests.of("s3"),
        "secret_reads": sum(requests.of("secretsmanager").values()),
    }


# ---- the floor: the fewest requests that do the job ------------------------------------------------


def floor(job: Job, channel: Channel) -> Result:
    """List (pages), log in, one REFRESH, (Snowpipe loads), one COPY_HISTORY, dead-letter the failed
    files (a copy each and one manifest), delete everything settled in batches of 1,000: plain boto3
    and plain SQL, no planning, no retries, no checks."""

    import boto3

    from kernel import config
    from kernel.render import render
    from kernel.secrets import read_credentials
    from kernel.snowflake_session import open_session, query

    settings = config.load()
    connection, target = _connection_and_target(job["connection_id"], settings)
    credentials = read_credentials(connection.secret_ref, boto3.client("secretsmanager"))
    drainer = Drainer(channel, job["account"])
    timer = SnowflakeTimer()
    requests = AwsRequests()
    events = 0
    with requests.recording():
        started = time.perf_counter()
        s3 = boto3.client("s3")
        keys = _live_keys(s3, settings, connection.org_id)
        if keys:
            session = timer.wrap(open_session)(connection, credentials, settings, query_tag="floe-bench-floor")
            run = timer.wrap(query)
            run(session, render("refresh", target, prefix="events/", modified_after=None))
            drainer()
            history = run(session, render("copy_history", target, start_time=_utc(time.time() - 3600)))
            session.close()
            base = target.stage_url.split("/", 3)[3]
            status = {base + str(row["FILE_NAME"]): str(row["STATUS"]) for row in history}
            loaded = [k for k in keys if status.get(k) == "Loaded"]
            failed = [k for k in keys if status.get(k) in ("Load failed", "Partially loaded", "Load skipped")]
            events = sum(int(row["ROW_COUNT"] or 0) for row in history if row["STATUS"] == "Loaded")
            _floor_settle(s3, settings, connection.org_id, loaded=loaded, failed=failed)
        wall = time.perf_counter() - started
    return {
        "status": "ok",
        "files": len(keys),
        "events": events,
        "wall_s": wall - drainer.seconds,
        "snowpipe_load_s": drainer.seconds,
        "snowflake_s": timer.seconds,
        "s3": requests.of("s3"),
        "secret_reads": 0,
    }


def floor_rest(job: Job, channel: Channel) -> Result:
    """The REST mode's floor: list, insertFiles (5,000 paths a request), (Snowpipe loads), one
    insertReport, dead-letter the failed files, delete everything settled in batches of 1,000. The
    official client as it comes, no login, no planning, no retries, no checks."""
    import boto3
    from snowflake.ingest import SimpleIngestManager, StagedFile

    from kernel import config
    from kernel.secrets import read_credentials
    from loader.snowpipe_rest import rest_pipe_name

    settings = config.load()
    connection, target = _connection_and_target(job["connection_id"], settings)
    pem = read_credentials(connection.secret_ref, boto3.client("secretsmanager")).private_key_pem()
    drainer = Drainer(channel, job["account"])
    requests = AwsRequests()
    with requests.recording():
        started = time.perf_counter()
        s3 = boto3.client("s3")
        prefix = settings.live_prefix_for(connection.org_id)
        keys = _live_keys(s3, settings, connection.org_id)
        endpoint = {"scheme": "http", "host": settings.snowflake_host, "port": settings.snowflake_port}
        client = SimpleIngestManager(
            account=connection.account,
            user=connection.user,
            pipe=rest_pipe_name(target.qualified_pipe),
            private_key=pem,
            **endpoint,
        )
        for start in range(0, len(keys), 5000):
            client.ingest_files([StagedFile(k[len(prefix) :], None) for k in keys[start : start + 5000]])
        if keys:
            drainer()
        files = client.get_history()["files"] if keys else []
        status = {prefix + f["path"]: f["status"] for f in files}
        loaded = [k for k in keys if status.get(k) == "LOADED"]
        failed = [k for k in keys if status.get(k) in ("LOAD_FAILED", "PARTIALLY_LOADED")]
        _floor_settle(s3, settings, connection.org_id, loaded=loaded, failed=failed)
        wall = time.perf_counter() - started
    return {
        "status": "ok",
        "files": len(keys),
        "events": sum(int(f.get("rowsInserted") or 0) for f in files),
        "wall_s": wall - drainer.seconds,
        "snowpipe_load_s": drainer.seconds,
        "snowflake_s": 0.0,
        "s3": requests.of("s3"),
        "secret_reads": 0,
    }


# ---- the usual way: COPY INTO on the customer's warehouse, every run -------------------------------


def usual(job: Job, channel: Channel) -> Result:  # noqa: ARG001 - the worker signature
    """What the seeds' PoC and most peers do: log in, `COPY INTO <table> FROM @stage` (the pipe's own
    COPY, ON_ERROR = SKIP_FILE) on the warehouse every run, then delete the files it loaded."""
    import boto3

    from kernel import config, snowflake_session
    from kernel.render import render
    from kernel.secrets import read_credentials
    from kernel.snowflake_session import open_session, query

    # The stand-in's synchronous COPY loads about 10 files a second: give it the time it takes.
    snowflake_session.NETWORK_TIMEOUT_SECONDS = snowflake_session.STATEMENT_TIMEOUT_SECONDS = 3600
    settings = config.load()
    connection, target = _connection_and_target(job["connection_id"], settings)
    credentials = read_credentials(connection.secret_ref, boto3.client("secretsmanager"))
    copy = render("pipe", target).split("\nAS\n", 1)[1]
    timer = SnowflakeTimer()
    requests = AwsRequests()
    with requests.recording():
        started = time.perf_counter()
        s3 = boto3.client("s3")
        session = timer.wrap(open_session)(connection, credentials, settings, query_tag="floe-bench-usual")
        rows = timer.wrap(query)(session, copy)
        session.close()
        base = target.stage_url.split("/", 3)[3]
        loaded = [base + str(row["FILE"]) for row in rows if str(row.get("STATUS", "")) == "LOADED"]
        for start in range(0, len(loaded), 1000):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in loaded[start : start + 1000]]
            s3.delete_objects(Bucket=settings.bucket, Delete={"Objects": batch, "Quiet": True})
        wall = time.perf_counter() - started
    return {
        "status": "ok",
        "files": sum(1 for row in rows if "FILE" in row),
        "events": sum(int(row.get("ROWS_LOADED") or 0) for row in rows),
        "wall_s": wall,
        "snowpipe_load_s": 0.0,
        "snowflake_s": timer.seconds,
        "s3": requests.of("s3"),
        "secret_reads": 0,
    }


# ---- fan-out: many connections' ticks in one process pool ------------------------------------------


def fanout(job: Job, channel: Channel) -> Result:  # noqa: ARG001 - the worker signature
    """`loader.handler.run` for every connection in a process pool (Snowpipe loads in the background)."""
    import multiprocessing

    from loader.handler import run as handler_run

    del handler_run  # imported once here so that workers forked from this process start warm
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with context.Pool(job["processes"]) as pool:
        reports = pool.map(_fanout_tick, job["connection_ids"], chunksize=1)
    wall = time.perf_counter() - started
    s3: Counter[str] = Counter()
    for report in reports:
        s3.update(report["s3"])
    durations = sorted(report["wall_s"] for report in reports)
    return {
        "status": ",".join(sorted({r["status"] for r in reports})),
        "files": sum(r["files"] for r in reports),
        "events": sum(r["events"] for r in reports),
        "wall_s": wall,
        "snowpipe_load_s": 0.0,
        "snowflake_s": 0.0,
        "s3": dict(sorted(s3.items())),
        "secret_reads": sum(r["secret_reads"] for r in reports),
        "tick_p50_s": durations[len(durations) // 2],
        "tick_max_s": durations[-1],
        "children_peak_rss_mb": max(report["peak_rss_mb"] for report in reports),
    }


def _fanout_tick(connection_id: str) -> Result:
    from loader.handler import run
    from loader.tick import Deadline

    requests = AwsRequests()
    with requests.recording():
        started = time.perf_counter()
        report = run({"connection_id": connection_id}, Deadline.after(120))
        wall = time.perf_counter() - started
    return {
        "status": report["status"],
        "files": report["files_listed"],
        "events": report["events_delivered"],
        "wall_s": wall,
        "s3": requests.of("s3"),
        "secret_reads": sum(requests.of("secretsmanager").values()),
        "peak_rss_mb": peak_rss_mb(),
    }


# ---- steady load: many ticks, one simulated minute apart --------------------------------------------


def steady(job: Job, channel: Channel) -> Result:
    """`job["ticks"]` runs of one approach (`floe-refresh`, `floe-rest`: the tick; `usual`: COPY INTO),
    files arriving before every `job["files_every"]`-th. Between runs a minute passes: the stand-in's
    clock moves on 60 s (warehouse auto-suspend, insertReport's 10 minutes, loadHistoryScan's rate limit)
    and so does the connection's last settle time (FLOE_SETTLE_INTERVAL). Per run: the stand-in's own
    counters (warehouse statements and resumes, REST requests by kind) and the tick's AWS requests."""
    from devstack.snowflake.control import StandInControl

    control = StandInControl(job["control_url"])
    account = job["account"]
    per_tick: list[Result] = []
    for index in range(job["ticks"]):
        files = job["files_per_tick"] if index % job["files_every"] == 0 else 0
        _put(job, files, index)
        before = control.stats(account)
        run = usual(job, channel) if job["approach"] == "usual" else _steady_tick(job, channel)
        after = control.stats(account)
        per_tick.append({**run, "files": files, **_counter_deltas(before, after)})
        control.advance_clock(60)
        _minute_passes(job["connection_id"])
    return {"per_tick": per_tick}


def _steady_tick(job: Job, channel: Channel) -> Result:
    from kernel import config
    from kernel.connections import open_store
    from loader.handler import edges_for
    from loader.tick import Deadline, run_tick

    requests = AwsRequests()
    settings = config.load()
    with requests.recording(), open_store(settings.connections_dsn) as store:
        edges = edges_for(settings, store, sleep=Drainer(channel, job["account"]))
        report = run_tick(job["connection_id"], edges, Deadline.after(600))
    return {
        "status": report.status.value,
        "files_loaded": report.files_loaded,
        "s3": requests.of("s3"),
        "secret_reads": sum(requests.of("secretsmanager").values()),
    }


def _put(job: Job, count: int, index: int) -> None:
    import boto3

    from bench.harness import event_file_key, one_event_file

    s3 = boto3.client("s3")
    body = one_event_file()
    for number in range(count):
        key = event_file_key(job["prefix"], index * 1000 + number)
        s3.put_object(Bucket=job["bucket"], Key=key, Body=body)


def _counter_deltas(before: dict[str, Any], after: dict[str, Any]) -> Result:
    rest = {
        kind: count - before["rest_requests_by_kind"].get(kind, 0)
        for kind, count in after["rest_requests_by_kind"].items()
        if count != before["rest_requests_by_kind"].get(kind, 0)
    }
    return {
        "statements": after["statements"] - before["statements"],
        "logins": after["logins"] - before["logins"],
        "warehouse_statements": after["warehouse_statements"] - before["warehouse_statements"],
        "warehouse_resumes": after["warehouse_resumes"] - before["warehouse_resumes"],
        "rest_requests": rest,
    }


def _minute_passes(connection_id: str) -> None:
    """The row's last settle time moves a minute back: to the settle gate, a minute passed."""
    from dataclasses import replace
    from datetime import timedelta

    from kernel import config
    from kernel.connections import open_store

    with open_store(config.load().connections_dsn) as store:
        row = store.get(connection_id)
        if row.last_settled_at is not None:
            store.save(replace(row, last_settled_at=row.last_settled_at - timedelta(seconds=60)))


def _connection_and_target(connection_id: str, settings: Settings) -> tuple[Connection, Any]:
    from kernel.config import aws_account_id
    from kernel.connections import open_store
    from kernel.render import Target

    with open_store(settings.connections_dsn) as store:
        connection = store.get(connection_id)
    return connection, Target.from_connection(connection, settings, aws_account_id(settings))


def _utc(epoch: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


WORKERS: dict[str, Callable[[Job, Channel], Result]] = {
    "tick": tick,
    "floor": floor,
    "floor_rest": floor_rest,
    "usual": usual,
    "fanout": fanout,
    "steady": steady,
}


def _live_keys(s3: Any, settings: Settings, org_id: str) -> list[str]:
    """The floors' listing: every key under the organisation's live prefix, page by page."""
    prefix = settings.live_prefix_for(org_id)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _floor_settle(s3: Any, settings: Settings, org_id: str, *, loaded: list[str], failed: list[str]) -> None:
    """The fewest S3 requests that settle a run: a copy per failed file, one manifest, batched deletes."""
    bucket, prefix, dead = settings.bucket, settings.live_prefix_for(org_id), settings.dead_letter_prefix_for(org_id)
    for key in failed:
        copy_source: Any = {"Bucket": bucket, "Key": key}
        s3.copy_object(Bucket=bucket, Key=f"{dead}objects/{key[len(prefix) :]}", CopySource=copy_source)
    if failed:
        s3.put_object(Bucket=bucket, Key=f"{dead}manifests/floor.json", Body=json.dumps({"files": failed}).encode())
    settled = loaded + failed
    for start in range(0, len(settled), 1000):
        batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in settled[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})

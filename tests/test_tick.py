"""The loader end to end over the local stack: moto, the Snowflake stand-in (connector protocol), SQLite
connection rows and the core receiver. Each organisation has its own Snowflake account."""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.core_api import CoreReceiver
from devstack.events import write_corrupt_file, write_event_file
from devstack.scenario import onboard, run_as_admin_query
from devstack.snowflake.server import StandIn
from kernel import config
from kernel.connections import Connection, open_store
from loader import aws_actions
from loader.handler import run
from loader.tick import Deadline
from provisioner.dead_letters import list_dead_letters, replay

EVENTS_PER_FILE = 10


@dataclass
class World:
    mode: str  # FLOE_LOAD_MODE: every acceptance test runs in both modes
    standin: StandIn
    core: CoreReceiver
    settings: config.Settings
    a: Connection
    b: Connection

    def tick(self, connection: Connection, budget: float = 20.0) -> dict[str, Any]:
        return run({"connection_id": connection.connection_id}, Deadline.after(budget))

    def write(self, connection: Connection, name: str, events: int = EVENTS_PER_FILE) -> str:
        prefix = self.settings.live_prefix_for(connection.org_id)
        return write_event_file(boto3.client("s3"), self.settings.bucket, prefix, name, events=events, seed=hash(name))

    def live_keys(self, connection: Connection) -> list[str]:
        return keys(self.settings.bucket, self.settings.live_prefix_for(connection.org_id))

    def rows(self, connection: Connection) -> list[tuple[Any, ...]]:
        sql = "SELECT SOURCE_FILE_NAME, SOURCE_FILE_ROW_NUMBER FROM ANALYTICS.FLAGSMITH.FLAG_EVALUATIONS"
        return self.admin_sql(connection, sql)

    def admin_sql(self, connection: Connection, sql: str) -> list[tuple[Any, ...]]:
        return run_as_admin_query(self.standin, connection.account, sql)


def keys(bucket: str, prefix: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture(params=["refresh", "rest"])
def world(
    request: pytest.FixtureRequest,
    standin: StandIn,
    core_api: CoreReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    environment = {
        "FLOE_LOAD_MODE": request.param,
        "FLOE_SETTLE_INTERVAL": "0",  # REFRESH settles every tick here; test_settle_interval.py covers the gate
        "FLOE_CONNECTIONS_DSN": f"sqlite:///{tmp_path}/connections.db",
        "FLOE_SNOWFLAKE_HOST": standin.host,
        "FLOE_SNOWFLAKE_PORT": str(standin.port),
        "FLOE_SNOWFLAKE_PROTOCOL": "http",
        "FLOE_AWS_ACCOUNT_ID": "123456789012",
        "FLOE_CORE_API_URL": core_api.url,
        "FLOE_POLL_FIRST_SECONDS": "0.2",
        "FLOE_POLL_MAX_SECONDS": "0.5",
        "FLOE_TIME_MARGIN_SECONDS": "1",
        # A tick stops following after 3 s (not at its budget), so a test of files left in flight does
        # not depend on how fast this machine logs in and submits.
        "FLOE_FOLLOW_SECONDS": "3",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = config.load()
    with open_store(settings.connections_dsn) as store:
        store.migrate()
        a = onboard("acme", "ACME_ACCOUNT", standin=standin, settings=settings, store=store)
        b = onboard("globex", "GLOBEX_ACCOUNT", standin=standin, settings=settings, store=store)
    for account in ("ACME_ACCOUNT", "GLOBEX_ACCOUNT"):
        standin.control.configure(account, load_delay_seconds=0.05)  # Snowpipe loads in the background
    return World(request.param, standin, core_api, settings, a, b)


@pytest.mark.readings
def test_each_organisation_receives_only_its_own_events(world: World) -> None:
    a_files = [world.write(world.a, f"a-{i}") for i in range(3)]
    b_files = [world.write(world.b, f"b-{i}") for i in range(2)]
    a_report, b_report = world.tick(world.a), world.tick(world.b)
    assert (a_report["status"], a_report["files_loaded"], a_report["events_delivered"]) == ("ok", 3, 30)
    assert (b_report["status"], b_report["files_loaded"], b_report["events_delivered"]) == ("ok", 2, 20)
    a_sources = {row[0] for row in world.rows(world.a)}
    b_sources = {row[0] for row in world.rows(world.b)}
    assert len(world.rows(world.a)) == 30
    assert len(world.rows(world.b)) == 20
    assert {s.rsplit("/", 1)[-1] for s in a_sources} == {k.rsplit("/", 1)[-1] for k in a_files}
    assert {s.rsplit("/", 1)[-1] for s in b_sources} == {k.rsplit("/", 1)[-1] for k in b_files}
    assert world.live_keys(world.a) == []
    assert world.live_keys(world.b) == []
    posted = {r["organisation_id"]: r for r in world.core.runs()}
    assert posted["acme"]["events_delivered"] == 30
    assert posted["globex"]["events_delivered"] == 20


def test_one_warm_process_serving_both_in_turn_keeps_them_apart(world: World) -> None:
    for round_number in range(2):
        world.write(world.a, f"a-{round_number}")
        world.write(world.b, f"b-{round_number}")
        assert world.tick(world.a)["files_loaded"] == 1
        assert world.tick(world.b)["files_loaded"] == 1
    assert len(world.rows(world.a)) == 2 * EVENTS_PER_FILE
    # METADATA$FILENAME is the path relative to the stage, which is the organisation's own prefix.
    assert {row[0].rsplit("/", 1)[-1] for row in world.rows(world.a)} == {"a-0.json.gz", "a-1.json.gz"}
    assert {row[0].rsplit("/", 1)[-1] for row in world.rows(world.b)} == {"b-0.json.gz", "b-1.json.gz"}
    for account in ("ACME_ACCOUNT", "GLOBEX_ACCOUNT"):
        refreshes = [s for s in world.standin.control.statements(account) if s["kind"] == "refresh_pipe"]
        inserts = world.standin.control.stats(account)["rest_requests_by_kind"].get("insertFiles", 0)
        assert (len(refreshes), inserts) == ((2, 0) if world.mode == "refresh" else (0, 2)), account


@pytest.mark.readings
def test_a_corrupt_file_is_dead_lettered_with_its_reason_while_its_neighbours_load(world: World) -> None:
    good = world.write(world.a, "good")
    bad = write_corrupt_file(boto3.client("s3"), world.settings.bucket, "live/acme/", "bad")
    original = boto3.client("s3").get_object(Bucket=world.settings.bucket, Key=bad)["Body"].read()
    report = world.tick(world.a)
    assert (report["files_loaded"], report["files_dead_lettered"], report["dead_lettered_batches"]) == (1, 1, 1)
    assert world.live_keys(world.a) == []
    [entry] = list_dead_letters(world.a.connection_id, world.settings)
    assert entry["original_key"] == bad
    assert entry["status"] == "Load failed"
    assert entry["first_error"]
    assert entry["run_id"] == report["run_id"]
    copied = boto3.client("s3").get_object(Bucket=world.settings.bucket, Key=entry["dead_letter_key"])["Body"].read()
    assert copied == original
    assert len(world.rows(world.a)) == EVENTS_PER_FILE
    assert good.rsplit("/", 1)[-1] in world.rows(world.a)[0][0]
    with pytest.raises((EOFError, gzip.BadGzipFile)):  # the original, truncated bytes
        gzip.decompress(copied)
    again = world.tick(world.a)  # dead letters are never picked up again by a tick
    assert again["status"] == "idle"
    assert len(list_dead_letters(world.a.connection_id, world.settings)) == 1


@pytest.mark.readings
def test_a_paused_pipe_in_one_organisation_leaves_the_other_untouched(world: World) -> None:
    world.admin_sql(world.a, "ALTER PIPE ANALYTICS.FLAGSMITH.FLOE_EVENTS_PIPE SET PIPE_EXECUTION_PAUSED = TRUE")
    a_file, _ = world.write(world.a, "a"), world.write(world.b, "b")
    a_report = world.tick(world.a)
    b_report = world.tick(world.b)
    assert a_report["status"] == "error"
    assert "PAUSED" in a_report["error"]
    assert "PIPE_EXECUTION_PAUSED = FALSE" in a_report["error"]
    assert world.live_keys(world.a) == [a_file]
    assert (b_report["status"], b_report["files_loaded"]) == ("ok", 1)
    world.admin_sql(world.a, "ALTER PIPE ANALYTICS.FLAGSMITH.FLOE_EVENTS_PIPE SET PIPE_EXECUTION_PAUSED = FALSE")
    resumed = world.tick(world.a)
    assert (resumed["status"], resumed["files_loaded"]) == ("ok", 1)
    assert len(world.rows(world.a)) == EVENTS_PER_FILE


def test_a_suspended_warehouse_without_auto_resume_fails_clearly_and_loses_nothing(world: World) -> None:
    world.admin_sql(world.a, "ALTER WAREHOUSE COMPUTE_WH SET AUTO_RESUME = FALSE")
    world.admin_sql(world.a, "ALTER WAREHOUSE COMPUTE_WH SUSPEND")
    a_file = world.write(world.a, "a")
    world.write(world.b, "b")
    report = world.tick(world.a)
    if world.mode == "rest":  # the steady path needs no warehouse at all
        assert (report["status"], report["files_loaded"]) == ("ok", 1)
        assert world.standin.control.stats("ACME_ACCOUNT")["warehouse_resumes"] == 0
        return
    assert report["status"] == "error"
    assert "COMPUTE_WH" in report["error"] or "warehouse" in report["error"].lower()
    assert world.live_keys(world.a) == [a_file]
    assert world.tick(world.b)["files_loaded"] == 1
    world.admin_sql(world.a, "ALTER WAREHOUSE COMPUTE_WH RESUME")
    after = world.tick(world.a)
    assert (after["status"], after["files_loaded"]) == ("ok", 1)
    assert len(world.rows(world.a)) == EVENTS_PER_FILE


def test_a_revoked_key_stops_the_run_before_anything_moves(world: World) -> None:
    world.admin_sql(world.a, "ALTER USER FLOE_LOADER UNSET RSA_PUBLIC_KEY")
    a_file = world.write(world.a, "a")
    report = world.tick(world.a)
    assert report["status"] == "error"
    assert "390144" in report["error"] or "JWT" in report["error"]
    assert world.a.connection_id in report["error"]
    assert world.live_keys(world.a) == [a_file]
    stats = world.standin.control.stats("ACME_ACCOUNT")
    assert stats["statements_by_kind"].get("refresh_pipe", 0) == 0
    assert stats["rest_requests_by_kind"] == {}
    assert world.tick(world.b)["files_loaded"] == 0  # the other organisation goes on (its prefix is empty)


def test_network_failures_are_retried_and_lose_nothing(world: World) -> None:
    a_file = world.write(world.a, "a")
    world.standin.control.inject_faults("ACME_ACCOUNT", fail_requests=2)
    first = world.tick(world.a)
    assert world.standin.control.inject_faults("ACME_ACCOUNT")["fail_requests"] == 0  # both faults were met
    assert first["status"] == "ok"  # FLOE_RETRY_ATTEMPTS (3) outlast two failed requests: a retry happened
    assert world.live_keys(world.a) == []
    assert len(world.rows(world.a)) == EVENTS_PER_FILE
    assert a_file.rsplit("/", 1)[-1] in world.rows(world.a)[0][0]


def test_a_core_outage_does_not_lose_the_load(world: World) -> None:
    world.write(world.a, "a")
    world.core.fail_next(10)
    report = world.tick(world.a)
    assert (report["status"], report["files_loaded"], report["metrics_posted"]) == ("ok", 1, False)
    assert world.live_keys(world.a) == []
    assert len(world.rows(world.a)) == EVENTS_PER_FILE


@pytest.mark.readings
def test_files_still_loading_when_the_tick_stops_following_are_settled_by_the_next_tick(world: World) -> None:
    world.standin.control.configure("ACME_ACCOUNT", load_delay_seconds=None)  # loads only when drained
    world.write(world.a, "a")
    first = world.tick(world.a)
    assert (first["status"], first["files_in_flight"], first["files_loaded"]) == ("partial", 1, 0)
    world.standin.control.drain("ACME_ACCOUNT")
    second = world.tick(world.a)
    assert (second["status"], second["files_loaded"], second["events_delivered"]) == ("ok", 1, EVENTS_PER_FILE)
    assert len(world.rows(world.a)) == EVENTS_PER_FILE


@pytest.mark.readings
def test_a_replayed_batch_loads_once_however_often_it_is_replayed(world: World) -> None:
    key = world.write(world.a, "flaky")
    world.standin.control.inject_faults("ACME_ACCOUNT", fail_files={key: "Error parsing JSON: simulated bad record"})
    failed = world.tick(world.a)
    assert failed["files_dead_lettered"] == 1
    world.standin.control.inject_faults("ACME_ACCOUNT", fail_files={})
    moved = replay(world.a.connection_id, run_id=failed["run_id"], settings=world.settings)
    assert len(moved) == 1
    assert replay(world.a.connection_id, settings=world.settings) == []
    loaded = world.tick(world.a)
    assert (loaded["files_loaded"], loaded["events_delivered"]) == (1, EVENTS_PER_FILE)
    assert len(world.rows(world.a)) == EVENTS_PER_FILE
    assert keys(world.settings.bucket, "dead-letter/acme/replays/") != []


def test_every_aws_call_of_a_tick_is_one_the_lambda_role_allows(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records the real calls of ticks that load, dead-letter and re-stage, and checks each against the
    grants Terraform's policy is derived from (lambda/loader/aws_actions.py). Without FLOE_AWS_ACCOUNT_ID,
    so the busy path's STS GetCallerIdentity is among them."""
    monkeypatch.delenv("FLOE_AWS_ACCOUNT_ID")
    calls: list[tuple[str, str, dict[str, Any]]] = []

    tick_thread = threading.current_thread()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        # The stand-in shares this process and boto3's default session; its calls run on its own threads.
        if threading.current_thread() is tick_thread:
            calls.append((model.service_model.service_name, model.name, dict(params)))

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-parameter-build", record)
    try:
        world.write(world.a, "good")
        write_corrupt_file(boto3.client("s3"), world.settings.bucket, "live/acme/", "bad")
        assert world.tick(world.a)["files_dead_lettered"] == 1
        monkeypatch.setattr("loader.plan.RESTAGE_AFTER", timedelta(0))  # every file looks old: re-stage path
        world.write(world.a, "old")
        assert world.tick(world.a)["files_restaged"] == (1 if world.mode == "refresh" else 0)  # REST: no window
    finally:
        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build", record)
    operations = {(service, operation) for service, operation, _ in calls}
    assert {("s3", "ListObjectsV2"), ("s3", "CopyObject"), ("s3", "DeleteObjects"), ("s3", "PutObject")} <= operations
    assert ("secretsmanager", "GetSecretValue") in operations
    assert ("sts", "GetCallerIdentity") in operations
    refused = [(s, o, p) for s, o, p in calls if not aws_actions.is_allowed(s, o, p, world.settings)]
    assert refused == []


def test_a_new_template_recreates_the_pipe_only_after_the_old_one_settled(
    world: World, request: pytest.FixtureRequest
) -> None:
    world.standin.control.configure("ACME_ACCOUNT", load_delay_seconds=None)  # loads only when drained
    world.write(world.a, "before")
    assert world.tick(world.a)["files_in_flight"] == 1
    old_version = world.a.template_version
    request.getfixturevalue("edited_pipe_template")  # a release changes the pipe's template

    queued = world.tick(world.a)  # the old pipe still has the file queued
    assert any("waiting until every file it loaded is settled" in w for w in queued["warnings"])
    world.standin.control.drain("ACME_ACCOUNT")
    settled = world.tick(world.a)  # loaded by the old pipe, not yet deleted: settle first
    assert settled["files_loaded"] == 1
    assert any("waiting" in w for w in settled["warnings"])

    time.sleep(1.0)  # S3's Last-Modified has one-second precision: "after" must not look as old as the load
    world.write(world.a, "after")
    recreated = world.tick(world.a)
    assert recreated["warnings"] == []
    world.standin.control.drain("ACME_ACCOUNT")
    assert world.tick(world.a)["files_loaded"] == 1
    with open_store(world.settings.connections_dsn) as store:
        assert store.get(world.a.connection_id).template_version != old_version
    names = sorted(row[0].rsplit("/", 1)[-1] for row in world.rows(world.a))
    assert names == ["after.json.gz"] * EVENTS_PER_FILE + ["before.json.gz"] * EVENTS_PER_FILE
    creates = [s for s in world.standin.control.statements("ACME_ACCOUNT") if s["kind"] == "create_pipe"]
    assert len(creates) == 2  # provisioned once, re-created once


def test_a_row_edited_to_other_names_loads_nothing_until_provisioned(world: World) -> None:
    """The class of bug: the tick moving a connection on its own. New database, schema or table names
    are a provisioning change; until `floe provision` makes it, the tick logs in nowhere, creates
    nothing and touches no file."""
    with open_store(world.settings.connections_dsn) as store:
        moved = (replace(world.a, database="ELSEWHERE"), replace(world.a, schema="OTHER"), replace(world.a, table="T2"))
        for number, edited in enumerate(moved):
            store.save(edited)
            written = world.write(world.a, f"waits-{number}")
            logins = world.standin.control.stats("ACME_ACCOUNT")["logins"]
            report = world.tick(world.a)
            assert report["status"] == "error"
            assert f"floe provision --connection-id {world.a.connection_id}" in report["error"]
            assert world.standin.control.stats("ACME_ACCOUNT")["logins"] == logins
            assert written in world.live_keys(world.a)
        store.save(world.a)  # back at the provisioned names: loading resumes
    report = world.tick(world.a)
    assert (report["status"], report["files_loaded"]) == ("ok", 3)


def test_a_slow_snowflake_with_little_time_left_stops_cleanly_within_the_deadline(world: World) -> None:
    """The class of bug: a Snowflake step started without the time to finish it (Lambda kills the run:
    no report, no metrics, the lease held). Every step, the login included, must fit the time left."""
    world.standin.control.configure("ACME_ACCOUNT", statement_latency_seconds=2.0, login_latency_seconds=2.0)
    written = [world.write(world.a, f"slow-{i}") for i in range(2)]
    started = time.monotonic()
    # Login, SHOW PIPES and REFRESH take 6 s; the first COPY_HISTORY poll would end past the deadline.
    report = world.tick(world.a, budget=7.0)
    elapsed = time.monotonic() - started
    assert elapsed < 7.0 - 0.5, elapsed  # FLOE_TIME_MARGIN_SECONDS is 1 here
    if world.mode == "refresh":  # REST mode's steady path has no SQL step after the SHOW: it may finish
        assert report["status"] == "partial"
        assert "time budget" in report["reason"]
    assert report["metrics_posted"] is True
    assert report["run_id"] in {run["run_id"] for run in world.core.runs()}
    assert report["files_loaded"] + report["files_in_flight"] == len(written)
    world.standin.control.configure("ACME_ACCOUNT", statement_latency_seconds=0.0, login_latency_seconds=0.0)
    assert world.tick(world.a)["status"] in ("ok", "idle")  # the lease was released; the rest loads
    assert world.live_keys(world.a) == []
    assert len(world.rows(world.a)) == len(written) * EVENTS_PER_FILE


PIPE = "ANALYTICS.FLAGSMITH.FLOE_EVENTS_PIPE"


@pytest.mark.readings
@pytest.mark.parametrize(
    ("state", "advice"),
    [
        ("STALLED_COMPILATION_ERROR", "floe provision --connection-id"),  # REFRESH queues, nothing loads
        ("STOPPED_STAGE_DROPPED", "floe provision --connection-id"),  # REFRESH itself is refused
    ],
)
def test_a_stalled_or_stopped_pipe_is_the_connection_s_error_and_its_files_stay_live(
    world: World, state: str, advice: str
) -> None:
    world.standin.control.force_pipe_state("ACME_ACCOUNT", PIPE, state, "Table 'EVENTS' does not exist")
    a_file = world.write(world.a, "a")
    report = world.tick(world.a)
    assert (report["status"], report["pipe_state"], report["files_dead_lettered"]) == ("error", state, 0)
    assert f"pipe FLOE_EVENTS_PIPE is {state}: 1 files wait in the live prefix" in report["error"]
    assert advice in report["error"]
    assert "(pipe error: Table 'EVENTS' does not exist)" in report["error"]
    assert world.live_keys(world.a) == [a_file]
    world.standin.control.force_pipe_state("ACME_ACCOUNT", PIPE, None)
    assert world.tick(world.a)["files_loaded"] == 1
    assert len(world.rows(world.a)) == EVENTS_PER_FILE


@pytest.mark.parametrize("world", ["refresh"], indirect=True)  # COPY_HISTORY's statuses are REFRESH mode's follow-up
def test_a_file_a_bulk_copy_skipped_is_dead_lettered_as_load_skipped(world: World) -> None:
    """`Load skipped` is what COPY_HISTORY shows for a bulk COPY under ON_ERROR = SKIP_FILE (the stand-in
    emits it only there): the loader treats it as any failed load of the file, with its status kept."""
    bad = write_corrupt_file(boto3.client("s3"), world.settings.bucket, "live/acme/", "bad")
    world.admin_sql(
        world.a,
        "COPY INTO ANALYTICS.FLAGSMITH.FLAG_EVALUATIONS (EVENT) FROM (SELECT $1:event::STRING "
        "FROM @ANALYTICS.FLAGSMITH.FLOE_EVENTS_STAGE) ON_ERROR = SKIP_FILE",
    )
    report = world.tick(world.a)
    assert (report["files_dead_lettered"], report["files_loaded"]) == (1, 0)
    [entry] = list_dead_letters(world.a.connection_id, world.settings)
    assert (entry["original_key"], entry["status"]) == (bad, "Load skipped")
    assert world.live_keys(world.a) == []


def retry_name(key: str, attempt: int) -> str:
    return key.removesuffix(".json.gz") + f".retry-{attempt}.json.gz"


@pytest.mark.readings
def test_a_load_failing_other_than_by_its_data_is_retried_under_new_names_then_dead_lettered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOE_LOAD_RETRY_BACKOFF_SECONDS", "0")
    key, good = world.write(world.a, "flaky"), world.write(world.a, "good")
    attempts = [key, retry_name(key, 2), retry_name(key, 3)]
    error = "Internal error: simulated"
    world.standin.control.inject_faults("ACME_ACCOUNT", fail_files=dict.fromkeys(attempts, error))
    first = world.tick(world.a)  # attempt 1 fails: the file moves to its second name
    assert (first["files_loaded"], first["files_dead_lettered"], first["files_in_flight"]) == (1, 0, 1)
    assert world.live_keys(world.a) == [attempts[1]]
    assert world.tick(world.a)["files_dead_lettered"] == 0  # attempt 2 fails: the third name
    assert world.live_keys(world.a) == [attempts[2]]
    last = world.tick(world.a)  # attempt 3 of FLOE_LOAD_RETRIES=3 fails: dead-lettered with the reason
    assert (last["files_dead_lettered"], last["files_in_flight"]) == (1, 0)
    [entry] = list_dead_letters(world.a.connection_id, world.settings)
    assert entry["original_key"] == attempts[2]
    assert "gave up after 3 attempts" in entry["reason"]
    assert error in entry["first_error"]
    assert world.live_keys(world.a) == []
    assert {row[0].rsplit("/", 1)[-1] for row in world.rows(world.a)} == {good.rsplit("/", 1)[-1]}


@pytest.mark.readings
def test_a_retried_file_loads_once_when_the_cause_passes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOE_LOAD_RETRY_BACKOFF_SECONDS", "0")
    key = world.write(world.a, "flaky")
    world.standin.control.inject_faults("ACME_ACCOUNT", fail_files={key: "Remote file was not found"})
    assert world.tick(world.a)["files_in_flight"] == 1
    report = world.tick(world.a)
    assert (report["files_loaded"], report["files_dead_lettered"]) == (1, 0)
    assert world.live_keys(world.a) == []
    assert {row[0].rsplit("/", 1)[-1] for row in world.rows(world.a)} == {"flaky.retry-2.json.gz"}
    assert len(world.rows(world.a)) == EVENTS_PER_FILE


def test_a_retry_waits_for_its_backoff(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOE_LOAD_RETRY_BACKOFF_SECONDS", "3600")
    key = world.write(world.a, "flaky")
    world.standin.control.inject_faults("ACME_ACCOUNT", fail_files={key: "Internal error: simulated"})
    assert world.tick(world.a)["files_in_flight"] == 1
    again = world.tick(world.a)
    assert (again["files_in_flight"], again["files_dead_lettered"]) == (1, 0)
    assert world.live_keys(world.a) == [key]  # not moved before the backoff ran out


@pytest.mark.readings
def test_every_file_failing_the_same_way_is_one_connection_error_not_many_dead_letters(world: World) -> None:
    written = [world.write(world.a, f"f-{i}") for i in range(4)]
    error = "Number of columns in file (14) does not match that of the corresponding table (16)"
    world.standin.control.inject_faults("ACME_ACCOUNT", fail_files=dict.fromkeys(written, error))
    report = world.tick(world.a)
    assert (report["status"], report["files_dead_lettered"]) == ("error", 0)
    assert "all 4 files that failed to load fail the same way" in report["error"]
    assert list_dead_letters(world.a.connection_id, world.settings) == []
    assert len(world.live_keys(world.a)) == len(written)  # live, under their names or their retries'


def test_a_key_with_a_control_character_does_not_block_the_connection(world: World) -> None:
    """The layout accepts any name; S3's DeleteObjects XML body cannot carry a control character (S3
    refuses the whole batch), so such a key is deleted on its own and its neighbours settle as usual."""
    bell, good = world.write(world.a, "bell\x07ring"), world.write(world.a, "good")
    report = world.tick(world.a)
    assert (report["status"], report["files_loaded"], report["error"]) == ("ok", 2, None)
    assert world.live_keys(world.a) == []
    names = {row[0].rsplit("/", 1)[-1] for row in world.rows(world.a)}
    assert names == {bell.rsplit("/", 1)[-1], good.rsplit("/", 1)[-1]}


@pytest.mark.parametrize("world", ["refresh"], indirect=True)  # REFRESH resending a failed file is REFRESH mode's
def test_a_failure_recorded_between_ticks_is_settled_before_refresh_can_resend_it(world: World) -> None:
    """Reading failed-resent: REFRESH resends a failed file. Its record is read, and the file
    dead-lettered and deleted, before the next REFRESH, so it is dead-lettered once and never resent."""
    world.standin.control.set_reading("ACME_ACCOUNT", "failed-resent")
    world.standin.control.configure("ACME_ACCOUNT", load_delay_seconds=None)  # loads only when drained
    key = world.write(world.a, "bad")
    world.standin.control.inject_faults("ACME_ACCOUNT", fail_files={key: "Error parsing JSON: simulated"})
    assert world.tick(world.a)["files_in_flight"] == 1
    world.standin.control.drain("ACME_ACCOUNT")  # fails after the tick ended
    world.standin.control.configure("ACME_ACCOUNT", load_delay_seconds=0.05)
    report = world.tick(world.a)
    assert (report["files_dead_lettered"], report["files_loaded"]) == (1, 0)
    world.standin.control.drain("ACME_ACCOUNT")
    assert world.tick(world.a)["status"] == "idle"
    assert world.rows(world.a) == []  # in the dead-letter prefix only: once
    assert [e["original_key"] for e in list_dead_letters(world.a.connection_id, world.settings)] == [key]
    refreshes = [s for s in world.standin.control.statements("ACME_ACCOUNT") if s["kind"] == "refresh_pipe"]
    assert len(refreshes) == 1  # the second tick settled the file and had nothing left to send

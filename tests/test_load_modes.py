"""The two load modes over the local stack: REST's steady path uses no warehouse and survives the REST
API's faults; REFRESH settles at most once per FLOE_SETTLE_INTERVAL and still loads every file once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.events import write_event_file
from devstack.scenario import onboard, run_as_admin_query
from devstack.snowflake.server import StandIn
from kernel import config
from kernel.connections import Connection, open_store
from loader.handler import run
from loader.snowpipe_rest import RestPipe
from loader.tick import Deadline

ACCOUNT = "ACME_ACCOUNT"
EVENTS = 10


@dataclass
class Org:
    standin: StandIn
    settings: config.Settings
    connection: Connection

    def tick(self) -> dict[str, Any]:
        return run({"connection_id": self.connection.connection_id}, Deadline.after(20.0))

    def write(self, name: str) -> str:
        prefix = self.settings.live_prefix_for(self.connection.org_id)
        return write_event_file(boto3.client("s3"), self.settings.bucket, prefix, name, events=EVENTS, seed=1)

    def live_keys(self) -> list[str]:
        listing = boto3.client("s3").list_objects_v2(Bucket=self.settings.bucket, Prefix="live/acme/")
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def rows(self) -> int:
        sql = "SELECT COUNT(*) FROM ANALYTICS.FLAGSMITH.FLAG_EVALUATIONS"
        return int(run_as_admin_query(self.standin, ACCOUNT, sql)[0][0])

    def stats(self) -> dict[str, Any]:
        return self.standin.control.stats(ACCOUNT)

    def settled_long_ago(self) -> None:
        """As if the last settle were an interval ago (the row is the tick's only state)."""
        with open_store(self.settings.connections_dsn) as store:
            row = store.get(self.connection.connection_id)
            store.save(replace(row, last_settled_at=datetime.now(UTC) - timedelta(hours=1)))


def make_org(mode: str, standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settle: str) -> Org:
    environment = {
        "FLOE_LOAD_MODE": mode,
        "FLOE_SETTLE_INTERVAL": settle,
        "FLOE_CONNECTIONS_DSN": f"sqlite:///{tmp_path}/connections.db",
        "FLOE_SNOWFLAKE_HOST": standin.host,
        "FLOE_SNOWFLAKE_PORT": str(standin.port),
        "FLOE_SNOWFLAKE_PROTOCOL": "http",
        "FLOE_AWS_ACCOUNT_ID": "123456789012",
        "FLOE_POLL_FIRST_SECONDS": "0.2",
        "FLOE_POLL_MAX_SECONDS": "0.5",
        "FLOE_TIME_MARGIN_SECONDS": "1",
        "FLOE_FOLLOW_SECONDS": "3",  # files left in flight are the follow window's, not a race with the budget
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = config.load()
    with open_store(settings.connections_dsn) as store:
        store.migrate()
        connection = onboard("acme", ACCOUNT, standin=standin, settings=settings, store=store)
    standin.control.configure(ACCOUNT, load_delay_seconds=0.05)
    return Org(standin, settings, connection)


@pytest.fixture
def rest(standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Org:
    return make_org("rest", standin, tmp_path, monkeypatch, settle="0")


@pytest.fixture
def refresh(standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Org:
    return make_org("refresh", standin, tmp_path, monkeypatch, settle="900")


def delta(before: dict[str, Any], after: dict[str, Any], key: str) -> Any:
    if isinstance(after[key], dict):
        return {k: v - before[key].get(k, 0) for k, v in after[key].items() if v != before[key].get(k, 0)}
    return after[key] - before[key]


# -- REST ---------------------------------------------------------------------------------------------


def test_a_steady_rest_tick_runs_no_warehouse_statement(rest: Org) -> None:
    for i in range(3):
        rest.write(f"f-{i}")
    before = rest.stats()
    report = rest.tick()
    after = rest.stats()
    assert (report["status"], report["files_loaded"], report["events_delivered"]) == ("ok", 3, 3 * EVENTS)
    assert delta(before, after, "warehouse_statements") == 0
    assert delta(before, after, "warehouse_resumes") == 0
    requests = delta(before, after, "rest_requests_by_kind")
    assert requests["insertFiles"] == 1
    assert requests["insertReport"] >= 1
    assert "loadHistoryScan" not in requests
    assert rest.live_keys() == []
    assert rest.rows() == 3 * EVENTS


@pytest.mark.parametrize("status", [429, 503])
def test_rest_throttling_and_outages_are_retried_with_backoff(rest: Org, status: int) -> None:
    rest.write("f")
    rest.standin.control.inject_faults(ACCOUNT, rest_fail_requests=2, rest_fail_status=status)
    report = rest.tick()
    assert (report["status"], report["files_loaded"]) == ("ok", 1)
    assert rest.stats()["rest_requests_by_kind"]["insertFiles"] == 3  # two refused, the third accepted
    assert rest.rows() == EVENTS


def test_a_rest_request_the_pipe_refuses_fails_clearly_and_moves_nothing(rest: Org) -> None:
    run_as_admin_query(rest.standin, ACCOUNT, "ALTER USER FLOE_LOADER SET DEFAULT_ROLE = PUBLIC")
    key = rest.write("f")
    report = rest.tick()
    assert report["status"] == "error"
    assert rest.connection.connection_id in report["error"]
    assert "HTTP 404" in report["error"]
    assert "default role" in report["error"]
    assert rest.live_keys() == [key]
    assert rest.rows() == 0


def test_a_file_insertfiles_refuses_stays_live_and_is_reported(rest: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    short, long = rest.write("f"), rest.write("a-much-longer-file-name-than-the-other")
    monkeypatch.setattr("loader.snowpipe_rest.INSERT_MAX_PATH_BYTES", len(short) - len("live/acme/"))
    report = rest.tick()
    assert (report["status"], report["files_loaded"], report["files_in_flight"]) == ("partial", 1, 1)
    assert any("insertFiles refused 1 files" in w and long in w for w in report["warnings"])
    assert rest.live_keys() == [long]


def test_a_late_tick_catches_up_with_one_load_history_scan(rest: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    rest.standin.control.configure(ACCOUNT, load_delay_seconds=None)  # loads only when drained
    rest.write("f")
    first = rest.tick()
    assert (first["files_sent"], first["files_in_flight"]) == (1, 1)
    rest.standin.control.drain(ACCOUNT)
    rest.standin.control.advance_clock(11 * 60)  # insertReport has forgotten the submission
    monkeypatch.setattr(RestPipe, "report_window", timedelta(0))  # the file is "older" than the report
    late = rest.tick()
    assert (late["status"], late["files_loaded"]) == ("ok", 1)
    assert rest.stats()["rest_requests_by_kind"]["loadHistoryScan"] == 1
    assert rest.rows() == EVENTS


# -- REFRESH on a warehouse budget --------------------------------------------------------------------


def test_refresh_settles_at_most_once_per_interval(refresh: Org) -> None:
    refresh.write("first")
    assert refresh.tick()["files_loaded"] == 1  # never settled: settles now
    refresh.write("second")
    before = refresh.stats()
    queued = refresh.tick()
    after = refresh.stats()
    assert (queued["status"], queued["files_sent"], queued["files_in_flight"], queued["files_loaded"]) == (
        "partial",
        1,
        1,
        0,
    )
    assert delta(before, after, "warehouse_statements") == 0  # REFRESH only
    refresh.settled_long_ago()
    settled = refresh.tick()
    assert (settled["files_loaded"], settled["events_delivered"]) == (1, EVENTS)
    assert refresh.live_keys() == []
    assert refresh.rows() == 2 * EVENTS


def _reading(name: str) -> Callable[[StandIn], None]:
    def apply(standin: StandIn) -> None:
        setter = getattr(standin.control, "set_reading", None)
        if setter is None:
            pytest.skip(f"this stand-in has no switchable readings; {name!r} is tested once it has")
        setter(ACCOUNT, name)

    return apply


@pytest.mark.parametrize("reading", ["today", "requeue"])
def test_refresh_on_every_tick_loads_each_file_once(refresh: Org, reading: str) -> None:
    """REFRESH re-sends a queued, unloaded file every tick between settles. Whether Snowpipe queues it
    again is undocumented: under `today` it does not, under `requeue` it does and the load metadata
    skips the second entry. Either way the file's rows arrive once and the file is deleted once."""
    if reading != "today":
        _reading(reading)(refresh.standin)
    refresh.standin.control.configure(ACCOUNT, load_delay_seconds=None)  # loads only when drained
    refresh.write("f")
    first = refresh.tick()  # settles (never settled) but the file is still queued
    assert first["files_in_flight"] == 1
    for _ in range(2):
        assert refresh.tick()["files_in_flight"] == 1  # REFRESH again, no settle
    refresh.standin.control.drain(ACCOUNT)
    refresh.settled_long_ago()
    settled = refresh.tick()
    assert (settled["files_loaded"], settled["files_dead_lettered"]) == (1, 0)
    assert refresh.rows() == EVENTS
    refresh.standin.control.drain(ACCOUNT)
    assert refresh.rows() == EVENTS

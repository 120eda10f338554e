"""Each named reading (devstack/snowflake/readings.py) behaves as its name says; `today` is the baseline."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.snowflake.readings import PRESETS, TODAY
from devstack.snowflake.server import StandIn

from .helpers import BUCKET, HISTORY, gz_lines, put_event, run, setup_acme

GOOD = gz_lines({"id": 1, "flag": "a", "ts": 0})
NAMES = "SELECT FILE_NAME, STAGE_LOCATION, STATUS FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => 'EVENTS', \
START_TIME => DATEADD(hour, -1, CURRENT_TIMESTAMP())))"


def _acme(server: StandIn, reading: str) -> Any:
    conn = setup_acme(server)
    server.control.set_reading("acme", reading)
    return conn


def _pending(conn: Any) -> int:
    return int(json.loads(run(conn, "SELECT SYSTEM$PIPE_STATUS('P')")[0][0])["pendingFileCount"])


def test_presets_flip_one_axis_each_and_harshest_flips_all() -> None:
    axes = [name for name in TODAY.__dataclass_fields__ if name != "name"]
    for name, reading in PRESETS.items():
        flipped = [axis for axis in axes if getattr(reading, axis) != getattr(TODAY, axis)]
        expected = {"today": 0, "harshest": len(axes)}.get(name, 1)
        assert len(flipped) == expected, (name, flipped)


@pytest.mark.parametrize(("reading", "shown"), [("today", [("a.json.gz", "Load in progress")]), ("queued-absent", [])])
def test_queued_file_in_copy_history(standin: StandIn, reading: str, shown: list[tuple[str, str]]) -> None:
    conn = _acme(standin, reading)
    put_event("a.json.gz", GOOD)
    run(conn, "ALTER PIPE P REFRESH")
    assert [(r[0], r[1]) for r in run(conn, HISTORY)] == shown


@pytest.mark.parametrize(("reading", "resent"), [("today", []), ("failed-resent", [["bad.json.gz", "SENT"]])])
def test_refresh_and_a_failed_file(standin: StandIn, reading: str, resent: list[list[str]]) -> None:
    conn = _acme(standin, reading)
    put_event("bad.json.gz", b"not gzip")
    run(conn, "ALTER PIPE P REFRESH")
    assert standin.control.drain("acme")["failed"] == 1
    assert [list(r) for r in run(conn, "ALTER PIPE P REFRESH")] == resent


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        ("today", ("events/a.json.gz", f"s3://{BUCKET}/live/acme/")),
        ("bucket-paths", ("live/acme/events/a.json.gz", f"s3://{BUCKET}/")),
    ],
)
def test_copy_history_paths(standin: StandIn, reading: str, expected: tuple[str, str]) -> None:
    conn = _acme(standin, reading)
    put_event("events/a.json.gz", GOOD)
    run(conn, "ALTER PIPE P REFRESH")
    standin.control.drain("acme")
    assert [(r[0], r[1]) for r in run(conn, NAMES)] == [expected]


@pytest.mark.parametrize(
    ("reading", "name"), [("today", "ev ts/a+b%é.json.gz"), ("url-encoded", "ev%20ts/a%2Bb%25%C3%A9.json.gz")]
)
def test_special_characters_in_names(standin: StandIn, reading: str, name: str) -> None:
    conn = _acme(standin, reading)
    put_event("ev ts/a+b%é.json.gz", GOOD)
    assert [r[0] for r in run(conn, "ALTER PIPE P REFRESH")] == [name]
    assert [r[0] for r in run(conn, "LIST @S")] == [f"s3://{BUCKET}/live/acme/{name}"]
    standin.control.drain("acme")
    assert [r[0] for r in run(conn, NAMES)] == [name]


@pytest.mark.parametrize(("reading", "rows"), [("today", 1), ("refresh-silent", 0)])
def test_refresh_rows(standin: StandIn, reading: str, rows: int) -> None:
    conn = _acme(standin, reading)
    put_event("a.json.gz", GOOD)
    assert len(run(conn, "ALTER PIPE P REFRESH")) == rows
    assert _pending(conn) == 1


@pytest.mark.parametrize(("reading", "second", "pending"), [("today", 0, 1), ("requeue", 1, 2)])
def test_file_refreshed_while_queued(standin: StandIn, reading: str, second: int, pending: int) -> None:
    conn = _acme(standin, reading)
    put_event("a.json.gz", GOOD)
    run(conn, "ALTER PIPE P REFRESH")
    assert len(run(conn, "ALTER PIPE P REFRESH")) == second
    assert _pending(conn) == pending
    assert standin.control.drain("acme")["loaded"] == 1  # the load metadata skips the duplicate
    assert run(conn, "SELECT COUNT(*) FROM EVENTS") == [(1,)]
    assert [r[1] for r in run(conn, HISTORY)] == ["Loaded"]


def test_default_reading_applies_to_new_accounts_and_survives_reset(standin: StandIn) -> None:
    previous = standin.state.default_reading.name
    try:
        standin.control.set_default_reading("harshest")
        standin.control.reset()
        standin.control.create_account("acme")
        assert standin.state.account("acme") is not None
        assert standin.state.accounts["ACME"].reading == PRESETS["harshest"]
    finally:
        standin.control.set_default_reading(previous)

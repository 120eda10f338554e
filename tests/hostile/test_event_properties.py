"""The invocation event under arbitrary JSON-like input (hypothesis).

Pure: `LoaderEvent.parse` accepts exactly `{"connection_id": <id>[, "tick_id": <str>]}` and refuses
everything else with `InvalidEvent` and a short message that says what is expected.
Over the local stack: `loader.handler.run` refuses the same input with an error report and touches
nothing: no AWS call (a botocore `before-call` recorder on boto3's default session) and no Snowflake
login or statement (the stand-in's `stats`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from devstack.snowflake.server import StandIn
from kernel.connections import open_store
from kernel.identifiers import CONNECTION_ID_PATTERN
from loader.event import InvalidEvent, LoaderEvent
from loader.handler import run
from loader.tick import Deadline

CONNECTION_ID = CONNECTION_ID_PATTERN  # the rows' rule: an event names a connection a row can hold
MESSAGE_MAX = 1000  # a refusal is a sentence or two, however large the event: it lands in a log line

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=12,
)
hostile_ids = st.sampled_from(
    [
        "",
        " c-1",
        "c-1 ",
        "c-1\n",
        "c-1\x00",
        "../c-1",
        "c/1",
        "c%2F1",
        "c-1;DROP TABLE x",
        "c-1'--",
        'c-1"',
        "c-1/*",
        "\u0421-1",  # Cyrillic capital Es
        "c\u20101",  # U+2010 hyphen
        "\uff43-1",  # fullwidth c
        "c-1\u200b",
        "-c1",
        "_c1",
        "x" * 129,
    ]
)
connection_ids = st.from_regex(CONNECTION_ID, fullmatch=True)
# Events shaped like the real one, with one thing wrong (or nothing wrong).
near_events = st.fixed_dictionaries(
    {"connection_id": hostile_ids | connection_ids | json_like},
    optional={"tick_id": json_like | st.text(max_size=200), "org_id": json_like, "connection": json_like},
)
events = json_like | near_events


def _valid(event: Any) -> bool:
    if not isinstance(event, dict) or not set(event) <= {"connection_id", "tick_id"}:
        return False
    connection_id, tick_id = event.get("connection_id"), event.get("tick_id")
    if not isinstance(connection_id, str) or not CONNECTION_ID.fullmatch(connection_id):
        return False
    return tick_id is None or (isinstance(tick_id, str) and len(tick_id) <= 128)


@settings(max_examples=1500, deadline=None)
@given(events)
def test_parse_accepts_exactly_the_documented_event(event: Any) -> None:
    if _valid(event):
        parsed = LoaderEvent.parse(event)
        assert parsed.connection_id == event["connection_id"]
        assert parsed.tick_id == event.get("tick_id")
        return
    with pytest.raises(InvalidEvent) as refused:
        LoaderEvent.parse(event)
    message = str(refused.value)
    assert any(word in message for word in ("connection_id", "tick_id", "JSON object", "unexpected field"))
    assert "\n" not in message


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=40, max_size=300), min_size=1, max_size=200, unique=True), json_like)
def test_a_refusal_stays_short_however_large_the_event(names: list[str], value: Any) -> None:
    """The refusal becomes the run report's `error` and a log line: it must not grow with the event
    (an event of 200 unknown fields is 200 x 40 characters of refusal today)."""
    event = {"connection_id": "c-1", **{f"x{name}": value for name in names}}
    with pytest.raises(InvalidEvent) as refused:
        LoaderEvent.parse(event)
    assert len(str(refused.value)) <= MESSAGE_MAX, len(str(refused.value))


# -- handler.run over the local stack --------------------------------------------------------------


@pytest.fixture
def calls(standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_operations: list[str]) -> list[str]:
    """The loader configured for the local stack, no connection rows; yields the AWS operations sent."""
    monkeypatch.setenv("FLOE_CONNECTIONS_DSN", f"sqlite:///{tmp_path}/connections.db")
    monkeypatch.setenv("FLOE_SNOWFLAKE_HOST", standin.host)
    monkeypatch.setenv("FLOE_SNOWFLAKE_PORT", str(standin.port))
    monkeypatch.setenv("FLOE_SNOWFLAKE_PROTOCOL", "http")
    monkeypatch.setenv("FLOE_AWS_ACCOUNT_ID", "123456789012")
    boto3.client("s3").create_bucket(Bucket="floe-events")
    standin.control.create_account("ACME")
    with open_store(f"sqlite:///{tmp_path}/connections.db") as store:
        store.migrate()
    aws_operations.clear()  # the set-up's own calls; the test reads only what the loader sends
    return aws_operations


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=events)
def test_the_handler_refuses_a_hostile_event_and_touches_nothing(
    calls: list[str], standin: StandIn, event: Any
) -> None:
    assume(not _valid(event))
    calls.clear()
    report = run(event, Deadline.after(10))
    assert report["status"] == "error"
    assert report["error"]
    assert len(report["error"]) <= MESSAGE_MAX
    assert report["files_listed"] == 0
    assert calls == []
    stats = standin.control.stats("ACME")
    assert (stats["logins"], stats["statements"]) == (0, 0)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(connection_id=connection_ids)
def test_a_well_formed_unknown_connection_is_refused_and_touches_nothing(
    calls: list[str], standin: StandIn, connection_id: str
) -> None:
    calls.clear()
    report = run({"connection_id": connection_id}, Deadline.after(10))
    assert report["status"] == "error"
    assert f"unknown connection {connection_id!r}" in report["error"]
    assert calls == []
    assert standin.control.stats("ACME")["logins"] == 0

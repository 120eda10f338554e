"""The invocation event is checked before anything is touched."""

from __future__ import annotations

from typing import Any

import pytest

from loader.event import InvalidEvent, LoaderEvent


def test_a_connection_id_is_all_an_event_needs() -> None:
    assert LoaderEvent.parse({"connection_id": "c-123"}) == LoaderEvent("c-123")
    assert LoaderEvent.parse({"connection_id": "c-1", "tick_id": "t-9"}).tick_id == "t-9"


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (None, "JSON object"),
        ([], "JSON object"),
        ('{"connection_id": "c"}', "JSON object"),
        ({}, "connection_id must be"),
        ({"connection_id": 42}, "connection_id must be"),
        ({"connection_id": ""}, "connection_id must be"),
        ({"connection_id": "../etc"}, "connection_id must be"),
        ({"connection_id": "a;drop"}, "connection_id must be"),
        ({"connection_id": "x" * 129}, "connection_id must be"),
        ({"connection_id": "c", "tick_id": 7}, "tick_id"),
        ({"connection_id": "c", "org_id": "other"}, "unexpected field"),
    ],
)
def test_malformed_events_are_refused_with_a_clear_message(event: Any, says: str) -> None:
    with pytest.raises(InvalidEvent, match=says):
        LoaderEvent.parse(event)

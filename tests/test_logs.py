"""Log lines: the invocation's fields on every line, and errors shown without their text."""

from __future__ import annotations

import json
import logging
import sys

from kernel import logs
from kernel.errors import FloeError

CANARY = "postgresql://floe:FLOE-CANARY@db/floe"


def line_for(error: BaseException) -> dict[str, object]:
    try:
        raise error
    except BaseException:
        record = logging.LogRecord("floe.test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    parsed: dict[str, object] = json.loads(logs.JsonFormatter().format(record))
    return parsed


def test_a_bugs_traceback_keeps_frames_and_types_but_no_text() -> None:
    try:
        raise ValueError(CANARY)
    except ValueError as cause:
        line = line_for(_chained(cause))
    assert line["level"] == "ERROR"
    assert line["error"] == "unexpected KeyError (a bug in Floe: see the log's traceback)"
    traceback = line["traceback"]
    assert isinstance(traceback, list)
    assert traceback[0] == "KeyError"
    assert any(frame.endswith("in line_for") and "test_logs.py:" in frame for frame in traceback)
    assert "caused by:" in traceback
    assert "ValueError" in traceback
    assert "FLOE-CANARY" not in json.dumps(line)


def _chained(cause: BaseException) -> KeyError:
    error = KeyError(CANARY)
    error.__cause__ = cause
    return error


def test_an_expected_error_is_its_own_message_without_a_traceback() -> None:
    line = line_for(FloeError("the connection's secret is missing"))
    assert line["error"] == "FloeError: the connection's secret is missing"  # kernel.errors.describe
    assert "traceback" not in line


def test_bound_fields_are_on_every_line_until_the_next_invocation_starts() -> None:
    logs.start(request_id="r-1", cold_start=True)
    logs.bind(connection_id="c-1", run_id="run-1")
    first = line_for(FloeError("x"))
    logs.start(request_id="r-2", cold_start=False)
    second = line_for(FloeError("x"))
    assert {k: first[k] for k in ("request_id", "cold_start", "connection_id", "run_id")} == {
        "request_id": "r-1",
        "cold_start": True,
        "connection_id": "c-1",
        "run_id": "run-1",
    }
    assert (second["request_id"], second["cold_start"], "connection_id" in second) == ("r-2", False, False)
    logs.start()

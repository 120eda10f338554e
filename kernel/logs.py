"""Structured logs: one JSON object per line, so a log query can filter on any field.

Every line carries the fields bound for the current invocation (`start` / `bind`: request id, function
name, cold start, connection and run), so any line of a crashed or timed-out tick names its connection.

Errors are shown by `kernel.errors.describe`, the rule the run report uses. A traceback is added only for
a bug (not a `FloeError`), and only as frames (file, line, function) and exception type names: the text
of an exception, or the source line of a frame, can hold what failed to parse (a DSN, a key), and a log
line must never.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from kernel.errors import FloeError, describe

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_bound: ContextVar[MappingProxyType[str, Any]] = ContextVar("floe_log_fields", default=_EMPTY)


def start(**fields: Any) -> None:
    """Begin an invocation's lines: replaces whatever a previous invocation of a warm process bound."""
    _bound.set(MappingProxyType(fields))


def bind(**fields: Any) -> None:
    """Add fields to every following line of this invocation."""
    _bound.set(MappingProxyType({**_bound.get(), **fields}))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,  # INFO / WARNING / ERROR, as CloudWatch users filter on
            "logger": record.name,
            "msg": record.getMessage(),
            **_bound.get(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = describe(record.exc_info[1])
            if not isinstance(record.exc_info[1], FloeError):
                line["traceback"] = frames(record.exc_info[1])
        return json.dumps(line, default=str)


def frames(error: BaseException) -> list[str]:
    """Where a bug happened, without any text it carried: `Type` then `file:line in function` per frame."""
    summary = [type(error).__name__]
    summary += [
        f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in traceback.extract_tb(error.__traceback__)
    ]
    cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return summary + (["caused by:", *frames(cause)] if cause is not None else [])


def configure(level: int = logging.INFO) -> None:
    """Send every `floe` log record to stderr as JSON (idempotent, safe on a warm Lambda)."""
    root = logging.getLogger("floe")
    root.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.propagate = False


def configure_for_cli() -> None:
    """`floe load` / `floe demo`: the Lambda's lines on stderr when a program reads it, not a person."""
    if not sys.stderr.isatty():
        configure()


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"floe.{name}")

"""The cases that settle where Snowflake's documentation is silent (docs/snowflake-standin.md, "Readings"),
run against a provisioned pipe: `floe doctor --live` runs them on a scratch connection of a real account.

Each step observes one axis of the stand-in's readings as True, False or None (not settled this run,
e.g. a file loaded before the question could be asked), and the warehouse questions read
QUERY_HISTORY's WAREHOUSE_NAME for this session's statements. Nothing here decides; the observations
are matched to readings by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from kernel.errors import FloeError
from kernel.render import Target, render
from kernel.snowflake_objects import pipe_status

Run = Callable[[str], list[dict[str, Any]]]
Put = Callable[[str, bytes], None]
TERMINAL = {"Loaded", "Load failed", "Partially loaded", "Load skipped"}
# The statements whose warehouse need is undocumented (docs/snowflake-facts.md §10), by the kind
# `render` knows them as, and the first words of their text in QUERY_HISTORY.
WAREHOUSE_STATEMENTS = {
    "REFRESH": ("refresh", "ALTER PIPE"),
    "COPY_HISTORY": ("copy_history", "SELECT\n  FILE_NAME"),
    "SYSTEM$PIPE_STATUS": ("pipe_status", "SELECT SYSTEM$PIPE_STATUS"),
    "LIST": ("list_stage", "LIST"),
    "DESC INTEGRATION": ("describe_integration", "DESC INTEGRATION"),
    "SHOW PIPES": ("show", "SHOW PIPES"),
}


class ProbeError(FloeError):
    """A probe step could not finish (a file never reached a terminal status in time)."""


@dataclass(frozen=True)
class ProbeFiles:
    """Three files under the layout: a plain one, one whose name holds special characters, a corrupt one."""

    plain_key: str
    special_key: str
    corrupt_key: str
    good_body: bytes
    corrupt_body: bytes


@dataclass
class Findings:
    axes: dict[str, bool | None] = field(default_factory=dict)  # Reading field -> observed
    details: dict[str, str] = field(default_factory=dict)  # question -> what was seen
    warehouses: dict[str, str] = field(default_factory=dict)  # statement -> warehouse, or why unknown


def probe(
    run: Run, put: Put, target: Target, files: ProbeFiles, *, timeout: float = 300.0, poll_seconds: float = 2.0
) -> Findings:
    """Run every case in order; the pipe must be RUNNING, its stage empty."""
    found = Findings()
    started = datetime.now(UTC) - timedelta(minutes=5)
    put(files.plain_key, files.good_body)
    first, second = _refresh(run, target), _refresh(run, target)
    _refresh_rows(found, first)
    _requeue(found, run, target, files.plain_key, second)
    _queued(found, run, target, started, files.plain_key)
    wait = (timeout, poll_seconds)
    plain = _wait_terminal(run, target, started, [files.plain_key], wait)[files.plain_key]
    _bucket_paths(found, target, plain)
    put(files.special_key, files.good_body)
    put(files.corrupt_key, files.corrupt_body)
    _refresh(run, target)
    records = _wait_terminal(run, target, started, [files.special_key, files.corrupt_key], wait)
    _url_encoded(found, records[files.special_key])
    _resend_failed(found, run, target, files.corrupt_key, records[files.corrupt_key])
    found.warehouses = _warehouses(run, target)
    return found


def _refresh(run: Run, target: Target) -> list[dict[str, Any]]:
    return run(render("refresh", target, prefix=None, modified_after=None))


def _refresh_rows(found: Findings, rows: list[dict[str, Any]]) -> None:
    found.axes["refresh_rows"] = bool(rows)
    found.details["REFRESH output columns"] = ", ".join(rows[0]) if rows else "no rows"


def _requeue(found: Findings, run: Run, target: Target, key: str, second: list[dict[str, Any]]) -> None:
    """A second REFRESH right after the first: does it queue the still-queued file again?"""
    if second or found.axes["refresh_rows"]:
        again = any(_names(str(row.get("FILE", "")), key) for row in second)
        found.axes["requeue"] = again
        found.details["re-queue of a queued file"] = "sent again" if again else "not sent again"
        return
    pending = pipe_status(run, target).pending_file_count
    found.axes["requeue"] = {1: False, 2: True}.get(pending)
    found.details["re-queue of a queued file"] = f"pendingFileCount {pending} after two REFRESHes"


def _queued(found: Findings, run: Run, target: Target, since: datetime, key: str) -> None:
    record = _records(run, target, since).get(key)
    status = str(record.get("STATUS")) if record else None
    found.axes["queued_in_history"] = {None: False, "Load in progress": True}.get(status)
    found.details["a queued file in COPY_HISTORY"] = status or "absent"


def _bucket_paths(found: Findings, target: Target, record: Mapping[str, Any]) -> None:
    location = str(record.get("STAGE_LOCATION") or "")
    found.axes["bucket_paths"] = location.rstrip("/") == f"s3://{target.bucket}"
    found.details["FILE_NAME / STAGE_LOCATION"] = f"{record.get('FILE_NAME')} / {location}"


def _url_encoded(found: Findings, record: Mapping[str, Any]) -> None:
    name = str(record.get("FILE_NAME"))
    found.axes["url_encoded"] = name != unquote(name)
    found.details["special characters in FILE_NAME"] = name.rsplit("/", 1)[-1]


def _resend_failed(found: Findings, run: Run, target: Target, key: str, record: Mapping[str, Any]) -> None:
    if record.get("STATUS") == "Loaded":
        found.axes["resend_failed"] = None
        found.details["a failed file and the next REFRESH"] = "the corrupt file loaded: not settled"
        return
    rows = _refresh(run, target)
    if found.axes["refresh_rows"]:
        resent = any(_names(str(row.get("FILE", "")), key) for row in rows)
    else:
        resent = pipe_status(run, target).pending_file_count > 0
    found.axes["resend_failed"] = resent
    found.details["a failed file and the next REFRESH"] = "resent" if resent else "not resent"


def _warehouses(run: Run, target: Target) -> dict[str, str]:
    for kind, _ in WAREHOUSE_STATEMENTS.values():
        params: dict[str, object] = {"object": "pipe", "name": target.pipe} if kind == "show" else {}
        if kind == "copy_history":
            params = {"start_time": datetime.now(UTC) - timedelta(minutes=5)}
        if kind == "refresh":
            params = {"prefix": None, "modified_after": None}
        run(render(kind, target, **params))
    try:
        history = run(render("query_history", target))
    except FloeError as error:
        return dict.fromkeys(WAREHOUSE_STATEMENTS, f"not observable: QUERY_HISTORY refused ({error})")
    return {question: _warehouse_of(history, head) for question, (_, head) in WAREHOUSE_STATEMENTS.items()}


def _warehouse_of(history: list[dict[str, Any]], head: str) -> str:
    rows = [row for row in history if str(row.get("QUERY_TEXT", "")).startswith(head)]
    if not rows:
        return "not found in QUERY_HISTORY"
    return str(rows[-1].get("WAREHOUSE_NAME") or "no warehouse")


def _records(run: Run, target: Target, since: datetime) -> dict[str, dict[str, Any]]:
    """The newest COPY_HISTORY row per file, under the S3 key it names both as shown and URL-decoded."""
    found: dict[str, dict[str, Any]] = {}
    for row in sorted(run(render("copy_history", target, start_time=since)), key=_load_time):
        key = _key(row)
        found[key] = found[unquote(key)] = row
    return found


def _load_time(row: Mapping[str, Any]) -> str:
    return str(row.get("LAST_LOAD_TIME") or "")


def _key(row: Mapping[str, Any]) -> str:
    name, location = str(row.get("FILE_NAME", "")), str(row.get("STAGE_LOCATION") or "")
    base = location.split("/", 3)[3] if location.startswith("s3://") and location.count("/") >= 3 else ""
    return f"{base.rstrip('/')}/{name}" if base else name


def _names(shown: str, key: str) -> bool:
    return key.endswith(shown) or key.endswith(unquote(shown))


def _wait_terminal(
    run: Run, target: Target, since: datetime, keys: list[str], wait: tuple[float, float]
) -> dict[str, dict[str, Any]]:
    timeout, poll_seconds = wait
    end = time.monotonic() + timeout
    while True:
        records = _records(run, target, since)
        if all(str(records.get(k, {}).get("STATUS")) in TERMINAL for k in keys):
            return {k: records[k] for k in keys}
        if time.monotonic() > end:
            raise ProbeError(f"no terminal COPY_HISTORY status within {timeout:.0f} s for {len(keys)} probe files")
        time.sleep(poll_seconds)

"""Hostile data files, end to end: every one of them is settled by one tick, next to good files.

A file Snowflake cannot load (ON_ERROR = SKIP_FILE: one bad row fails the whole file) is dead-lettered
with a manifest entry that says why, its bytes copied unchanged; a file Snowflake would load is loaded
and deleted. Neighbours load either way. One tick settles all of them, so the module runs it once and
each case reads its own outcome (docs/hostile-inputs.md lists what each got).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.aws import MotoServer
from devstack.snowflake.server import StandIn

from .stack import Stack, events, gz, ndjson, open_stack


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    loads: int | None  # rows Snowflake loads; None: the file fails and is dead-lettered
    says: str = ""  # a fragment of the dead-letter manifest's first_error (case-insensitive)


def _without(field: str) -> bytes:
    records = events(3, seed=7)
    del records[1][field]
    return gz(ndjson(records))


def _with(field: str, value: Any) -> bytes:
    records = events(3, seed=8)
    records[2][field] = value
    return gz(ndjson(records))


_GOOD = ndjson(events(4, seed=3))
_HUGE = events(2, seed=9)
_HUGE[0]["identifier"] = "x" * (2 * 1024 * 1024)  # one 2 MiB line; Snowflake's VARCHAR holds 16 MiB
_CSV = "environment_key,collected_at,event,timestamp\nenv-demo,1763900000000,$flag_exposure,1763900000000\n"

CASES = [
    Case("good-1", gz(_GOOD), 4),
    Case("good-2", gz(ndjson(events(5, seed=4))), 5),
    Case("malformed-json-line", gz(_GOOD + '{"environment_key": "env-demo", "collected_at": \n' + _GOOD), None, "json"),
    Case("truncated-gzip", gz(_GOOD)[:40], None, "decompression"),
    Case("gzip-of-text", gz("hello, this is not JSON\n"), None, "json"),
    Case("csv", gz(_CSV), None, "json"),
    Case("parquet-magic", b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00PAR1", None, "decompression"),
    # Named .json.gz but not compressed: COMPRESSION = AUTO takes the extension's word for it.
    Case("plain-ndjson-named-gz", _GOOD.encode(), None, "decompression"),
    # STRIP_OUTER_ARRAY = FALSE: the array is one row whose $1:environment_key is NULL.
    Case("json-array", gz(json.dumps(events(3, seed=5)) + "\n"), None, "null"),
    Case("missing-environment-key", _without("environment_key"), None, "null"),
    Case("missing-collected-at", _without("collected_at"), None, "null"),
    Case("missing-event", _without("event"), None, "null"),
    Case("missing-timestamp", _without("timestamp"), None, "null"),
    Case("timestamp-as-iso-string", _with("timestamp", "2026-11-23T10:00:00Z"), None, "2026-11-23t10:00:00z"),
    Case("collected-at-as-object", _with("collected_at", {"ms": 1}), None, ""),
    # Snowflake casts a numeric string in a VARIANT to NUMBER: this one loads.
    Case("timestamp-as-numeric-string", _with("timestamp", "1763900000000"), 3),
    Case("unknown-extra-fields", gz(ndjson([{**e, "surprise": [1, {"a": None}]} for e in events(2, seed=6)])), 2),
    Case("huge-line", gz(ndjson(_HUGE)), 2),
    # No rows at all: nothing to fail on; Snowflake records the file as loaded with 0 rows.
    Case("empty-file", b"", 0),
    Case("empty-gzip", gz(b""), 0),
    Case("blank-lines-only", gz("\n\n  \n"), 0),
]


@dataclass
class Outcome:
    stack: Stack
    keys: dict[str, str]
    originals: dict[str, bytes]
    report: dict[str, Any]
    live: list[str]
    sources: list[str]
    entries: dict[str, dict[str, Any]]
    dead_bodies: dict[str, bytes]


@pytest.fixture(scope="module")
def outcome(
    standin_server: StandIn, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    with open_stack(standin_server, moto_server.reset, tmp_path_factory.mktemp("files")) as stack:
        keys = {case.name: stack.put(stack.key(case.name), case.body) for case in CASES}
        report = stack.tick(budget=60)
        entries = {entry["original_key"]: entry for entry in stack.dead_letters()}
        yield Outcome(
            stack=stack,
            keys=keys,
            originals={case.name: case.body for case in CASES},
            report=report,
            live=stack.live_keys(),
            sources=stack.source_files(),
            entries=entries,
            dead_bodies={k: stack.body(e["dead_letter_key"]) for k, e in entries.items()},
        )


def test_one_tick_settles_every_hostile_file(outcome: Outcome) -> None:
    failing = [c for c in CASES if c.loads is None]
    assert outcome.report["status"] == "ok", outcome.report
    assert outcome.report["files_listed"] == len(CASES)
    assert outcome.report["files_dead_lettered"] == len(failing)
    assert outcome.report["files_loaded"] == len(CASES) - len(failing)
    assert outcome.report["events_delivered"] == sum(c.loads or 0 for c in CASES)
    assert outcome.live == []
    assert len(outcome.sources) == sum(c.loads or 0 for c in CASES)
    [run] = outcome.stack.core.runs()
    assert (run["files_dead_lettered"], run["dead_lettered_batches"]) == (len(failing), 1)


@pytest.mark.parametrize("case", [c for c in CASES if c.loads is None], ids=lambda c: c.name)
def test_a_file_snowflake_cannot_load_is_dead_lettered_with_its_reason(outcome: Outcome, case: Case) -> None:
    key = outcome.keys[case.name]
    assert key not in outcome.live
    entry = outcome.entries.get(key)
    assert entry is not None, f"no dead-letter entry for {case.name}"
    assert entry["status"] == "Load failed"
    assert entry["run_id"] == outcome.report["run_id"]
    assert entry["first_error"], entry
    assert case.says in entry["first_error"].lower(), entry["first_error"]
    assert entry["first_error"] in entry["reason"]  # the manifest's reason carries the cause
    assert entry["rows_loaded"] == 0
    assert outcome.dead_bodies[key] == case.body  # the bytes, unchanged, for a person to inspect
    assert not any(source.endswith(f"/{case.name}.json.gz") for source in outcome.sources)


@pytest.mark.parametrize("case", [c for c in CASES if c.loads is not None], ids=lambda c: c.name)
def test_a_file_snowflake_loads_is_loaded_and_deleted(outcome: Outcome, case: Case) -> None:
    key = outcome.keys[case.name]
    assert key not in outcome.live
    assert key not in outcome.entries
    rows = [source for source in outcome.sources if source.endswith(f"/{case.name}.json.gz")]
    assert len(rows) == case.loads

"""Hostile S3 keys, end to end: names under the writer's layout that URL encoding, Unicode
normalisation or sheer length could break. Each must load, be found in COPY_HISTORY (only a `Loaded`
record deletes a file) and be deleted; a failing one must be dead-lettered. Keys that do not match the
layout are left alone and reported. One tick covers them all.

`Snowpipe.key_of` maps REFRESH's `File` and COPY_HISTORY's `FILE_NAME` back to S3 keys; the pure tests
below pin it for the same names, as bare names and as full s3:// URLs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from devstack.aws import MotoServer
from devstack.scenario import new_connection
from devstack.snowflake.server import StandIn
from kernel.config import Settings
from kernel.render import Target
from loader.snowpipe import Snowpipe

from .stack import S3_KEY_MAX_BYTES, Stack, events, gz, ndjson, open_stack

pytestmark = pytest.mark.readings
_NOW = datetime.now(UTC)
_HEAD = f"live/acme/events/env_key=env-demo/year={_NOW:%Y}/month={_NOW:%m}/day={_NOW:%d}/hour={_NOW:%H}/"


def _longest_name(env_key: str) -> str:
    """A file name that makes the whole key exactly S3's 1,024-byte maximum (with 3-byte characters)."""
    room = S3_KEY_MAX_BYTES - len(_HEAD.replace("env-demo", env_key).encode()) - len(".json.gz")
    return "長" * (room // 3) + "x" * (room % 3)


# (case id, env_key, file name without .json.gz)
NAMES: list[tuple[str, str, str]] = [
    ("spaces", "env-demo", "name with  spaces "),
    ("plus", "env-demo", "a+b+c"),
    ("percent", "env-demo", "100%done"),
    ("encoded-slash", "env-demo", "a%2Fb%2F..%2Fc"),
    ("encoded-space", "env-demo", "a%20b"),
    ("nfc", "env-demo", unicodedata.normalize("NFC", "café")),
    ("nfd", "env-demo", unicodedata.normalize("NFD", "café")),
    ("equals", "env=a=b", "k=v=w"),
    ("url-specials", "env-demo", "q?x=1&y=2#frag;p"),
    ("quotes", "env-demo", 'it\'s "quoted"'),
    ("backslash", "env-demo", "a\\b"),
    ("emoji", "env-🚀", "🚀-launch"),
    ("env-with-space", "env key", "plain"),
    ("longest", "env-demo", _longest_name("env-demo")),
]
FAILING_LONGEST = ("failing-longest", "env-bad", _longest_name("env-bad"))

# Keys under the live prefix that do not match the layout (relative to live/acme/).
NOT_LAYOUT = {
    "outside-events": "notes/readme.json.gz",
    "top-level": "stray.txt",
    "under-events-flat": "events/stray.json.gz",
    "under-events-deeper": f"events/env_key=env-demo/year={_NOW:%Y}/month={_NOW:%m}/day={_NOW:%d}/"
    f"hour={_NOW:%H}/extra/folder.json.gz",
    "not-gz": f"events/env_key=env-demo/year={_NOW:%Y}/month={_NOW:%m}/day={_NOW:%d}/hour={_NOW:%H}/x.json",
}


@dataclass
class Outcome:
    stack: Stack
    keys: dict[str, str]
    ignored: dict[str, str]
    failing_key: str
    report: dict[str, Any]
    live: list[str]
    sources: list[str]
    entries: dict[str, dict[str, Any]]
    written_keys: list[tuple[str, str]]  # (operation, key) of every S3 write the tick made


@pytest.fixture(scope="module")
def outcome(
    standin_server: StandIn, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    with open_stack(standin_server, moto_server.reset, tmp_path_factory.mktemp("keys")) as stack:
        keys = {}
        for index, (case, env_key, name) in enumerate(NAMES):
            keys[case] = stack.put(stack.key(name, env_key, _NOW), gz(ndjson(events(2, seed=index))))
        _, env_key, name = FAILING_LONGEST
        failing = stack.put(stack.key(name, env_key, _NOW), gz(ndjson(events(2)))[:30])
        ignored = {
            case: stack.put(f"{stack.live_prefix}{relative}", gz(ndjson(events(1, seed=99))))
            for case, relative in NOT_LAYOUT.items()
        }
        written: list[tuple[str, str]] = []

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            if model.name in ("PutObject", "CopyObject"):
                written.append((model.name, str(params["Key"])))

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-parameter-build.s3", record)
        try:
            report = stack.tick(budget=60)
        finally:
            boto3.DEFAULT_SESSION.events.unregister("before-parameter-build.s3", record)
        yield Outcome(
            stack=stack,
            keys=keys,
            ignored=ignored,
            failing_key=failing,
            report=report,
            live=stack.live_keys(),
            sources=stack.source_files(),
            entries={entry["original_key"]: entry for entry in stack.dead_letters()},
            written_keys=written,
        )


def test_the_hostile_keys_are_real_distinct_objects(outcome: Outcome) -> None:
    assert len(set(outcome.keys.values())) == len(NAMES)
    assert outcome.keys["nfc"] != outcome.keys["nfd"]
    assert len(outcome.keys["longest"].encode()) == S3_KEY_MAX_BYTES
    assert len(outcome.failing_key.encode()) == S3_KEY_MAX_BYTES


@pytest.mark.parametrize(("case", "env_key", "name"), NAMES, ids=[n[0] for n in NAMES])
def test_a_hostile_key_loads_once_under_its_own_name_and_is_deleted(
    outcome: Outcome, case: str, env_key: str, name: str
) -> None:
    key = outcome.keys[case]
    assert key not in outcome.live, outcome.report
    assert key not in outcome.entries
    relative = key.removeprefix(outcome.stack.live_prefix)
    # METADATA$FILENAME is the path relative to the stage: byte for byte the key (NFC and NFD differ).
    assert outcome.sources.count(relative) == 2


def test_the_tick_that_loads_them_reports_every_file(outcome: Outcome) -> None:
    report = outcome.report
    assert report["files_listed"] == len(NAMES) + 1
    assert report["files_loaded"] == len(NAMES)
    assert report["events_delivered"] == 2 * len(NAMES)
    assert report["files_dead_lettered"] == 1


def test_a_failing_file_with_the_longest_key_is_dead_lettered(outcome: Outcome) -> None:
    assert outcome.failing_key not in outcome.live
    entry = outcome.entries.get(outcome.failing_key)
    assert entry is not None
    assert "decompression" in (entry["first_error"] or "")


def test_every_key_the_loader_writes_is_a_valid_s3_key(outcome: Outcome) -> None:
    """S3 refuses keys over 1,024 bytes (moto does not check). The dead-letter copy lands on
    `dead-letter/{org}/objects/<relative key>`, 15 bytes longer than `live/{org}/<relative key>`."""
    assert outcome.written_keys, "the tick wrote nothing: the dead-letter path did not run"
    too_long = [(op, len(key.encode())) for op, key in outcome.written_keys if len(key.encode()) > S3_KEY_MAX_BYTES]
    assert too_long == []


@pytest.mark.parametrize("case", list(NOT_LAYOUT), ids=list(NOT_LAYOUT))
def test_a_key_outside_the_layout_is_left_alone_and_reported(outcome: Outcome, case: str) -> None:
    key = outcome.ignored[case]
    assert key in outcome.live
    assert key not in outcome.entries
    assert outcome.report["files_ignored"] == len(NOT_LAYOUT)
    assert any("do not match the layout" in warning for warning in outcome.report["warnings"])


@pytest.mark.parametrize("case", list(NOT_LAYOUT), ids=list(NOT_LAYOUT))
def test_a_key_outside_the_layout_is_not_loaded_behind_the_loaders_back(outcome: Outcome, case: str) -> None:
    """Left alone means left alone: REFRESH PREFIX = 'events/' lists recursively and the pipe has no
    PATTERN, so a non-layout file under events/ would be loaded by Snowpipe while the loader never
    deletes it, never counts its rows and never dead-letters it."""
    relative = outcome.ignored[case].removeprefix(outcome.stack.live_prefix)
    loaded = outcome.sources.count(relative)
    assert loaded == 0, f"{loaded} rows of the ignored file {relative!r} are in the table"


# -- key_of, pure ---------------------------------------------------------------------------------


def _pipe() -> Snowpipe:
    settings = Settings()
    target = Target.from_connection(new_connection("acme", "ACME_ACCOUNT", settings), settings, "123456789012")
    return Snowpipe(session=None, target=target, attempts=1, budget=None)  # type: ignore[arg-type]  # key_of needs none


@pytest.mark.parametrize(
    ("case", "env_key", "name"), [*NAMES, FAILING_LONGEST], ids=[n[0] for n in [*NAMES, FAILING_LONGEST]]
)
def test_key_of_maps_every_form_snowflake_names_a_file_by_back_to_its_key(case: str, env_key: str, name: str) -> None:
    key = _HEAD.replace("env-demo", env_key) + f"{name}.json.gz"
    relative = key.removeprefix("live/acme/")
    pipe = _pipe()
    assert pipe.key_of(relative) == key  # REFRESH's File
    assert pipe.key_of(relative, "s3://floe-events/live/acme/") == key  # COPY_HISTORY FILE_NAME + STAGE_LOCATION
    assert pipe.key_of(relative, "s3://floe-events/live/acme") == key
    assert pipe.key_of(f"s3://floe-events/{key}") == key  # a full URL

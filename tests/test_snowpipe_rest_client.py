"""The REST mode's client without servers: request limits, refused files, the one scan per tick, retries
and the errors a person reads. The stand-in end of it is in tests/test_load_modes.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snowflake.ingest.error import IngestResponseError

from kernel.config import Settings
from kernel.connections import Connection
from kernel.render import Target
from kernel.secrets import SnowflakeCredentials
from loader.plan import LiveFile, LoadStatus
from loader.snowpipe_rest import RestPipe, SnowpipeRestError, record_of, rest_pipe_name
from loader.tick import Deadline

CONNECTION = Connection(
    connection_id="c-1",
    org_id="acme",
    account="ACME",
    user="FLOE_LOADER",
    role="FLOE_ROLE",
    warehouse="WH",
    database="ANALYTICS",
    schema="FLAGSMITH",
    table="EVENTS",
    secret_ref="floe/connections/c-1",
)
SETTINGS = Settings(time_margin_seconds=0.0)


def _error(status: int, code: str = "390144") -> IngestResponseError:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps({"code": code, "message": "m", "success": False, "data": None}).encode()
    return IngestResponseError(response)


class FakeClient:
    def __init__(self, failures: list[IngestResponseError] | None = None, unmatched: set[str] | None = None) -> None:
        self.failures = failures or []
        self.unmatched = unmatched or set()
        self.inserted: list[list[str]] = []
        self.scans = 0

    def ingest_files(self, staged: list[Any]) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        paths = [file.path for file in staged]
        self.inserted.append(paths)
        return {"status": "SUCCESS", "unmatchedPatternFiles": [p for p in paths if p in self.unmatched]}

    def get_history_range(self, _start: str) -> dict[str, Any]:
        self.scans += 1
        return {"files": [], "completeResult": True}


def _pipe(client: FakeClient) -> RestPipe:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    target = Target.from_connection(CONNECTION, SETTINGS, "123456789012")
    pipe = RestPipe(CONNECTION, SnowflakeCredentials(private_key=der), SETTINGS, target, Deadline.after(30))
    pipe._client = client
    return pipe


def _files(count: int, name: str = "f") -> list[LiveFile]:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    return [LiveFile(f"live/acme/events/{name}-{i}.json.gz", 10, at) for i in range(count)]


def test_insert_files_sends_at_most_5000_paths_a_request_relative_to_the_stage() -> None:
    client = FakeClient()
    submission = _pipe(client).submit(_files(12001))
    assert [len(paths) for paths in client.inserted] == [5000, 5000, 2001]
    assert client.inserted[0][0] == "events/f-0.json.gz"
    assert len(submission.sent) == 12001
    assert submission.rejected == {}


def test_refused_files_are_reported_and_not_sent() -> None:
    long = LiveFile("live/acme/events/" + "x" * 1020 + ".json.gz", 10, datetime(2026, 12, 2, tzinfo=UTC))
    client = FakeClient(unmatched={"events/f-1.json.gz"})
    submission = _pipe(client).submit([*_files(2), long])
    assert submission.sent == {"live/acme/events/f-0.json.gz"}
    assert submission.rejected == {
        "live/acme/events/f-1.json.gz": "the pipe's PATTERN does not match it",
        long.key: "path longer than 1024 bytes",
    }
    assert all(long.key.removeprefix("live/acme/") not in paths for paths in client.inserted)


def test_a_tick_scans_the_load_history_at_most_once() -> None:
    client = FakeClient()
    pipe = _pipe(client)
    assert pipe.scan(datetime(2026, 12, 1, tzinfo=UTC)) == {}
    assert pipe.scan(datetime(2026, 12, 1, tzinfo=UTC)) is None
    assert client.scans == 1


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_and_outages_are_retried(status: int) -> None:
    client = FakeClient(failures=[_error(status), _error(status)])
    submission = _pipe(client).submit(_files(1))
    assert len(submission.sent) == 1


def test_a_refused_key_names_the_connection_and_is_not_retried() -> None:
    client = FakeClient(failures=[_error(401), _error(401)])
    with pytest.raises(SnowpipeRestError, match=r"connection c-1: .*HTTP 401.*key pair was refused") as raised:
        _pipe(client).submit(_files(1))
    assert raised.value.transient is False
    assert len(client.failures) == 1  # one request, no retry


def test_report_entries_become_load_records_keyed_by_s3_key() -> None:
    item = {
        "path": "events/f.json.gz",
        "stageLocation": "s3://floe-events/live/acme/",
        "status": "LOAD_FAILED",
        "rowsInserted": 0,
        "rowsParsed": 3,
        "errorsSeen": 3,
        "firstError": "bad json",
        "lastInsertTime": "2026-12-02T10:00:00.000Z",
    }
    record = record_of(item, "live/acme/")
    assert record is not None
    assert (record.key, record.status, record.error_count) == ("live/acme/events/f.json.gz", LoadStatus.FAILED, 3)
    assert record.last_load_time == datetime(2026, 12, 2, 10, tzinfo=UTC)
    assert record_of({**item, "status": "SOMETHING_NEW"}, "live/acme/") is None


def test_pipe_names_quote_only_what_needs_it() -> None:
    assert rest_pipe_name(("ANALYTICS", "FLAGSMITH", "FLOE_EVENTS_PIPE")) == "ANALYTICS.FLAGSMITH.FLOE_EVENTS_PIPE"
    assert rest_pipe_name(("my.db", 'we"ird', "P")) == '"my.db"."we""ird".P'

"""Settling against S3 (moto) when S3 refuses a step: nothing may be lost. Each test fails if the guard
it names in loader.deliver._settle is removed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.aws import MotoServer
from devstack.events import write_event_file
from loader.deliver import _settle
from loader.plan import Decision, FilePlan, LiveFile, LoadRecord, LoadStatus
from loader.storage import OrgStorage

BUCKET = "floe-events"
BATCH = {"run_id": "run-1", "connection_id": "c-1", "organisation_id": "acme"}


@pytest.fixture
def s3(aws: MotoServer) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def plan(key: str, decision: Decision, status: LoadStatus) -> FilePlan:
    return FilePlan(LiveFile(key, 10, datetime.now(UTC)), decision, status.value, LoadRecord(key, status, row_count=1))


def live(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="live/").get("Contents", []))


def refuse(*_: Any, **__: Any) -> Any:
    raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "CopyObject")


def test_a_refused_dead_letter_copy_leaves_the_original_live(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = write_event_file(s3, BUCKET, "live/acme/", "bad", events=1)
    monkeypatch.setattr(s3, "copy_object", refuse)
    result = _settle(
        BATCH,
        [plan(key, Decision.DEAD_LETTER, LoadStatus.FAILED)],
        OrgStorage(s3, BUCKET, "live/acme/", "dead-letter/acme/"),
    )
    assert live(s3) == [key]  # not deleted: it exists nowhere else
    assert (result.files_dead_lettered, result.dead_letter_manifest) == (0, None)
    assert any("refused 1 dead-letter copies" in w for w in result.warnings)


def test_a_refused_delete_is_counted_in_flight_not_loaded(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = write_event_file(s3, BUCKET, "live/acme/", "good", events=1)
    monkeypatch.setattr(s3, "delete_objects", lambda **_: {"Errors": [{"Key": key, "Code": "AccessDenied"}]})
    result = _settle(
        BATCH,
        [plan(key, Decision.DELETE, LoadStatus.LOADED)],
        OrgStorage(s3, BUCKET, "live/acme/", "dead-letter/acme/"),
    )
    assert live(s3) == [key]
    assert (result.files_loaded, result.events_delivered, result.files_in_flight) == (0, 0, 1)
    assert any("refused to delete 1 settled files" in w for w in result.warnings)


def test_a_refused_retry_copy_leaves_the_original_live(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = write_event_file(s3, BUCKET, "live/acme/", "flaky", events=1)
    monkeypatch.setattr(s3, "copy_object", refuse)
    result = _settle(
        BATCH, [plan(key, Decision.RETRY, LoadStatus.FAILED)], OrgStorage(s3, BUCKET, "live/acme/", "dead-letter/acme/")
    )
    assert live(s3) == [key]
    assert result.files_in_flight == 1
    assert any("refused to move 1 files to retry" in w for w in result.warnings)

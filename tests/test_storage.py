"""The organisation's objects in S3, against the moto server over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import boto3
import pytest

from devstack.aws import MotoServer
from devstack.events import write_event_file
from kernel.layout import DEFAULT_LAYOUT, Layout
from loader.plan import Decision, FilePlan, LiveFile, LoadRecord, LoadStatus
from loader.storage import IsolationError, OrgStorage

BUCKET = "floe-events"


@pytest.fixture
def storage(aws: MotoServer) -> OrgStorage:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return OrgStorage(s3, BUCKET, "live/acme/", "dead-letter/acme/")


def failed_plan(key: str) -> FilePlan:
    record = LoadRecord(key, LoadStatus.FAILED, row_parsed=3, error_count=1, first_error="gzip: bad header")
    return FilePlan(LiveFile(key, 10, datetime.now(UTC)), Decision.DEAD_LETTER, "Load failed", record)


def test_listing_pages_through_every_event_file_and_reports_the_rest(storage: OrgStorage) -> None:
    s3 = boto3.client("s3")
    keys = {write_event_file(s3, BUCKET, "live/acme/", f"part-{i:04d}", events=1) for i in range(1005)}
    s3.put_object(Bucket=BUCKET, Key="live/acme/README.txt", Body=b"not an event file")
    write_event_file(s3, BUCKET, "live/other/", "part-x", events=1)
    listing = storage.list_live(Layout(DEFAULT_LAYOUT))
    assert {f.key for f in listing.files} == keys
    assert listing.ignored == ["live/acme/README.txt"]
    assert listing.pages == 2


def test_delete_removes_in_batches_of_a_thousand(storage: OrgStorage) -> None:
    s3 = boto3.client("s3")
    keys = [write_event_file(s3, BUCKET, "live/acme/", f"p{i}", events=1) for i in range(1200)]
    assert storage.delete(keys) == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="live/acme/")["KeyCount"] == 0


def test_dead_letter_copy_keeps_the_original_and_lands_once_on_a_fixed_key(storage: OrgStorage) -> None:
    s3 = boto3.client("s3")
    key = write_event_file(s3, BUCKET, "live/acme/", "bad file+%ü")
    original = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    first = storage.copy_to_dead_letter([failed_plan(key)])
    again = storage.copy_to_dead_letter([failed_plan(key)])  # a crash before the delete, then a retry
    assert first[0].dead_letter_key == again[0].dead_letter_key
    assert first[0].dead_letter_key == f"dead-letter/acme/objects/{key.removeprefix('live/acme/')}"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="dead-letter/acme/objects/")
    assert [o["Key"] for o in listed["Contents"]] == [first[0].dead_letter_key]
    assert s3.get_object(Bucket=BUCKET, Key=first[0].dead_letter_key)["Body"].read() == original
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == original


@pytest.mark.parametrize(
    "key",
    [
        "live/other/events/x.json.gz",
        "live/acme",
        "live/acme/",
        "live/acme/../other/x.json.gz",
        "dead-letter/acme/x",
    ],
)
def test_keys_outside_the_organisations_prefix_are_refused(storage: OrgStorage, key: str) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="live/other/events/x.json.gz", Body=b"theirs")
    with pytest.raises(IsolationError):
        storage.delete([key])
    with pytest.raises(IsolationError):
        storage.copy_to_dead_letter([failed_plan(key)])
    with pytest.raises(IsolationError):
        storage.restage(key)
    assert s3.get_object(Bucket=BUCKET, Key="live/other/events/x.json.gz")["Body"].read() == b"theirs"


def test_restage_moves_last_modified_and_keeps_the_bytes(storage: OrgStorage) -> None:
    s3 = boto3.client("s3")
    key = write_event_file(s3, BUCKET, "live/acme/", "old")
    before = s3.head_object(Bucket=BUCKET, Key=key)
    time.sleep(1.1)  # S3's LastModified has one-second resolution
    storage.restage(key)
    after = s3.head_object(Bucket=BUCKET, Key=key)
    assert after["LastModified"] > before["LastModified"]
    assert after["ETag"] == before["ETag"]


def test_manifest_is_written_under_the_dead_letter_prefix(storage: OrgStorage) -> None:
    key = storage.write_manifest("run-1", {"run_id": "run-1", "files": []})
    assert key == "dead-letter/acme/manifests/run-1.json"
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert b'"run_id": "run-1"' in body


def test_a_key_xml_cannot_carry_is_deleted_alone_and_the_batch_still_goes(storage: OrgStorage) -> None:
    s3 = boto3.client("s3")
    keys = [write_event_file(s3, BUCKET, "live/acme/", name, events=1) for name in ("bell\x07", "tab\tok", "plain")]
    assert storage.delete(keys) == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="live/acme/")["KeyCount"] == 0

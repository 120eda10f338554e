"""Reading a connection's dead-letter prefix: which files are there, from which run, and why."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3

from kernel import config
from kernel.connections import ConnectionStore
from kernel.dsn import open_configured_store
from kernel.errors import FloeError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def list_dead_letters(
    connection_id: str,
    settings: config.Settings | None = None,
    store: ConnectionStore | None = None,
    s3: S3Client | None = None,
) -> list[dict[str, Any]]:
    """Every dead-lettered object with its manifest entry (the newest run that dead-lettered it)."""
    settings = settings or config.load()
    s3 = s3 or boto3.client("s3")
    prefix = settings.dead_letter_prefix_for(_org_of(connection_id, settings, store))
    entries = _manifest_entries(s3, settings.bucket, f"{prefix}manifests/")
    objects = _keys(s3, settings.bucket, f"{prefix}objects/")
    unknown = {"status": "unknown", "reason": "no manifest names this object", "run_id": None}
    return [{"dead_letter_key": key, **entries.get(key, unknown)} for key in objects]


def _keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return [
        item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])
    ]


def _manifest_entries(s3: S3Client, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    manifests = []
    for key in _keys(s3, bucket, prefix):
        manifests.append(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    manifests.sort(key=lambda m: str(m.get("dead_lettered_at", "")))
    entries: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        for file in manifest.get("files", []):
            entries[file["dead_letter_key"]] = {
                **{k: v for k, v in file.items() if k != "dead_letter_key"},
                "run_id": manifest.get("run_id"),
                "dead_lettered_at": manifest.get("dead_lettered_at"),
            }
    return entries


class DeadLetterError(FloeError):
    """A dead letter or its manifest entry points outside the organisation's own prefixes."""


@dataclass(frozen=True)
class Replayed:
    dead_letter_key: str
    live_key: str


def replay(
    connection_id: str,
    run_id: str | None = None,
    settings: config.Settings | None = None,
    store: ConnectionStore | None = None,
    s3: S3Client | None = None,
) -> list[Replayed]:
    """Move dead-lettered objects (all, or one run's batch) back under the live prefix, under new names.

    Snowpipe skips a file whose path and name it loaded in the last 14 days (docs/snowflake-facts.md §1), so a
    replayed file needs a new name. The name is derived from the dead-letter object's key and ETag, so a
    replay that crashed half-way and is run again writes the same names: the pipe's load metadata then
    keeps a file from loading twice. A record of each replay is written under `replays/`.
    """
    settings = settings or config.load()
    s3 = s3 or boto3.client("s3")
    org_id = _org_of(connection_id, settings, store)
    live_prefix = settings.live_prefix_for(org_id)
    dead_prefix = settings.dead_letter_prefix_for(org_id)
    entries = list_dead_letters(connection_id, settings, store, s3)
    chosen = [e for e in entries if run_id is None or e.get("run_id") == run_id]
    moved = [_replay_one(s3, settings.bucket, entry, dead_prefix, live_prefix) for entry in chosen]
    if moved:
        record = {
            "connection_id": connection_id,
            "replayed_at": datetime.now(UTC).isoformat(),
            "files": [m.__dict__ for m in moved],
        }
        key = f"{dead_prefix}replays/{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.json"
        s3.put_object(Bucket=settings.bucket, Key=key, Body=json.dumps(record, indent=2).encode())
    return moved


def _org_of(connection_id: str, settings: config.Settings, store: ConnectionStore | None) -> str:
    if store is not None:
        return store.get(connection_id).org_id
    with open_configured_store(settings) as own:
        return own.get(connection_id).org_id


def _replay_one(s3: S3Client, bucket: str, entry: dict[str, Any], dead_prefix: str, live_prefix: str) -> Replayed:
    dead_key = str(entry["dead_letter_key"])
    if not dead_key.startswith(f"{dead_prefix}objects/"):
        raise DeadLetterError(f"{dead_key!r} is not a dead-lettered object of this organisation")
    # The manifest's original key keeps the file in the writer's layout (a long key's dead-letter copy
    # is named by its hash); without a manifest, the dead-letter key mirrors the original.
    original = str(entry.get("original_key") or f"{live_prefix}{dead_key.removeprefix(f'{dead_prefix}objects/')}")
    if not original.startswith(live_prefix):
        raise DeadLetterError(f"{original!r} is not under this organisation's live prefix")
    etag = s3.head_object(Bucket=bucket, Key=dead_key)["ETag"].strip('"')
    digest = hashlib.sha256(f"{dead_key}\0{etag}".encode()).hexdigest()[:12]
    folder, _, name = original.rpartition("/")
    live_key = f"{folder}/{name.removesuffix('.json.gz')}.replay-{digest}.json.gz"
    if len(live_key.encode()) > config.S3_MAX_KEY_BYTES:
        live_key = f"{folder}/replay-{digest}.json.gz"
    s3.copy_object(Bucket=bucket, Key=live_key, CopySource={"Bucket": bucket, "Key": dead_key})
    s3.delete_object(Bucket=bucket, Key=dead_key)
    return Replayed(dead_key, live_key)

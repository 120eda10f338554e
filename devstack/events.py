"""Sample flag-evaluation event files, written as the ingestion side writes them.

One record per line, flat JSON (Flagsmith ingestion-server `EventRecord`): `collected_at` and
`timestamp` are epoch milliseconds, `traits` and `metadata` are JSON-encoded strings; files are gzip
newline-delimited JSON under `events/env_key=…/year=…/month=…/day=…/hour=…/` (docs/snowflake-facts.md §12).
"""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FEATURES = ("new_checkout", "dark_mode", "search_v2", "pricing_banner")


def evaluation_events(count: int, environment_key: str, seed: int, at: datetime) -> list[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    epoch_ms = int(at.timestamp() * 1000)
    return [
        {
            "environment_key": environment_key,
            "collected_at": epoch_ms + i,
            "sdk_language": "python",
            "sdk_version": "5.0.0",
            "event": "$flag_exposure",
            "feature_name": rng.choice(FEATURES),
            "identifier": f"user-{rng.randrange(10_000)}",
            "value": rng.choice([True, False, "variant-a", 3]),
            "traits": json.dumps({"plan": rng.choice(["free", "pro"])}),
            "metadata": json.dumps({"seed": seed, "index": i}),
            "timestamp": epoch_ms - rng.randrange(60_000),
        }
        for i in range(count)
    ]


def gzip_ndjson(records: list[dict[str, Any]]) -> bytes:
    text = "".join(json.dumps(record) + "\n" for record in records)
    return gzip.compress(text.encode(), mtime=0)


def event_key(live_prefix: str, environment_key: str, at: datetime, name: str) -> str:
    return (
        f"{live_prefix}events/env_key={environment_key}/year={at:%Y}/month={at:%m}/day={at:%d}/hour={at:%H}/"
        f"{name}.json.gz"
    )


def write_event_file(
    s3: S3Client,
    bucket: str,
    live_prefix: str,
    name: str,
    *,
    events: int = 10,
    seed: int = 0,
    environment_key: str = "env-demo",
    at: datetime | None = None,
) -> str:
    """Put one valid event file; returns its key."""
    at = at or datetime.now(UTC)
    key = event_key(live_prefix, environment_key, at, name)
    body = gzip_ndjson(evaluation_events(events, environment_key, seed, at))
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


def write_corrupt_file(
    s3: S3Client,
    bucket: str,
    live_prefix: str,
    name: str,
    *,
    environment_key: str = "env-demo",
    at: datetime | None = None,
) -> str:
    """Put a file whose gzip stream is cut short: Snowpipe cannot read it and reports it failed."""
    at = at or datetime.now(UTC)
    key = event_key(live_prefix, environment_key, at, name)
    body = gzip_ndjson(evaluation_events(5, environment_key, 0, at))
    s3.put_object(Bucket=bucket, Key=key, Body=body[: len(body) // 2])
    return key

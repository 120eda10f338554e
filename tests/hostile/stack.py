"""One onboarded organisation over the local stack (moto, the Snowflake stand-in, SQLite rows, the core
receiver), shared by the hostile-input tests. `open_stack` works in any fixture scope: a module that runs
one tick over many hostile files starts it once and reads every outcome from that one tick."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from devstack.core_api import CoreReceiver
from devstack.events import evaluation_events, gzip_ndjson
from devstack.scenario import onboard, run_as_admin_query
from devstack.snowflake.server import StandIn
from kernel import config
from kernel.connections import Connection, open_store
from loader.handler import run
from loader.tick import Deadline
from provisioner.dead_letters import list_dead_letters

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ORG = "acme"
ACCOUNT = "ACME_ACCOUNT"
TABLE = "ANALYTICS.FLAGSMITH.FLAG_EVALUATIONS"
S3_KEY_MAX_BYTES = 1024  # https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html


def environment(standin: StandIn, core: CoreReceiver, db_dir: Path) -> dict[str, str]:
    return {
        "FLOE_CONNECTIONS_DSN": f"sqlite:///{db_dir}/connections.db",
        "FLOE_SNOWFLAKE_HOST": standin.host,
        "FLOE_SNOWFLAKE_PORT": str(standin.port),
        "FLOE_SNOWFLAKE_PROTOCOL": "http",
        "FLOE_AWS_ACCOUNT_ID": "123456789012",
        "FLOE_CORE_API_URL": core.url,
        "FLOE_POLL_FIRST_SECONDS": "0.2",
        "FLOE_POLL_MAX_SECONDS": "0.5",
        "FLOE_TIME_MARGIN_SECONDS": "1",
        "FLOE_SETTLE_INTERVAL": "0",  # REFRESH settles every tick (tests/test_load_modes.py covers the gate)
    }


@dataclass
class Stack:
    standin: StandIn
    core: CoreReceiver
    settings: config.Settings
    connection: Connection

    @property
    def s3(self) -> S3Client:
        return boto3.client("s3")

    @property
    def live_prefix(self) -> str:
        return self.settings.live_prefix_for(self.connection.org_id)

    def tick(self, budget: float = 20.0) -> dict[str, Any]:
        return run({"connection_id": self.connection.connection_id}, Deadline.after(budget))

    def key(self, name: str, env_key: str = "env-demo", at: datetime | None = None) -> str:
        """A key under the writer's layout; `name` is the file name without `.json.gz`."""
        at = at or datetime.now(UTC)
        return (
            f"{self.live_prefix}events/env_key={env_key}/year={at:%Y}/month={at:%m}/day={at:%d}/hour={at:%H}/"
            f"{name}.json.gz"
        )

    def put(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=self.settings.bucket, Key=key, Body=body)
        return key

    def put_events(self, key: str, events: int = 3, seed: int = 0) -> str:
        return self.put(key, gzip_ndjson(evaluation_events(events, "env-demo", seed, datetime.now(UTC))))

    def live_keys(self) -> list[str]:
        return keys(self.settings.bucket, self.live_prefix)

    def body(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read())

    def admin_sql(self, sql: str) -> list[tuple[Any, ...]]:
        return run_as_admin_query(self.standin, self.connection.account, sql)

    def source_files(self) -> list[str]:
        """SOURCE_FILE_NAME of every row in the organisation's table (one entry per row)."""
        return [str(row[0]) for row in self.admin_sql(f"SELECT SOURCE_FILE_NAME FROM {TABLE}")]

    def dead_letters(self) -> list[dict[str, Any]]:
        return list_dead_letters(self.connection.connection_id, self.settings)

    def logins(self) -> int:
        return int(self.standin.control.stats(ACCOUNT)["logins"])

    def refreshes(self) -> int:
        return int(self.standin.control.stats(ACCOUNT)["statements_by_kind"].get("refresh_pipe", 0))


def keys(bucket: str, prefix: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _onboard(standin: StandIn, core: CoreReceiver) -> Stack:
    settings = config.load()
    with open_store(settings.connections_dsn) as store:
        store.migrate()
        connection = onboard(ORG, ACCOUNT, standin=standin, settings=settings, store=store)
    standin.control.configure(ACCOUNT, load_delay_seconds=0.05)  # Snowpipe loads in the background
    return Stack(standin, core, settings, connection)


def build(standin: StandIn, core: CoreReceiver, db_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """For function-scoped fixtures: `standin` is already reset over an emptied moto."""
    for name, value in environment(standin, core, db_dir).items():
        monkeypatch.setenv(name, value)
    return _onboard(standin, core)


@contextmanager
def open_stack(standin_server: StandIn, reset_aws: Any, db_dir: Path) -> Iterator[Stack]:
    """For wider scopes: resets moto (`reset_aws()`) and the stand-in itself, owns its core receiver."""
    reset_aws()
    standin_server.control.reset()
    with CoreReceiver() as core, pytest.MonkeyPatch.context() as monkeypatch:
        yield build(standin_server, core, db_dir, monkeypatch)


def gz(text: str | bytes) -> bytes:
    return gzip.compress(text.encode() if isinstance(text, str) else text, mtime=0)


def ndjson(records: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def events(count: int = 3, seed: int = 1) -> list[dict[str, Any]]:
    return evaluation_events(count, "env-demo", seed, datetime.now(UTC))

"""What a statement handler works with: the session, its account and the stand-in's runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .clock import Clock
from .errors import SnowflakeError
from .iam import AwsClients
from .model import Account, QualifiedName


@dataclass
class Runtime:
    clock: Clock
    aws_endpoint_url: str
    # S3 stamps objects with real time. Objects that existed when the clock was advanced keep the
    # stand-in time they had then (bucket, key, eTag -> time); later ones get the current offset.
    staged_times: dict[tuple[str, str, str], float] = field(default_factory=dict)
    aws: AwsClients = field(init=False)

    def __post_init__(self) -> None:
        self.aws = AwsClients(self.aws_endpoint_url, self.clock.now)

    def staged_at(self, bucket: str, key: str, etag: str, last_modified: float) -> float:
        known = self.staged_times.get((bucket, key, etag))
        return known if known is not None else last_modified + self.clock.offset()

    def advance_clock(self, seconds: float) -> None:
        s3 = self.aws.client("s3")
        for bucket in s3.list_buckets().get("Buckets", []):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
                for item in page.get("Contents", []):
                    key = (bucket["Name"], item["Key"], str(item["ETag"]).strip('"'))
                    self.staged_times.setdefault(key, item["LastModified"].timestamp() + self.clock.offset())
        self.clock.advance(seconds)


@dataclass
class Session:
    token: str
    account: Account
    user: str
    role: str
    warehouse: str | None
    conn: Any  # fakesnow.conn.FakeSnowflakeConnection
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def database(self) -> str | None:
        return self.conn.database  # type: ignore[no-any-return]

    @property
    def schema(self) -> str | None:
        return self.conn.schema  # type: ignore[no-any-return]


@dataclass
class Context:
    session: Session
    runtime: Runtime
    used_warehouse: bool = False

    @property
    def account(self) -> Account:
        return self.session.account

    def now(self) -> float:
        return self.runtime.clock.now()

    def qualify(self, parts: list[str], action: str = "operate on") -> QualifiedName:
        """A schema-level name completed with the session's database and schema."""
        if len(parts) == 3:
            return (parts[0], parts[1], parts[2])
        database, schema = self.session.database, self.session.schema
        if len(parts) == 2 and database:
            return (database, parts[0], parts[1])
        if len(parts) == 1 and database and schema:
            return (database, schema, parts[0])
        raise SnowflakeError(
            90105,
            f"Cannot perform {action}. This session does not have a current database. "
            "Call 'USE DATABASE', or use a qualified name.",
            "22000",
        )

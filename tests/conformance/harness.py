"""The two targets of the conformance suite and the SQL helpers its tests share.

A `Target` is one Snowflake account (plus the S3 bucket and the IAM it reads through) with the operations
the tests need. `StandInTarget` drives the local stand-in (`devstack.snowflake`) over a moto server;
`LiveTarget` drives a real account and real AWS, namespacing every object by a random run id and dropping
all of them at the end. The tests only see `Target`, so one test body checks both.

Everything here is written from the facts (docs/snowflake-facts.md), not from the stand-in.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import gzip
import json
import logging
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import boto3
import pytest
import snowflake.connector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snowflake.ingest import SimpleIngestManager

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("floe.conformance")

Connection = Any  # snowflake.connector.SnowflakeConnection (the connector ships no type information)
Row = dict[str, Any]

ROLE_PATH = "/floe-conformance/"
KEY_ROOT = "floe-conformance"
STANDIN_BUCKET = "floe-conformance"
STANDIN_ADMIN_PASSWORD = "admin-password"

# docs/snowflake-facts.md §2: the five COPY_HISTORY STATUS values; the first is the only non-terminal one.
STATUSES = frozenset({"Load in progress", "Loaded", "Load failed", "Partially loaded", "Load skipped"})
TERMINAL_STATUSES = STATUSES - {"Load in progress"}

# docs/snowflake-facts.md §2: the columns of INFORMATION_SCHEMA.COPY_HISTORY.
COPY_HISTORY_COLUMNS = (
    "FILE_NAME",
    "STAGE_LOCATION",
    "LAST_LOAD_TIME",
    "ROW_COUNT",
    "ROW_PARSED",
    "FILE_SIZE",
    "FIRST_ERROR_MESSAGE",
    "FIRST_ERROR_LINE_NUMBER",
    "FIRST_ERROR_CHARACTER_POS",
    "FIRST_ERROR_COLUMN_NAME",
    "ERROR_COUNT",
    "ERROR_LIMIT",
    "STATUS",
    "TABLE_CATALOG_NAME",
    "TABLE_SCHEMA_NAME",
    "TABLE_NAME",
    "PIPE_CATALOG_NAME",
    "PIPE_SCHEMA_NAME",
    "PIPE_NAME",
    "PIPE_RECEIVED_TIME",
    "BYTES_BILLED",
)


# --------------------------------------------------------------------------------------------- SQL helpers


def query(conn: Connection, sql: str) -> list[Row]:
    """Run one statement; its rows as dicts keyed by column name exactly as the server sent it."""
    cur = conn.cursor()
    try:
        log.debug("SQL %s", sql)
        try:
            cur.execute(sql)
        except snowflake.connector.errors.DatabaseError as exc:
            log.debug("-> refused: %s", error_text(exc))
            raise
        if cur.description is None:
            return []
        names = [str(d[0]) for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        log.debug("-> %d rows %s", len(rows), rows[:5])
        return rows
    finally:
        cur.close()


def columns(conn: Connection, sql: str) -> list[str]:
    """The column names of a statement's result, as the server sent them."""
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return [str(d[0]) for d in (cur.description or [])]
    finally:
        cur.close()


def get(row: Mapping[str, Any], name: str) -> Any:
    """A row's value by column name, case-insensitively (SHOW/DESC columns are lower case, others upper)."""
    for key, value in row.items():
        if key.upper() == name.upper():
            return value
    raise KeyError(f"no column {name!r} in {sorted(row)}")


def refresh(conn: Connection, pipe: str, *, prefix: str | None = None, modified_after: str | None = None) -> list[Row]:
    """facts §1: `ALTER PIPE … REFRESH [PREFIX = '…'] [MODIFIED_AFTER = …]`; its output columns are
    UNCERTAIN, so rows are returned as sent."""
    options = ""
    if prefix is not None:
        options += f" PREFIX = '{prefix}'"
    if modified_after is not None:
        options += f" MODIFIED_AFTER = '{modified_after}'"
    return query(conn, f"ALTER PIPE {pipe} REFRESH{options}")


def names_file(rows: Iterable[Mapping[str, Any]], basename: str) -> bool:
    """Whether any cell of any row names the file (REFRESH's columns are UNCERTAIN, docs/snowflake-facts.md §1)."""
    return any(isinstance(v, str) and basename in v for row in rows for v in row.values())


def copy_history(conn: Connection, table: str, *, pipe: str | None = None) -> list[Row]:
    """facts §2: `TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => …, START_TIME => …))`."""
    pipe_arg = f", PIPE_NAME => '{pipe}'" if pipe else ""
    return query(
        conn,
        "SELECT * FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY("
        f"TABLE_NAME => '{table}', START_TIME => DATEADD(HOUR, -24, CURRENT_TIMESTAMP()){pipe_arg}))",
    )


def basename_of(file_name: str) -> str:
    return file_name.rstrip("/").rsplit("/", 1)[-1]


def history_of(rows: Iterable[Row], basename: str) -> list[Row]:
    """The COPY_HISTORY rows of one file (FILE_NAME may be stage-relative or a full URL)."""
    return [r for r in rows if basename_of(str(get(r, "FILE_NAME"))) == basename]


def pipe_status(conn: Connection, pipe: str) -> dict[str, Any]:
    """facts §2: `SYSTEM$PIPE_STATUS('<db>.<schema>.<pipe>')` returns a JSON object."""
    rows = query(conn, f"SELECT SYSTEM$PIPE_STATUS('{pipe}') AS S")
    status = json.loads(str(get(rows[0], "S")))
    assert isinstance(status, dict), status
    return status


def describe_integration(conn: Connection, integration: str) -> dict[str, str]:
    """facts §4: `DESC INTEGRATION <name>` as {property: property_value}."""
    return {
        str(get(r, "property")).upper(): str(get(r, "property_value"))
        for r in query(conn, f"DESC INTEGRATION {integration}")
    }


def table_rows(conn: Connection, table: str) -> list[Row]:
    return query(conn, f"SELECT A, N, SRC_FILE, SRC_ROW FROM {table} ORDER BY SRC_FILE, SRC_ROW")


def rows_from(rows: Iterable[Row], basename: str) -> list[Row]:
    """The table rows whose METADATA$FILENAME lineage names the file."""
    return [r for r in rows if basename_of(str(get(r, "SRC_FILE"))) == basename]


# ------------------------------------------------------------------------------------------------ data


def ndjson_gz(records: Sequence[Mapping[str, Any]]) -> bytes:
    """A gzip NDJSON event file, as Floe's writers produce."""
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())


def records(stem: str, count: int) -> list[dict[str, Any]]:
    return [{"a": f"{stem}-{i}", "n": i} for i in range(1, count + 1)]


@dataclass(frozen=True)
class StagedFile:
    key: str
    basename: str
    records: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class KeyPair:
    """An RSA key pair for key-pair login (docs/snowflake-facts.md §7: at least 2048 bits, PKCS8)."""

    private: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @property
    def der(self) -> bytes:
        """The private key as the connector takes it: DER bytes (docs/snowflake-facts.md §7)."""
        return self.private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def pem(self) -> str:
        """The private key as snowflake-ingest's SimpleIngestManager takes it: unencrypted PKCS8 PEM text."""
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @property
    def public_b64(self) -> str:
        """The public key for `RSA_PUBLIC_KEY`: base64 DER, no PEM delimiters (docs/snowflake-facts.md §7)."""
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()


# ----------------------------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class Access:
    """An IAM role Snowflake assumes plus the storage integration naming it (docs/snowflake-facts.md §4)."""

    integration: str
    role_name: str
    role_arn: str
    allowed_prefixes: tuple[str, ...]
    blocked_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Loading:
    """Stage + table + pipe over one prefix; the pipe loads with a transform carrying lineage."""

    access: Access
    prefix: str
    stage: str
    table: str
    pipe: str
    pipe_sql: str  # the CREATE PIPE statement, without OR REPLACE


@dataclass(frozen=True)
class AccountRef:
    name: str
    user: str
    password: str | None
    private_key: bytes | None
    role: str
    warehouse: str
    database: str


class Control(Protocol):
    """The part of `devstack.snowflake.control.StandInControl` the suite uses (the brief's contract)."""

    def create_account(self, name: str, admin_user: str = ..., admin_password: str = ...) -> Mapping[str, Any]: ...
    def drain(self, account: str) -> Mapping[str, Any]: ...
    def configure(self, account: str, **settings: float) -> Any: ...
    def inject_faults(
        self,
        account: str,
        *,
        fail_requests: int = ...,
        fail_files: Mapping[str, str] | None = ...,
        rest_fail_requests: int = ...,
        rest_fail_status: int = ...,
    ) -> Any: ...
    def advance_clock(self, seconds: float) -> Any: ...
    def stats(self, account: str) -> Mapping[str, Any]: ...
    def set_reading(self, account: str, name: str) -> Any: ...
    def force_pipe_state(
        self, account: str, pipe: str, execution_state: str | None, error: str | None = ...
    ) -> str: ...


class StandInLike(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def control(self) -> Control: ...


def read_policy(bucket: str, prefixes: Sequence[str]) -> dict[str, Any]:
    """facts §4, the documented read-only policy, scoped to the prefixes (`<prefix>/*`)."""
    bare = [p.rstrip("/") for p in prefixes]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": [f"arn:aws:s3:::{bucket}/{p}/*" for p in bare],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{p}/*" for p in bare]}},
            },
        ],
    }


def trust_policy(principal_arn: str, external_id: str) -> dict[str, Any]:
    """facts §4, the trust policy on the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "",
                "Effect": "Allow",
                "Principal": {"AWS": principal_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


# ---------------------------------------------------------------------------------------------- targets


class Target(abc.ABC):
    """One Snowflake account, its S3 bucket and IAM, and what the tests do with them."""

    is_live: bool
    load_timeout: float
    poll_interval: float

    def __init__(self, account: AccountRef, *, bucket: str, run_id: str | None = None) -> None:
        self.account = account
        self.bucket = bucket
        self.run_id = run_id or uuid.uuid4().hex[:8].upper()
        self.database = account.database
        self.schema = f"FLOE_CONF_{self.run_id}"
        self.s3: S3Client = boto3.client("s3")
        self.iam: IAMClient = boto3.client("iam")
        self._admin: Connection | None = None
        self._connections: list[Connection] = []
        self._children: list[Target] = []
        self._roles: list[str] = []
        self._account_objects: list[tuple[str, str]] = []  # (kind, name): integrations, users, roles, warehouses
        self._file_format: str | None = None
        self._wrote_objects = False
        self.iam_user_arn: str | None = None  # the stand-in reports its account's IAM user; live: unknown

    # -- names -------------------------------------------------------------------------------------------

    def name(self, stem: str) -> str:
        """An unquoted identifier unique to this run (docs/snowflake-facts.md §9: `[A-Z0-9_]` needs no quoting)."""
        return f"FLOE_CONF_{self.run_id}_{stem}".upper()

    def fq(self, name: str) -> str:
        return f"{self.database}.{self.schema}.{name}"

    def prefix(self, stem: str) -> str:
        return f"{KEY_ROOT}/{self.run_id.lower()}/{stem}/"

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    # -- connections -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def _endpoint(self) -> dict[str, Any]:
        """Connection parameters that pick the server (empty for real Snowflake)."""

    def _ingest_endpoint(self) -> dict[str, Any]:
        """SimpleIngestManager's scheme/host/port: its defaults (https, <account>.snowflakecomputing.com)."""
        return {}

    def ingest_manager(self, user: str, key: KeyPair, pipe: str) -> SimpleIngestManager:
        """The official Snowpipe REST client (snowflake-ingest) for `pipe`, signing as `user` with `key`."""
        return SimpleIngestManager(
            account=self.account.name, user=user, pipe=pipe, private_key=key.pem, **self._ingest_endpoint()
        )

    def connect(
        self,
        user: str,
        *,
        password: str | None = None,
        private_key: bytes | None = None,
        role: str | None = None,
        warehouse: str | None = None,
        in_schema: bool = False,
    ) -> Connection:
        """Log in exactly as a client of Snowflake does (docs/snowflake-facts.md §7)."""
        params: dict[str, Any] = {
            "account": self.account.name,
            "user": user,
            "login_timeout": 60,
            "network_timeout": 120,
            **self._endpoint(),
        }
        if private_key is not None:
            params.update(authenticator="SNOWFLAKE_JWT", private_key=private_key)
        else:
            params["password"] = password
        if role:
            params["role"] = role
        if warehouse:
            params["warehouse"] = warehouse
        if in_schema:
            params.update(database=self.database, schema=self.schema)
        try:
            conn = snowflake.connector.connect(**params)
        except snowflake.connector.errors.DatabaseError as exc:
            log.debug("login of %s refused: %s", user, error_text(exc))
            raise
        self._connections.append(conn)
        return conn

    @property
    def admin(self) -> Connection:
        """A connection with the account's admin role and warehouse, using this run's schema."""
        if self._admin is None:
            conn = self.connect(
                self.account.user,
                password=self.account.password,
                private_key=self.account.private_key,
                role=self.account.role,
                warehouse=self.account.warehouse,
            )
            self._create_database(conn)
            query(conn, f"CREATE SCHEMA IF NOT EXISTS {self.database}.{self.schema}")
            query(conn, f"USE SCHEMA {self.database}.{self.schema}")
            self._admin = conn
        return self._admin

    def reconnect(self) -> Connection:
        """A new admin session (as a new tick opens one); the old one is left to `close`."""
        self._admin = None
        return self.admin

    def _create_database(self, conn: Connection) -> None:  # noqa: B027 - a hook only the stand-in fills
        """The stand-in's new account has no database; a live run uses the one it was given."""

    def create_user(self, stem: str, *, properties: str) -> str:
        user = self.name(stem)
        query(self.admin, f"CREATE USER {user} {properties}")
        self._account_objects.append(("USER", user))
        return user

    def create_role(self, stem: str) -> str:
        role = self.name(stem)
        query(self.admin, f"CREATE ROLE {role}")
        self._account_objects.append(("ROLE", role))
        return role

    def create_warehouse(self, stem: str, *, properties: str) -> str:
        warehouse = self.name(stem)
        query(self.admin, f"CREATE WAREHOUSE {warehouse} {properties}")
        self._account_objects.append(("WAREHOUSE", warehouse))
        return warehouse

    # -- S3 ----------------------------------------------------------------------------------------------

    def put(self, key: str, body: bytes) -> None:
        self._wrote_objects = True
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def put_file(self, prefix: str, stem: str, recs: Sequence[dict[str, Any]]) -> StagedFile:
        basename = f"{stem}-{uuid.uuid4().hex[:8]}.json.gz"
        key = prefix + basename
        self.put(key, ndjson_gz(recs))
        return StagedFile(key=key, basename=basename, records=tuple(recs))

    def put_raw(self, prefix: str, stem: str, body: bytes) -> StagedFile:
        basename = f"{stem}-{uuid.uuid4().hex[:8]}.json.gz"
        self.put(prefix + basename, body)
        return StagedFile(key=prefix + basename, basename=basename, records=())

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    # -- IAM + integration + stage + pipe (docs/snowflake-facts.md §4, §5) ------------------------------------

    @abc.abstractmethod
    def aws_account_id(self) -> str: ...

    def create_access(
        self,
        stem: str,
        *,
        allowed_prefixes: Sequence[str],
        readable_prefixes: Sequence[str] | None = None,
        blocked_prefixes: Sequence[str] = (),
        trust: bool = True,
    ) -> Access:
        """IAM role (read-only on `readable_prefixes`) + storage integration, then the trust handshake.

        Until `trust_integration` runs, the role trusts only this AWS account with a placeholder external
        id, as the setup guide has it, so Snowflake cannot assume it.
        """
        role_name = f"floe-conf-{self.run_id.lower()}-{stem.lower().replace('_', '-')}"
        placeholder = trust_policy(f"arn:aws:iam::{self.aws_account_id()}:root", "0000")
        role = self.iam.create_role(
            Path=ROLE_PATH, RoleName=role_name, AssumeRolePolicyDocument=json.dumps(placeholder)
        )
        self._roles.append(role_name)
        self.iam.put_role_policy(
            RoleName=role_name,
            PolicyName="floe-conformance-read",
            PolicyDocument=json.dumps(read_policy(self.bucket, readable_prefixes or allowed_prefixes)),
        )
        integration = self.name(f"INT_{stem}")
        access = Access(
            integration=integration,
            role_name=role_name,
            role_arn=role["Role"]["Arn"],
            allowed_prefixes=tuple(allowed_prefixes),
            blocked_prefixes=tuple(blocked_prefixes),
        )
        query(self.admin, self.integration_sql(access))
        self._account_objects.append(("INTEGRATION", integration))
        if trust:
            self.trust_integration(access)
        return access

    def integration_sql(self, access: Access, *, replace: bool = False) -> str:
        locations = ", ".join(f"'{self.url(p)}'" for p in access.allowed_prefixes)
        blocked = ", ".join(f"'{self.url(p)}'" for p in access.blocked_prefixes)
        return (
            f"CREATE {'OR REPLACE ' if replace else ''}STORAGE INTEGRATION {access.integration} "
            "TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' "
            f"STORAGE_AWS_ROLE_ARN = '{access.role_arn}' ENABLED = TRUE "
            f"STORAGE_ALLOWED_LOCATIONS = ({locations})"
            + (f" STORAGE_BLOCKED_LOCATIONS = ({blocked})" if blocked else "")
        )

    def trust_integration(self, access: Access) -> dict[str, str]:
        """facts §4: DESC INTEGRATION's user ARN and external id go into the role's trust policy."""
        props = describe_integration(self.admin, access.integration)
        self.iam.update_assume_role_policy(
            RoleName=access.role_name,
            PolicyDocument=json.dumps(
                trust_policy(props["STORAGE_AWS_IAM_USER_ARN"], props["STORAGE_AWS_EXTERNAL_ID"])
            ),
        )
        return props

    def create_stage(self, stem: str, access: Access, prefix: str) -> str:
        stage = self.fq(self.name(f"STG_{stem}"))
        query(
            self.admin,
            f"CREATE STAGE {stage} URL = '{self.url(prefix)}' STORAGE_INTEGRATION = {access.integration}",
        )
        return stage

    def list_stage(self, stage: str) -> list[Row]:
        return query(self.admin, f"LIST @{stage}")

    def await_stage_readable(self, stage: str) -> list[Row]:
        """LIST the stage; a live run retries while IAM changes propagate (bounded)."""
        return self.list_stage(stage)

    def file_format(self) -> str:
        """facts §5: a named JSON file format (gzip is detected: COMPRESSION defaults to AUTO)."""
        if self._file_format is None:
            self._file_format = self.fq(self.name("FF_JSON"))
            query(self.admin, f"CREATE FILE FORMAT {self._file_format} TYPE = JSON")
        return self._file_format

    def create_table_and_pipe(self, stem: str, access: Access, stage: str, prefix: str) -> Loading:
        table = self.fq(self.name(f"T_{stem}"))
        pipe = self.fq(self.name(f"P_{stem}"))
        query(self.admin, f"CREATE TABLE {table} (A STRING, N NUMBER, SRC_FILE STRING, SRC_ROW NUMBER)")
        pipe_sql = (
            f"PIPE {pipe} AUTO_INGEST = FALSE AS COPY INTO {table} (A, N, SRC_FILE, SRC_ROW) "
            "FROM (SELECT $1:a::STRING, $1:n::NUMBER, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER "
            f"FROM @{stage}) FILE_FORMAT = (FORMAT_NAME = {self.file_format()})"
        )
        query(self.admin, f"CREATE {pipe_sql}")
        return Loading(access=access, prefix=prefix, stage=stage, table=table, pipe=pipe, pipe_sql=pipe_sql)

    def setup_loading(self, stem: str) -> Loading:
        """The whole chain for one prefix, as Floe provisions an organisation (docs/snowflake-facts.md §4, §5)."""
        prefix = self.prefix(stem.lower())
        access = self.create_access(stem, allowed_prefixes=[prefix])
        stage = self.create_stage(stem, access, prefix)
        if self.is_live:
            self.await_stage_readable(stage)
        return self.create_table_and_pipe(stem, access, stage, prefix)

    # -- loading -----------------------------------------------------------------------------------------

    @abc.abstractmethod
    def process(self) -> None:
        """Let Snowpipe work through its queue (stand-in: drain; live: nothing to do)."""

    @abc.abstractmethod
    def settle(self) -> None:
        """Give Snowpipe the chance to load whatever it would load (stand-in: drain; live: wait)."""

    def wait_loaded(self, loading: Loading, files: Sequence[StagedFile]) -> dict[str, Row]:
        """Wait until COPY_HISTORY shows every file in a terminal status; the latest row of each."""
        self.process()
        deadline = time.monotonic() + self.load_timeout
        while True:
            history = copy_history(self.admin, loading.table)
            latest: dict[str, Row] = {}
            for f in files:
                terminal = [r for r in history_of(history, f.basename) if get(r, "STATUS") in TERMINAL_STATUSES]
                if terminal:
                    latest[f.basename] = max(terminal, key=_load_time)
            if len(latest) == len(files):
                return latest
            if time.monotonic() > deadline:
                missing = sorted(f.basename for f in files if f.basename not in latest)
                pytest.fail(
                    f"COPY_HISTORY shows no terminal status for {missing} after {self.load_timeout:.0f}s; "
                    f"history: {history}"
                )
            time.sleep(self.poll_interval)

    def wait_until(self, check: Callable[[], bool], what: str) -> None:
        """Let Snowpipe work, then poll `check` until it holds (bounded by load_timeout)."""
        self.process()
        deadline = time.monotonic() + self.load_timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not so after {self.load_timeout:.0f}s")
            time.sleep(self.poll_interval)

    # -- what only the stand-in can do --------------------------------------------------------------------

    def needs_standin(self, reason: str) -> None:
        """Skip, in live mode only, a test that needs the stand-in's control API."""
        if self.is_live:
            pytest.skip(reason)

    @property
    def control(self) -> Control:
        raise RuntimeError("the live target has no control API; call needs_standin first")

    def stats(self) -> Mapping[str, Any] | None:
        """The stand-in's counters for this account; None against real Snowflake."""
        return None

    @abc.abstractmethod
    def other_account(self) -> Target:
        """A second account, fully separate from this one (facts: one Snowflake account per organisation)."""

    # -- cleanup -----------------------------------------------------------------------------------------

    def close(self) -> None:
        for child in self._children:
            child.close()
        if self.is_live:
            self._drop_everything()
        for conn in self._connections:
            try:
                conn.close()
            except Exception as exc:  # closing is best effort
                warnings.warn(f"closing a connection failed: {exc}", stacklevel=1)
        self._connections.clear()
        self._admin = None

    def _drop_everything(self) -> None:
        """Drop every object this run created: Snowflake objects, IAM roles, S3 objects."""
        failures: list[str] = []

        def attempt(what: str, action: Any) -> None:
            try:
                action()
            except Exception as exc:  # collect, report once
                failures.append(f"{what}: {exc}")

        if self._admin is not None:
            admin = self._admin
            attempt("schema", lambda: query(admin, f"DROP SCHEMA IF EXISTS {self.database}.{self.schema}"))
            for kind, name in reversed(self._account_objects):
                attempt(f"{kind} {name}", lambda k=kind, n=name: query(admin, f"DROP {k} IF EXISTS {n}"))
        for role in self._roles:
            attempt(f"role {role}", lambda r=role: self._delete_role(r))
        if self._wrote_objects:
            attempt("s3 objects", self._delete_objects)
        if failures:
            warnings.warn("conformance cleanup left objects behind: " + "; ".join(failures), stacklevel=1)

    def _delete_role(self, role: str) -> None:
        for policy in self.iam.list_role_policies(RoleName=role)["PolicyNames"]:
            self.iam.delete_role_policy(RoleName=role, PolicyName=policy)
        self.iam.delete_role(RoleName=role)

    def _delete_objects(self) -> None:
        keys = self.list_keys(f"{KEY_ROOT}/{self.run_id.lower()}/")
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})


def _load_time(row: Row) -> float:
    value = get(row, "LAST_LOAD_TIME")
    return value.timestamp() if isinstance(value, datetime) else 0.0


class StandInTarget(Target):
    """An account on the local stand-in, over the moto server the `standin` fixture emptied."""

    def __init__(self, standin: StandInLike, account_name: str, *, run_id: str | None = None) -> None:
        self.standin = standin
        self.is_live = False
        self.load_timeout = 5.0
        self.poll_interval = 0.1
        created = standin.control.create_account(account_name)
        account = AccountRef(
            name=str(created["name"]),
            user="ADMIN",
            password=STANDIN_ADMIN_PASSWORD,
            private_key=None,
            role="ACCOUNTADMIN",
            warehouse="COMPUTE_WH",
            database="FLOE_CONF",
        )
        super().__init__(account, bucket=STANDIN_BUCKET, run_id=run_id)
        self.iam_user_arn = str(created["iam_user_arn"])
        with contextlib.suppress(self.s3.exceptions.BucketAlreadyOwnedByYou):
            self.s3.create_bucket(Bucket=self.bucket)

    def _endpoint(self) -> dict[str, Any]:
        return {"host": self.standin.host, "port": self.standin.port, "protocol": "http"}

    def _ingest_endpoint(self) -> dict[str, Any]:
        return {"scheme": "http", "host": self.standin.host, "port": self.standin.port}

    def _create_database(self, conn: Connection) -> None:
        query(conn, f"CREATE DATABASE IF NOT EXISTS {self.database}")

    def aws_account_id(self) -> str:
        return "123456789012"  # moto's

    def process(self) -> None:
        self.control.drain(self.account.name)

    def settle(self) -> None:
        self.control.drain(self.account.name)

    @property
    def control(self) -> Control:
        return self.standin.control

    def stats(self) -> Mapping[str, Any] | None:
        return self.control.stats(self.account.name)

    def other_account(self) -> Target:
        other = StandInTarget(self.standin, "confb", run_id=self.run_id)
        self._children.append(other)
        return other


# The live target reads these (docs/conformance.md).
LIVE_ACCOUNT = "FLOE_LIVE_SNOWFLAKE_ACCOUNT"


def live_enabled() -> bool:
    return bool(os.environ.get(LIVE_ACCOUNT))


def _live_account(suffix: str = "") -> AccountRef | None:
    env = os.environ

    def var(name: str) -> str | None:
        return env.get(f"FLOE_LIVE_SNOWFLAKE_{name}{suffix}") or None

    def need(name: str) -> str:
        value = var(name)
        if not value:
            raise pytest.UsageError(f"FLOE_LIVE_SNOWFLAKE_{name}{suffix} must be set for a live run")
        return value

    account = var("ACCOUNT")
    if account is None:
        return None
    key_path = var("PRIVATE_KEY_PATH")
    private_key: bytes | None = None
    if key_path:
        with open(key_path, "rb") as fh:
            passphrase = var("PRIVATE_KEY_PASSPHRASE")
            key = serialization.load_pem_private_key(fh.read(), password=passphrase.encode() if passphrase else None)
        private_key = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    password = var("PASSWORD")
    if private_key is None and password is None:
        raise pytest.UsageError(
            f"set FLOE_LIVE_SNOWFLAKE_PASSWORD{suffix} or FLOE_LIVE_SNOWFLAKE_PRIVATE_KEY_PATH{suffix}"
        )
    return AccountRef(
        name=account,
        user=need("USER"),
        password=password,
        private_key=private_key,
        role=need("ROLE"),
        warehouse=need("WAREHOUSE"),
        database=need("DATABASE"),
    )


class LiveTarget(Target):
    """A real Snowflake account and real AWS; every object is namespaced by the run id and dropped."""

    def __init__(self, account: AccountRef, *, run_id: str | None = None) -> None:
        bucket = os.environ.get("FLOE_LIVE_S3_BUCKET")
        if not bucket:
            raise pytest.UsageError("FLOE_LIVE_S3_BUCKET must be set for a live run")
        self.is_live = True
        self.load_timeout = float(os.environ.get("FLOE_LIVE_LOAD_TIMEOUT_SECONDS", "300"))
        self.poll_interval = 5.0
        self.settle_seconds = float(os.environ.get("FLOE_LIVE_SETTLE_SECONDS", "60"))
        self.iam_timeout = float(os.environ.get("FLOE_LIVE_IAM_TIMEOUT_SECONDS", "120"))
        super().__init__(account, bucket=bucket, run_id=run_id)
        self._aws_account_id: str | None = None

    @classmethod
    def from_environment(cls) -> LiveTarget:
        account = _live_account()
        assert account is not None
        return cls(account)

    def _endpoint(self) -> dict[str, Any]:
        return {}

    def aws_account_id(self) -> str:
        if self._aws_account_id is None:
            self._aws_account_id = boto3.client("sts").get_caller_identity()["Account"]
        return self._aws_account_id

    def await_stage_readable(self, stage: str) -> list[Row]:
        deadline = time.monotonic() + self.iam_timeout
        while True:
            try:
                return self.list_stage(stage)
            except snowflake.connector.errors.DatabaseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(5)

    def process(self) -> None:
        """Snowpipe works on its own; wait_loaded polls COPY_HISTORY."""

    def settle(self) -> None:
        time.sleep(self.settle_seconds)

    def other_account(self) -> Target:
        account = _live_account("_B")
        if account is None:
            pytest.skip("needs a second account: set FLOE_LIVE_SNOWFLAKE_ACCOUNT_B and its _B variables")
        other = LiveTarget(account, run_id=self.run_id)
        self._children.append(other)
        return other


def error_text(exc: BaseException) -> str:
    """An error's message with its Snowflake error number, for assertion messages."""
    errno = getattr(exc, "errno", None)
    return f"[{errno}] {exc}" if errno else str(exc)

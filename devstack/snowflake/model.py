"""The state of one stand-in account: the objects fakesnow does not model."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from fakesnow.instance import FakeSnow

from .readings import TODAY, Reading

# Names are (database, schema, object) after identifier normalisation (docs/snowflake-facts.md §9).
QualifiedName = tuple[str, str, str]

SYSTEM_ROLES = ("ACCOUNTADMIN", "SECURITYADMIN", "USERADMIN", "SYSADMIN", "PUBLIC")
# The system role hierarchy: a role inherits the privileges of the roles listed under it.
SYSTEM_ROLE_CHILDREN = {
    "ACCOUNTADMIN": {"SECURITYADMIN", "SYSADMIN"},
    "SECURITYADMIN": {"USERADMIN"},
    "USERADMIN": {"PUBLIC"},
    "SYSADMIN": {"PUBLIC"},
}


def display(name: QualifiedName) -> str:
    return ".".join(name)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class User:
    name: str
    password: str | None = None
    rsa_public_key: str | None = None
    rsa_public_key_2: str | None = None
    type: str = "PERSON"
    default_role: str | None = None
    default_warehouse: str | None = None
    disabled: bool = False
    created_on: float = 0.0


@dataclass
class Grant:
    privilege: str
    granted_on: str
    name: str
    role: str
    granted_by: str
    created_on: float


@dataclass
class Role:
    name: str
    granted_roles: set[str] = field(default_factory=set)
    comment: str = ""
    created_on: float = 0.0


@dataclass
class Warehouse:
    name: str
    size: str = "X-Small"
    auto_suspend: int | None = 600
    auto_resume: bool = True
    state: str = "STARTED"
    last_active: float = 0.0
    created_on: float = 0.0
    resumed_on: float = 0.0
    comment: str = ""
    owner: str = "ACCOUNTADMIN"


@dataclass
class Integration:
    name: str
    role_arn: str
    external_id: str
    enabled: bool
    allowed_locations: list[str]
    blocked_locations: list[str]
    comment: str
    owner: str
    created_on: float
    id: str = field(default_factory=new_id)


@dataclass
class FileFormat:
    """Inline ``(TYPE = JSON …)`` options or a named format; options are uppercased keys."""

    options: dict[str, Any]
    format_name: QualifiedName | None = None


@dataclass
class NamedFileFormat:
    name: QualifiedName
    options: dict[str, Any]
    comment: str
    owner: str
    created_on: float


@dataclass
class Stage:
    name: QualifiedName
    url: str
    integration: str | None
    integration_id: str | None
    file_format: FileFormat | None
    comment: str
    owner: str
    created_on: float
    id: str = field(default_factory=new_id)


@dataclass
class CopySpec:
    """``COPY INTO <table> [(cols)] FROM @stage[/path] | (SELECT … FROM @stage[/path]) <options>``."""

    table: QualifiedName
    columns: list[str] | None
    select_exprs: list[str] | None
    stage: QualifiedName
    path: str
    file_format: FileFormat | None
    on_error: str | None
    pattern: str | None
    files: list[str] | None
    force: bool


@dataclass
class StagedFile:
    key: str
    relative_path: str
    size: int
    etag: str
    last_modified: float


@dataclass
class QueuedFile:
    file: StagedFile
    received_at: float


@dataclass
class LoadRecord:
    """One COPY_HISTORY row (docs/snowflake-facts.md §2)."""

    file_name: str
    stage_location: str
    table: QualifiedName
    status: str
    received_at: float
    last_load_time: float
    visible_at: float
    row_count: int | None = None
    row_parsed: int | None = None
    file_size: int = 0
    first_error_message: str | None = None
    first_error_line_number: int | None = None
    first_error_character_pos: int | None = None
    first_error_column_name: str | None = None
    error_count: int = 0
    error_limit: int = 1
    pipe: QualifiedName | None = None
    pipe_id: str | None = None
    # The file's path under its stage, as insertFiles names it: what the REST API matches on, whatever
    # name COPY_HISTORY shows (a reading may show it relative to the bucket, or URL-encoded).
    relative_path: str = ""


@dataclass
class Pipe:
    name: QualifiedName
    definition: str
    copy: CopySpec
    comment: str
    owner: str
    created_on: float
    stage_id: str
    paused: bool = False
    id: str = field(default_factory=new_id)
    # Snowpipe load metadata: path+name -> when it entered (docs/snowflake-facts.md §1: 14 days, path+name not eTag).
    load_metadata: dict[str, float] = field(default_factory=dict)
    # When each file's load finished (any status): the `requeue` reading skips a second queue entry.
    loaded_at: dict[str, float] = field(default_factory=dict)
    queue: list[QueuedFile] = field(default_factory=list)
    last_ingested_at: float | None = None
    last_ingested_path: str | None = None
    # SYSTEM$PIPE_STATUS `error`: why the pipe cannot run (a stall or a forced state), never a file's error.
    last_error: str | None = None
    last_error_at: float | None = None
    # A STALLED_* state the pipe fell into (e.g. the stage's role lost S3 access), cleared when it recovers.
    stall: str | None = None
    # An executionState forced through the control API (tests); None follows the model.
    forced_state: str | None = None


@dataclass
class RestSubmission:
    """A file named by a Snowpipe REST insertFiles call, as insertReport follows it."""

    pipe_id: str
    path: str
    stage_location: str
    size: int
    received_at: float
    done: bool = False


@dataclass
class RestEvent:
    """One insertReport event: a file submitted, or its load committed (``seq`` is the begin mark)."""

    seq: int
    at: float
    submission: RestSubmission


@dataclass
class SnowpipeRestState:
    """Per account: insertReport's events, REST call counters, injected REST faults, scan times."""

    submissions: list[RestSubmission] = field(default_factory=list)
    events: dict[str, list[RestEvent]] = field(default_factory=dict)  # pipe id -> its kept events
    dropped_through: dict[str, int] = field(default_factory=dict)  # pipe id -> newest seq no longer kept
    last_seq: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    fail_requests: int = 0
    fail_status: int = 503
    last_scan_at: dict[str, float] = field(default_factory=dict)  # pipe id -> loadHistoryScan time


@dataclass
class Settings:
    load_delay_seconds: float | None = None
    history_lag_seconds: float = 0.0
    statement_latency_seconds: float = 0.0
    login_latency_seconds: float = 0.0
    # Snowpipe REST loadHistoryScan: 429 when a pipe is scanned again sooner than this (stand-in clock).
    load_history_scan_interval_seconds: float = 60.0


@dataclass
class StatementRecord:
    kind: str
    sql: str
    used_warehouse: bool
    at: float


@dataclass
class Account:
    name: str
    iam_user_arn: str
    fakesnow: FakeSnow
    created_on: float
    users: dict[str, User] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    warehouses: dict[str, Warehouse] = field(default_factory=dict)
    integrations: dict[str, Integration] = field(default_factory=dict)
    file_formats: dict[QualifiedName, NamedFileFormat] = field(default_factory=dict)
    stages: dict[QualifiedName, Stage] = field(default_factory=dict)
    pipes: dict[QualifiedName, Pipe] = field(default_factory=dict)
    # Bulk COPY load metadata per table: file key -> (eTag, loaded at)
    # (docs/snowflake-facts.md §1: 64 days, eTag-sensitive).
    table_load_metadata: dict[QualifiedName, dict[str, tuple[str, float]]] = field(default_factory=dict)
    history: list[LoadRecord] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    reading: Reading = TODAY
    fail_requests: int = 0
    # Login requests answered HTTP 403, which the connector does not retry.
    reject_logins: int = 0
    fail_files: dict[str, str] = field(default_factory=dict)
    logins: int = 0
    warehouse_resumes: int = 0
    statements: list[StatementRecord] = field(default_factory=list)
    snowpipe_rest: SnowpipeRestState = field(default_factory=SnowpipeRestState)
    lock: threading.RLock = field(default_factory=threading.RLock)

"""One tick of one connection, up to where the idle path ends (docs/architecture.md draws it):
read the row, take the lease, list the live prefix, and report. Only a tick with files imports the busy
path (`loader.deliver`: secrets, the Snowflake connector, jinja2, tenacity), so an idle tick's cold start
pays for none of it.

The tick is stateless: everything it decides comes from the S3 listing, the pipe's load history and
the connection row, so a crash anywhere is repaired by the next tick.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from kernel import logs
from kernel.config import Settings
from kernel.connections import Connection, ConnectionStatus, ConnectionStore, Lease, UnknownConnection
from kernel.errors import FloeError, describe
from kernel.layout import Layout
from loader.plan import LiveFile
from loader.report import RunReport, RunStatus
from loader.storage import OrgStorage

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from loader.metrics import CoreMetrics

log = logs.get("tick")
LISTING_SECONDS = 60.0  # how long an organisation's session must still last for the idle path's listing


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Edges:
    """The tick's I/O, built per invocation: nothing in it carries one organisation into another's run."""

    settings: Settings
    store: ConnectionStore
    # Client makers: a client is made when first needed, so none is made that a tick does not use (with a
    # data role, the execution role's own S3 client; on an idle tick, a Secrets Manager client).
    s3: Callable[[], S3Client]
    secrets: Callable[[], SecretsManagerClient]
    metrics: CoreMetrics | None = None
    now: Callable[[], datetime] = _utcnow
    sleep: Callable[[float], None] = time.sleep
    # This connection's own S3 and Secrets Manager clients, given the seconds they must last
    # (loader.data_access, when FLOE_LOADER_DATA_ROLE_ARN is set); None: `s3` and `secrets` serve every tick.
    scope: Callable[[Connection, float], tuple[S3Client, Callable[[], SecretsManagerClient]]] | None = None

    def for_connection(self, connection: Connection, seconds: float) -> Edges:
        """The edges whose AWS clients reach only this connection's organisation for `seconds` more."""
        if self.scope is None:
            return self
        s3, secrets = self.scope(connection, seconds)
        return replace(self, s3=lambda: s3, secrets=secrets)


@dataclass(frozen=True)
class Work:
    """What the idle path hands the busy path: the connection under its lease and its live files."""

    run_id: str
    connection: Connection
    lease: Lease
    files: list[LiveFile]
    storage: OrgStorage
    layout: Layout

    @property
    def org_id(self) -> str:
        return self.connection.org_id


class Deadline:
    """The invocation's time budget: the Lambda's remaining time, or a fixed budget on the CLI."""

    def __init__(self, remaining: Callable[[], float]) -> None:
        self.remaining = remaining

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        end = time.monotonic() + seconds
        return cls(lambda: end - time.monotonic())

    def within(self, other: Deadline) -> Deadline:
        """Whichever of the two budgets ends first."""
        return Deadline(lambda: min(self.remaining(), other.remaining()))


def run_tick(connection_id: str, edges: Edges, deadline: Deadline, run_id: str | None = None) -> RunReport:
    report = RunReport(run_id=run_id or str(uuid.uuid4()), connection_id=connection_id, started_at=edges.now())
    lease: Lease | None = None
    try:
        connection = edges.store.get(connection_id)
        report.org_id = connection.org_id
        if skip := _skip_reason(connection):
            report.status, report.reason = RunStatus.SKIPPED, skip
        elif connection.target_moved:
            _fail(report, _moved_message(connection_id))
        elif (lease := _acquire(edges, connection_id, report.run_id)) is None:
            report.status, report.reason = RunStatus.SKIPPED, "another run holds this connection's lease"
        else:
            _work(report, connection, lease, edges, _within_lease(deadline, edges.settings))
    except UnknownConnection:
        _fail(report, f"unknown connection {connection_id!r}: check the id against `floe connection list`")
    except FloeError as error:  # expected: its message is ours and holds no secret
        _fail(report, describe(error))
        log.warning("tick failed", extra={"run_id": report.run_id, "connection_id": connection_id})
    except Exception as error:  # a bug: still one report; its text may hold anything, so only its type
        _fail(report, describe(error))
        log.error(
            "tick failed unexpectedly",
            extra={"run_id": report.run_id, "connection_id": connection_id},
            exc_info=True,
        )
    finally:
        if lease is not None:
            _release(edges, lease)
    report.completed_at = edges.now()
    if report.did_work and edges.metrics is not None:
        problem = edges.metrics.post(report.metrics())
        report.metrics_posted = problem is None
        if problem:
            report.warnings.append(f"metrics not sent to the core API: {problem}")
    return report


def _work(report: RunReport, connection: Connection, lease: Lease, edges: Edges, deadline: Deadline) -> None:
    # The idle path only lists: a warm process's cached session is enough for that, so a steady-state
    # idle tick sends no STS call (a listing needs far less than LISTING_SECONDS).
    listing_edges = edges.for_connection(connection, LISTING_SECONDS)
    layout = Layout(edges.settings.layout)
    listing = _storage(listing_edges, connection).list_live(layout)
    report.files_listed, report.files_ignored = len(listing.files), len(listing.ignored)
    oldest = min((file.last_modified for file in listing.files), default=None)
    report.lag_seconds = max(0.0, (edges.now() - oldest).total_seconds()) if oldest else 0.0
    if listing.ignored:
        report.warnings.append(f"{len(listing.ignored)} objects do not match the layout and were left alone")
    if not listing.files:
        report.status = RunStatus.IDLE
        return
    from loader.deliver import deliver  # the busy path: the idle path never pays for its imports

    busy_edges = edges.for_connection(connection, deadline.remaining())  # must last until the deadline
    work = Work(report.run_id, connection, lease, listing.files, _storage(busy_edges, connection), layout)
    report.record(deliver(work, busy_edges, deadline))


def _storage(edges: Edges, connection: Connection) -> OrgStorage:
    settings = edges.settings
    return OrgStorage(
        edges.s3(),
        settings.bucket,
        settings.live_prefix_for(connection.org_id),
        settings.dead_letter_prefix_for(connection.org_id),
    )


def _within_lease(deadline: Deadline, settings: Settings) -> Deadline:
    """A tick never outlives its lease: past its expiry another run may take the connection."""
    return deadline.within(Deadline.after(settings.lease_seconds - settings.time_margin_seconds))


def _skip_reason(connection: Connection) -> str | None:
    if not connection.active:
        return "connection is inactive (paused or torn down): `floe connection resume` loads it again"
    if connection.status != ConnectionStatus.READY:
        return f"connection is {connection.status}: finish `floe provision` first"
    return None


def _moved_message(connection_id: str) -> str:
    """The tick never moves a connection on its own: new target names are a provisioning change, made
    (and verified) by a person running provision. Until then it loads nothing, anywhere."""
    return (
        "the connection's database, schema or table differs from where it was provisioned; nothing was "
        f"loaded: run `floe provision --connection-id {connection_id}` to move it"
    )


def _acquire(edges: Edges, connection_id: str, run_id: str) -> Lease | None:
    return edges.store.acquire_lease(connection_id, run_id, timedelta(seconds=edges.settings.lease_seconds))


def _release(edges: Edges, lease: Lease) -> None:
    try:
        edges.store.release_lease(lease)
    except Exception:  # an unreleased lease only expires; it must not turn a good run into an error
        log.warning("lease not released", extra={"connection_id": lease.connection_id})


def _fail(report: RunReport, message: str) -> None:
    report.status, report.error = RunStatus.ERROR, message

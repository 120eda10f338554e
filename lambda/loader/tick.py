"""One tick of one connection (docs/architecture.md draws it): list, submit, follow, settle, report.

The tick is stateless: everything it decides comes from the S3 listing, the pipe's load history and
the connection row, so a crash anywhere is repaired by the next tick.

Cold start: what only a tick with files needs (secrets, SQL rendering and jinja2, provisioning, the
Snowpipe client, tenacity, the Snowflake connector) is imported where it is used, so the idle path
imports none of it (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kernel import logs, snowflake_session
from kernel.config import Settings, aws_account_id
from kernel.connections import Connection, ConnectionStatus, ConnectionStore, Lease, UnknownConnection
from loader.plan import (
    HISTORY_RETENTION,
    Decision,
    FilePlan,
    Layout,
    LiveFile,
    found_in_table,
    history_start,
    latest_records,
    needs_history_first,
    plan_files,
    stranded,
    unsettled,
)
from loader.report import RunReport, RunStatus
from loader.storage import DeadLetterEntry, OrgStorage

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from snowflake.connector import SnowflakeConnection
    from tenacity import RetryCallState

    from kernel.render import Target
    from kernel.secrets import SnowflakeCredentials
    from loader.metrics import CoreMetrics
    from loader.snowpipe import PipeStatus, Snowpipe

log = logs.get("tick")

OpenSession = Callable[[Connection, "SnowflakeCredentials", Settings, str], "SnowflakeConnection"]


def _open_session(
    connection: Connection, credentials: SnowflakeCredentials, settings: Settings, query_tag: str
) -> SnowflakeConnection:
    return snowflake_session.open_session(connection, credentials, settings, query_tag=query_tag)


def _target_for(connection: Connection, settings: Settings) -> Target:
    from kernel.render import Target

    return Target.from_connection(connection, settings, aws_account_id(settings))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Edges:
    """The tick's I/O, built per invocation: nothing in it carries one organisation into another's run."""

    settings: Settings
    store: ConnectionStore
    s3: S3Client
    secrets: SecretsManagerClient
    metrics: CoreMetrics | None = None
    open_session: OpenSession = _open_session
    now: Callable[[], datetime] = _utcnow
    sleep: Callable[[float], None] = time.sleep
    target_for: Callable[[Connection, Settings], Target] = field(default=_target_for)


class Deadline:
    """The invocation's time budget: the Lambda's remaining time, or a fixed budget on the CLI."""

    def __init__(self, remaining: Callable[[], float]) -> None:
        self.remaining = remaining

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        end = time.monotonic() + seconds
        return cls(lambda: end - time.monotonic())


def run_tick(connection_id: str, edges: Edges, deadline: Deadline) -> RunReport:
    report = RunReport(run_id=str(uuid.uuid4()), connection_id=connection_id, started_at=edges.now())
    lease: Lease | None = None
    try:
        connection = edges.store.get(connection_id)
        report.org_id = connection.org_id
        if skip := _skip_reason(connection):
            report.status, report.reason = RunStatus.SKIPPED, skip
        elif (lease := _acquire(edges, connection_id, report.run_id)) is None:
            report.status, report.reason = RunStatus.SKIPPED, "another run holds this connection's lease"
        else:
            _deliver(report, connection, lease, edges, _within_lease(deadline, edges.settings))
    except UnknownConnection:
        _fail(report, f"unknown connection {connection_id!r}: check the id, or create it with `floe provision`")
    except Exception as error:  # every failure becomes a report; the next tick repairs what is left
        _fail(report, _describe(error))
        log.warning("tick failed", extra={"run_id": report.run_id, "connection_id": connection_id}, exc_info=True)
    finally:
        if lease is not None:
            _release(edges, lease)
    report.completed_at = edges.now()
    if report.did_work and edges.metrics is not None:
        report.metrics_posted = edges.metrics.post(report.metrics())
    return report


def _within_lease(deadline: Deadline, settings: Settings) -> Deadline:
    """A tick never outlives its lease: past its expiry another run may take the connection."""
    lease = Deadline.after(settings.lease_seconds - settings.time_margin_seconds)
    return Deadline(lambda: min(deadline.remaining(), lease.remaining()))


def _skip_reason(connection: Connection) -> str | None:
    if not connection.active:
        return "connection is inactive"
    if connection.status != ConnectionStatus.READY:
        return f"connection is {connection.status}: finish `floe provision` first"
    return None


def _acquire(edges: Edges, connection_id: str, run_id: str) -> Lease | None:
    return edges.store.acquire_lease(connection_id, run_id, timedelta(seconds=edges.settings.lease_seconds))


def _release(edges: Edges, lease: Lease) -> None:
    try:
        edges.store.release_lease(lease)
    except Exception:  # an unreleased lease only expires; it must not turn a good run into an error
        log.warning("lease not released", extra={"connection_id": lease.connection_id}, exc_info=True)


def _fail(report: RunReport, message: str) -> None:
    report.status, report.error = RunStatus.ERROR, message


def _describe(error: Exception) -> str:
    # Our own errors carry no secret material by construction; others are cut to their first line.
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:500]}"


def _deliver(report: RunReport, connection: Connection, lease: Lease, edges: Edges, deadline: Deadline) -> None:
    settings = edges.settings
    storage = OrgStorage(
        edges.s3,
        settings.bucket,
        settings.live_prefix_for(connection.org_id),
        settings.dead_letter_prefix_for(connection.org_id),
    )
    layout = Layout(settings.layout)
    listing = storage.list_live(layout)
    report.files_listed, report.files_ignored = len(listing.files), len(listing.ignored)
    if listing.ignored:
        report.warnings.append(f"{len(listing.ignored)} objects do not match the layout and were left alone")
    if not listing.files:
        report.status = RunStatus.IDLE
        return
    from kernel.secrets import read_credentials
    from loader.snowpipe import Snowpipe

    target = edges.target_for(connection, settings)  # a target that cannot render fails before any login
    credentials = read_credentials(connection.secret_ref, edges.secrets)
    tag = json.dumps({"app": "floe", "connection_id": connection.connection_id, "run_id": report.run_id})
    session = edges.open_session(connection, credentials, settings, tag)
    pipe = Snowpipe(session, target, settings.retry_attempts)
    try:
        _keep_current(report, connection, lease, pipe=pipe, files=listing.files, edges=edges)
        _load(report, listing.files, pipe=pipe, storage=storage, layout=layout, edges=edges, deadline=deadline)
    finally:
        report.snowflake_statements = pipe.statements
        session.close()


def _keep_current(
    report: RunReport, connection: Connection, lease: Lease, *, pipe: Snowpipe, files: list[LiveFile], edges: Edges
) -> None:
    """Re-create stage and pipe when the templates changed; the row's version is the only check on the
    steady-state path (no Snowflake statement). A changed pipe waits until the old one has settled."""
    from kernel.render import template_version
    from provisioner.provision import ProvisionState, ensure_current

    if connection.template_version == template_version(pipe.target):
        return

    def has_unsettled_files() -> bool:
        return _old_pipe_busy(pipe, files, edges.now())

    outcome = ensure_current(pipe.session, pipe.target, connection, lease, has_unsettled_files, store=edges.store)
    if outcome.state is ProvisionState.ERROR:
        raise ProvisionFailed(f"bringing stage and pipe to template v{outcome.template_version}: {outcome.detail}")
    if outcome.state is ProvisionState.DEFERRED:
        report.warnings.append(outcome.detail)


def _old_pipe_busy(pipe: Snowpipe, files: list[LiveFile], now: datetime) -> bool:
    """Re-creating a pipe forgets its load history (snowflake-facts.md §5), so it waits while the old pipe
    has queued files, a listed file has a load record (not yet settled), or a listed file without a record
    is older than the pipe's last ingestion (its record may still be on its way)."""
    status = pipe.status()
    if status.pending_file_count:
        return True
    records = latest_records(pipe.history(history_start(files, now)))
    if any(f.key in records for f in files):
        return True
    last = status.last_ingested
    return last is not None and any(f.last_modified <= last for f in files)


class ProvisionFailed(RuntimeError):
    """Stage or pipe could not be brought to the current template version."""


def _load(
    report: RunReport,
    files: list[LiveFile],
    *,
    pipe: Snowpipe,
    storage: OrgStorage,
    layout: Layout,
    edges: Edges,
    deadline: Deadline,
) -> None:
    from loader.snowpipe import RefreshSubmitter

    now = edges.now()
    history = latest_records(pipe.history(history_start(files, now))) if needs_history_first(files, now) else {}
    plans = plan_files(files, history, now)
    for plan in plans:
        if plan.restage:
            storage.restage(plan.file.key)
            report.files_restaged += 1
    if early := _loaded_before_pipe(pipe, plans):
        _settle(report, early, storage)  # before REFRESH, which would send them again
        settled = {p.file.key for p in early}
        files = [f for f in files if f.key not in settled]
        plans = [p for p in plans if p.file.key not in settled]
    sent: frozenset[str] = frozenset()
    if any(p.decision is Decision.SEND for p in plans):
        sent = RefreshSubmitter(pipe).submit(layout.fixed_head)
    report.files_sent = len(sent)
    plans = _follow(pipe, files, sent, edges, deadline)
    plans = _with_stranded(report, plans, sent, pipe, edges)
    _settle(report, plans, storage)


def _loaded_before_pipe(pipe: Snowpipe, plans: list[FilePlan]) -> list[FilePlan]:
    """Files staged before the pipe was (re-)created may have been loaded by an earlier pipe whose load
    history is gone (snowflake-facts.md §5), and REFRESH would send them again. The table's lineage says
    which. Costs one SHOW (no warehouse) per busy tick; the lineage query runs only when such files exist."""
    candidates = [p for p in plans if p.decision is Decision.SEND]
    if not candidates:
        return []
    created = pipe.created_on()
    if created is not None:
        created = created.replace(microsecond=0)  # S3's LastModified has whole seconds
    return _in_table(pipe, [p for p in candidates if created is None or p.file.last_modified < created])


def _in_table(pipe: Snowpipe, plans: list[FilePlan]) -> list[FilePlan]:
    """Those of `plans` whose rows the table already holds, as DELETE plans (`plan.found_in_table`)."""
    if not plans:
        return []
    # Snowflake's own memory of a load ends after 14 days (snowflake-facts.md §1, §2); so does this look.
    since = datetime.now(UTC) - HISTORY_RETENTION
    return found_in_table(plans, pipe.rows_in_table([p.file.key for p in plans], since))


def _follow(
    pipe: Snowpipe, files: list[LiveFile], sent: frozenset[str], edges: Edges, outer: Deadline
) -> list[FilePlan]:
    """Poll COPY_HISTORY (one query per poll, all files) with exponential backoff until every sent or
    in-progress file is terminal, or the time budget (less the margin) runs out."""
    from tenacity import Retrying, retry_if_result, wait_exponential

    settings = edges.settings
    start = history_start(files, edges.now())
    # Files still loading are the next tick's; following them for the Lambda's whole life only burns
    # warehouse time (a paused pipe would keep the tick polling).
    following = Deadline.after(settings.follow_seconds)
    deadline = Deadline(lambda: min(outer.remaining(), following.remaining()))
    if sent:
        edges.sleep(max(0.0, min(settings.poll_first_seconds, deadline.remaining() - settings.time_margin_seconds)))

    def poll() -> list[FilePlan]:
        return plan_files(files, latest_records(pipe.history(start)), edges.now())

    def out_of_time(state: RetryCallState) -> bool:
        return deadline.remaining() - (state.upcoming_sleep or 0.0) < settings.time_margin_seconds

    retrying = Retrying(
        sleep=edges.sleep,
        retry=retry_if_result(lambda plans: bool(unsettled(plans, sent))),
        wait=wait_exponential(multiplier=settings.poll_first_seconds or 0.1, max=settings.poll_max_seconds),
        stop=out_of_time,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else [],
    )
    result: list[FilePlan] = retrying(poll)
    return result


def _with_stranded(
    report: RunReport, plans: list[FilePlan], sent: frozenset[str], pipe: Snowpipe, edges: Edges
) -> list[FilePlan]:
    """Ask the pipe's state only when something is off: files still waiting, or files REFRESH ignores."""
    stranded_after = timedelta(seconds=edges.settings.stranded_after_seconds)
    now = edges.now()
    waiting = [p for p in plans if p.decision in (Decision.WAIT, Decision.SEND)]
    old_unsent = [p for p in waiting if p.file.key not in sent and now - p.file.last_modified >= stranded_after]
    if not waiting:
        return plans
    status: PipeStatus | None = pipe.status() if old_unsent or unsettled(plans, sent) else None
    if status is not None:
        report.pipe_state = status.execution_state
        if not status.running:
            _fail(
                report,
                f"pipe {pipe.target.pipe} is {status.execution_state}: {len(waiting)} files wait. "
                f"Resume it with ALTER PIPE {pipe.target.qualified_pipe} SET PIPE_EXECUTION_PAUSED = FALSE",
            )
            return plans
    if status is None or not old_unsent:
        return plans
    candidates = stranded(plans, sent, status.pending_file_count, now, stranded_after)
    # A stranded file may have loaded with its COPY_HISTORY record still on its way: the table decides.
    loaded = {p.file.key: p for p in _in_table(pipe, candidates)}
    replaced = {p.file.key: loaded.get(p.file.key, p) for p in candidates}
    return [replaced.get(p.file.key, p) for p in plans]


def _settle(report: RunReport, plans: list[FilePlan], storage: OrgStorage) -> None:
    loaded = [p for p in plans if p.decision is Decision.DELETE]
    failed = [p for p in plans if p.decision is Decision.DEAD_LETTER]
    if failed:
        entries = storage.copy_to_dead_letter(failed)
        copied = {entry.original_key for entry in entries}
        if len(copied) < len(failed):
            report.warnings.append(f"S3 refused {len(failed) - len(copied)} dead-letter copies; they stay live")
        failed = [p for p in failed if p.file.key in copied]
    if failed:
        report.dead_letter_manifest = storage.write_manifest(report.run_id, _manifest(report, entries))
        report.files_dead_lettered += len(failed)
        report.dead_lettered_batches = 1
    settled = loaded + failed
    refused = set(storage.delete([p.file.key for p in settled])) if settled else set()
    report.files_loaded += sum(1 for p in loaded if p.file.key not in refused)
    report.events_delivered += sum(p.record.row_count for p in settled if p.record and p.file.key not in refused)
    report.files_in_flight += sum(1 for p in plans if p.decision in (Decision.WAIT, Decision.SEND)) + len(refused)
    if refused:
        report.warnings.append(f"S3 refused to delete {len(refused)} settled files; the next tick retries")
    if report.status is RunStatus.OK and report.files_in_flight:
        report.status = RunStatus.PARTIAL
        report.reason = f"{report.files_in_flight} files still in flight; the next tick follows them"


def _manifest(report: RunReport, entries: list[DeadLetterEntry]) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "connection_id": report.connection_id,
        "organisation_id": report.org_id,
        "dead_lettered_at": datetime.now(UTC).isoformat(),
        "files": [entry.__dict__ for entry in entries],
    }

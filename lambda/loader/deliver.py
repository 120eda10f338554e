"""The busy path of a tick: log in, keep stage and pipe current, submit, follow, settle.

Imported by `loader.tick` only when the live prefix holds files. Each step returns what it found; the
tick writes the resulting `Delivery` into its report.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_result, wait_exponential

from kernel import snowflake_session
from kernel.config import LoadMode, Settings, aws_account_id
from kernel.connections import LeaseLost
from kernel.errors import FloeError
from kernel.render import PROVISION_KINDS, Target, ident, template_version
from kernel.secrets import read_credentials
from kernel.snowflake_session import SnowflakeError
from loader.budget import Budget, OutOfTime
from loader.pipe_states import pipe_state_message
from loader.plan import (
    HISTORY_RETENTION,
    Decision,
    FilePlan,
    LiveFile,
    LoadRecord,
    LoadStatus,
    found_in_table,
    history_start,
    latest_records,
    plan_files,
    settle_due,
    stranded,
    unsettled,
)
from loader.retries import RetryPolicy, retry_key, with_retries
from loader.snowpipe import RefreshSubmitter, Snowpipe
from loader.tick import Deadline, Edges, Work
from provisioner.provision import ProvisionState, apply_objects, deferred, plan_objects

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from kernel.snowflake_objects import PipeStatus
    from loader.snowpipe_rest import RestPipe
    from loader.snowpipe_rest import Submission as RestSubmission
    from loader.storage import DeadLetterEntry, OrgStorage


class ProvisionFailed(FloeError):
    """Stage or pipe could not be brought to the current template version."""


@dataclass
class Settlement:
    """What settling moved: counted when a file is deleted from the live prefix (the commit point)."""

    files_loaded: int = 0
    events_delivered: int = 0
    files_dead_lettered: int = 0
    dead_letter_manifest: str | None = None
    files_in_flight: int = 0
    warnings: list[str] = field(default_factory=list)

    def add(self, other: Settlement) -> None:
        self.files_loaded += other.files_loaded
        self.events_delivered += other.events_delivered
        self.files_dead_lettered += other.files_dead_lettered
        self.dead_letter_manifest = other.dead_letter_manifest or self.dead_letter_manifest
        self.files_in_flight += other.files_in_flight
        self.warnings += other.warnings


@dataclass
class Delivery:
    """What a busy tick did, for the report."""

    files_sent: int = 0
    files_restaged: int = 0
    settlement: Settlement = field(default_factory=Settlement)
    snowflake_statements: int = 0
    warehouse_statements: int = 0
    pipe_state: str | None = None
    error: str | None = None  # the connection needs a person (e.g. a paused pipe); files stay live
    out_of_time: str | None = None  # the run stopped before a Snowflake step to keep its time budget
    warnings: list[str] = field(default_factory=list)


def deliver(work: Work, edges: Edges, deadline: Deadline) -> Delivery:
    settings, connection = edges.settings, work.connection
    target = Target.from_connection(connection, settings, aws_account_id(settings))  # fails before a login
    credentials = read_credentials(connection.secret_ref, edges.secrets())
    tag = json.dumps({"app": "floe", "connection_id": connection.connection_id, "run_id": work.run_id})
    budget = Budget(deadline, settings.time_margin_seconds)
    delivery = Delivery()
    try:
        session = budget.spend(
            "the login",
            lambda seconds: snowflake_session.open_session(
                connection, credentials, settings, query_tag=tag, timeout_seconds=seconds
            ),
        )
    except OutOfTime as stop:
        return _stopped(delivery, work, stop)
    pipe = Snowpipe(session, target, settings.retry_attempts, budget, frozenset(f.key for f in work.files))
    try:
        if warning := _keep_current(work, pipe, edges):
            delivery.warnings.append(warning)
        if connection.mode(settings.load_mode) is LoadMode.REST:
            from loader.snowpipe_rest import RestPipe  # REST mode only: snowflake-ingest stays off REFRESH's path

            rest = RestPipe(connection, credentials, settings, target, deadline)
            _load_rest(delivery, work, pipe, edges, deadline, rest=rest)
        else:
            _load(delivery, work, pipe, edges, deadline)
    except OutOfTime as stop:
        _stopped(delivery, work, stop)
    finally:
        delivery.snowflake_statements = pipe.statements
        delivery.warehouse_statements = pipe.warehouse_statements
        session.close()
    return delivery


def _stopped(delivery: Delivery, work: Work, stop: OutOfTime) -> Delivery:
    """Out of time before a Snowflake step: every file not settled yet stays live for the next tick."""
    settled = delivery.settlement.files_loaded + delivery.settlement.files_dead_lettered
    delivery.settlement.files_in_flight = len(work.files) - settled
    delivery.out_of_time = str(stop)
    return delivery


def _keep_current(work: Work, pipe: Snowpipe, edges: Edges) -> str | None:
    """Re-create stage and pipe when the templates changed; the row's version is the only check on the
    steady-state path (no Snowflake statement). A changed pipe waits until the old one has settled.
    Returns a warning when the change must wait."""
    connection = work.connection
    if connection.template_version == template_version(pipe.target):
        return None
    # SHOW for each object, then at most one DDL each (provisioner's own statements, not Snowpipe.run's).
    pipe.budget.check("keeping stage and pipe current", requests=2 * len(PROVISION_KINDS))
    plan = plan_objects(pipe.session, pipe.target)
    if plan.recreates_existing_pipe and _old_pipe_busy(pipe, work.files, edges.now()):
        return deferred(connection.connection_id, pipe.target, plan).detail
    outcome = apply_objects(pipe.session, pipe.target, connection, work.lease, plan, store=edges.store)
    if outcome.state is ProvisionState.ERROR:
        raise ProvisionFailed(f"bringing stage and pipe to template v{outcome.template_version}: {outcome.detail}")
    return None


def _old_pipe_busy(pipe: Snowpipe, files: list[LiveFile], now: datetime) -> bool:
    """Re-creating a pipe forgets its load history (docs/snowflake-facts.md §5), so it waits while the old
    pipe has queued files, a listed file has a load record (not yet settled), or a listed file without a
    record is older than the pipe's last ingestion (its record may still be on its way)."""
    status = pipe.status()
    if status.pending_file_count:
        return True
    records = latest_records(pipe.history(history_start(files, now)))
    if any(f.key in records for f in files):
        return True
    last = status.last_ingested
    return last is not None and any(f.last_modified <= last for f in files)


def _load(delivery: Delivery, work: Work, pipe: Snowpipe, edges: Edges, deadline: Deadline) -> None:
    files, storage = work.files, work.storage
    now = edges.now()
    # COPY_HISTORY needs a warehouse: between settles (FLOE_SETTLE_INTERVAL) the tick only submits.
    settling = _settling(work, edges, files, now)
    history = latest_records(pipe.history(history_start(files, now))) if settling else {}
    plans = _with_retries(None, plan_files(files, history, now), edges.settings, now)
    # Files with a terminal record settle before REFRESH: where REFRESH resends a failed file (reading
    # failed-resent, docs/snowflake-standin.md), dead-lettering it after that REFRESH could also load it.
    terminal = [p for p in plans if p.decision in _TERMINAL]
    plans = _settle_early(delivery, _batch(work), storage, plans, terminal, manifest=f"{work.run_id}-before-refresh")
    # Loaded files Snowpipe forgot are settled before the step that would load them again.
    plans = _settle_early(delivery, _batch(work), storage, plans, _loaded_beyond_history(pipe, plans, now))
    delivery.files_restaged = _restage(plans, storage)
    plans = _settle_early(delivery, _batch(work), storage, plans, _loaded_before_pipe(pipe, plans))
    files = [p.file for p in plans]
    submission = _submit(pipe, work, [p.file for p in plans if p.decision is Decision.SEND])
    if submission is None:  # the pipe does not run: the report says what to do, every file stays live
        status = pipe.status()
        delivery.pipe_state = status.execution_state
        delivery.error = _stopped_pipe(pipe, status, plans, work.connection.connection_id)
        return
    delivery.files_sent = len(submission.sent)
    if not settling:
        delivery.settlement.files_in_flight = len(files)  # REFRESH queued them; a later tick settles
        return
    plans = _follow(pipe, files, edges, deadline, submission)
    _finish(delivery, work, plans, pipe, edges, submission=submission)
    _record_settled(work, edges, now)


def _finish(
    delivery: Delivery, work: Work, plans: list[FilePlan], pipe: Snowpipe, edges: Edges, *, submission: Submission
) -> None:
    """Both modes' last step: the pipe's status only if something is off, stranded files, retries, settle."""
    try:
        plans = _check_pipe(delivery, pipe, plans, edges, submission, connection_id=work.connection.connection_id)
    except OutOfTime as stop:  # what follow found still settles: it needs S3 only
        delivery.out_of_time = str(stop)
    plans = _with_retries(delivery, plans, edges.settings, edges.now())
    delivery.settlement.add(_settle(_batch(work), plans, work.storage))


def _batch(work: Work) -> dict[str, str]:
    return {"run_id": work.run_id, "connection_id": work.connection.connection_id, "organisation_id": work.org_id}


def _settling(work: Work, edges: Edges, files: list[LiveFile], now: datetime) -> bool:
    """REFRESH needs no warehouse, COPY_HISTORY does: settle only every FLOE_SETTLE_INTERVAL seconds."""
    interval = timedelta(seconds=edges.settings.settle_interval_seconds)
    return settle_due(files, work.connection.last_settled_at, now, interval)


def _record_settled(work: Work, edges: Edges, at: datetime) -> None:
    """On the row, fenced by the lease: the tick is stateless but for its connection row. Only the
    warehouse's cost depends on it, so a lost lease is no reason to fail a run that settled."""
    with contextlib.suppress(LeaseLost):
        edges.store.set_last_settled(work.connection.connection_id, at, work.lease)


@dataclass(frozen=True)
class Submission:
    sent: frozenset[str]  # the files REFRESH says it queued
    watched: frozenset[str]  # the files it may have queued: `sent`, or all, if it printed nothing


def _submit(pipe: Snowpipe, work: Work, to_send: list[LiveFile]) -> Submission | None:
    """REFRESH; None when it failed because the pipe is not running (a STOPPED_* pipe refuses REFRESH)."""
    submitter = RefreshSubmitter(pipe, work.layout.fixed_head)
    try:
        sent = submitter.submit(to_send)
    except SnowflakeError:
        if pipe.status().running:
            raise
        return None
    # A REFRESH that printed nothing may still have queued any of them (reading refresh-silent).
    return Submission(sent, frozenset(f.key for f in to_send) if submitter.silent else sent)


_TERMINAL = (Decision.DELETE, Decision.DEAD_LETTER, Decision.RETRY)


def _with_retries(
    delivery: Delivery | None, plans: list[FilePlan], settings: Settings, now: datetime
) -> list[FilePlan]:
    """Failed loads to retry, to wait for, or to dead-letter (loader.retries); a failure shared by every
    failed file is the connection's error, reported into `delivery` (the tick's last judgement only:
    before REFRESH, files loading this tick are not known yet)."""
    policy = RetryPolicy(settings.load_retries, timedelta(seconds=settings.load_retry_backoff_seconds))
    plans, systemic = with_retries(plans, policy, now)
    if delivery is not None:
        delivery.error = delivery.error or systemic
    return plans


def _check_pipe(
    delivery: Delivery,
    pipe: Snowpipe,
    plans: list[FilePlan],
    edges: Edges,
    submission: Submission,
    *,
    connection_id: str,
) -> list[FilePlan]:
    """A stopped pipe is the connection's error; a running one may have stranded files."""
    status = _status_if_needed(pipe, plans, submission.watched, edges.now(), edges.settings.stranded_after_seconds)
    if status is None:
        return plans
    delivery.pipe_state = status.execution_state
    if not status.running:
        delivery.error = _stopped_pipe(pipe, status, plans, connection_id)
        return plans
    return _with_stranded(plans, submission.sent, status, pipe, edges)


def _settle_early(
    delivery: Delivery,
    batch: dict[str, str],
    storage: OrgStorage,
    plans: list[FilePlan],
    early: list[FilePlan],
    *,
    manifest: str = "",
) -> list[FilePlan]:
    """Settle `early` now (`manifest`: the name of its dead-letter manifest, if it has failed files);
    returns the plans left for the rest of the tick."""
    if not early:
        return plans
    delivery.settlement.add(_settle(batch, early, storage, manifest))
    settled = {p.file.key for p in early}
    return [p for p in plans if p.file.key not in settled]


def _loaded_beyond_history(pipe: Snowpipe, plans: list[FilePlan], now: datetime) -> list[FilePlan]:
    """A file older than COPY_HISTORY's 14 days (and the pipe's load metadata, docs/snowflake-facts.md §1,
    §2) without a record may have loaded long ago and failed to delete ever since: re-staged, it would
    load again. The table's lineage has no such limit, so it is asked, without a time cut-off, before
    any re-staging (one statement per MAX_FILE_NAMES such files; none on the usual path)."""
    forgotten = [p for p in plans if p.restage and p.record is None and now - p.file.last_modified >= HISTORY_RETENTION]
    if not forgotten:
        return []
    return found_in_table(forgotten, pipe.rows_in_table([p.file.key for p in forgotten], since=None))


def _restage(plans: list[FilePlan], storage: OrgStorage) -> int:
    restaged = [p for p in plans if p.restage]
    for plan in restaged:
        storage.restage(plan.file.key)
    return len(restaged)


def _loaded_before_pipe(pipe: Snowpipe, plans: list[FilePlan]) -> list[FilePlan]:
    """Files staged before the pipe was (re-)created may have been loaded by an earlier pipe whose load
    history is gone (docs/snowflake-facts.md §5), and REFRESH would send them again. The table's lineage
    says which. Costs one SHOW (no warehouse) per busy tick; the lineage query runs only when such files
    exist."""
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
    # Snowflake's own memory of a load ends after 14 days (docs/snowflake-facts.md §1, §2); so does this.
    since = datetime.now(UTC) - HISTORY_RETENTION
    return found_in_table(plans, pipe.rows_in_table([p.file.key for p in plans], since))


def _follow(
    pipe: Snowpipe, files: list[LiveFile], edges: Edges, outer: Deadline, submission: Submission
) -> list[FilePlan]:
    """Poll COPY_HISTORY (one query per poll, all files) until every watched or in-progress file is
    terminal. A watched file REFRESH did not name is followed only while the pipe runs and has files
    pending."""
    watched, sent = submission.watched, submission.sent
    start = history_start(files, edges.now())

    def poll() -> list[FilePlan]:
        return plan_files(files, latest_records(pipe.history(start)), edges.now())

    settled = [-1]  # files terminal at the last poll

    def waiting(plans: list[FilePlan]) -> bool:
        open_plans = unsettled(plans, watched)
        previous, settled[0] = settled[0], len(plans) - len(open_plans)
        if not open_plans or any(p.record is not None or p.file.key in sent for p in open_plans):
            return bool(open_plans)
        # Only files a silent REFRESH may have queued are open: follow them while polls show progress,
        # else while the pipe runs with files pending.
        if settled[0] > previous:
            return True
        status = pipe.status()
        return status.running and status.pending_file_count > 0

    # The budget must cover the next poll and, after following, the pipe's status (a stalled pipe is
    # reported from it).
    fits = partial(pipe.budget.covers, 2)  # covers(requests, after_seconds)
    return _poll_while(poll, waiting, edges, outer, submitted=bool(watched), fits=fits)


def _poll_while(
    poll: Callable[[], list[FilePlan]],
    waiting: Callable[[list[FilePlan]], bool],
    edges: Edges,
    outer: Deadline,
    *,
    submitted: bool,
    fits: Callable[[float], bool] = lambda _sleep: True,
) -> list[FilePlan]:
    """Both modes' follow-up: after the first poll interval (when anything was submitted), poll with
    exponential backoff while `waiting`, within FLOE_FOLLOW_SECONDS and the budget less the margin, and
    while `fits(the next sleep)`; the last poll's plans."""
    settings = edges.settings
    # Files still loading are the next tick's; following them for the Lambda's whole life only burns
    # warehouse time (a paused pipe would keep the tick polling).
    deadline = outer.within(Deadline.after(settings.follow_seconds))
    if submitted:
        edges.sleep(max(0.0, min(settings.poll_first_seconds, deadline.remaining() - settings.time_margin_seconds)))

    def out_of_time(state: RetryCallState) -> bool:
        sleep = state.upcoming_sleep or 0.0
        return deadline.remaining() - sleep < settings.time_margin_seconds or not fits(sleep)

    retrying = Retrying(
        sleep=edges.sleep,
        retry=retry_if_result(waiting),
        wait=wait_exponential(multiplier=settings.poll_first_seconds or 0.1, max=settings.poll_max_seconds),
        stop=out_of_time,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else [],
    )
    plans: list[FilePlan] = retrying(poll)
    return plans


def _status_if_needed(
    pipe: Snowpipe, plans: list[FilePlan], sent: frozenset[str], now: datetime, stranded_after_seconds: float
) -> PipeStatus | None:
    """Ask the pipe's state only when something is off: files still waiting, or files REFRESH ignores."""
    stranded_after = timedelta(seconds=stranded_after_seconds)
    waiting = [p for p in plans if p.decision in (Decision.WAIT, Decision.SEND)]
    old_unsent = [p for p in waiting if p.file.key not in sent and now - p.file.last_modified >= stranded_after]
    if not waiting or not (old_unsent or unsettled(plans, sent)):
        return None
    return pipe.status()


def _stopped_pipe(pipe: Snowpipe, status: PipeStatus, plans: list[FilePlan], connection_id: str) -> str:
    return pipe_state_message(
        status.execution_state,
        status.error,
        pipe=pipe.target.pipe,
        qualified_pipe=ident(pipe.target.qualified_pipe).text,
        connection_id=connection_id,
        waiting=sum(1 for p in plans if p.decision in (Decision.WAIT, Decision.SEND)),
    )


def _with_stranded(
    plans: list[FilePlan], sent: frozenset[str], status: PipeStatus, pipe: Snowpipe, edges: Edges
) -> list[FilePlan]:
    """Files REFRESH will not send while the pipe has nothing pending, past the grace period, are
    dead-lettered, unless the table shows they loaded (their COPY_HISTORY record may be on its way)."""
    stranded_after = timedelta(seconds=edges.settings.stranded_after_seconds)
    candidates = stranded(plans, sent, status.pending_file_count, edges.now(), stranded_after)
    loaded = {p.file.key: p for p in _in_table(pipe, candidates)}
    replaced = {p.file.key: loaded.get(p.file.key, p) for p in candidates}
    return [replaced.get(p.file.key, p) for p in plans]


def _settle(batch: dict[str, str], plans: list[FilePlan], storage: OrgStorage, manifest: str = "") -> Settlement:
    """Delete loaded files; copy failed ones to the dead-letter prefix with a manifest (named `manifest`,
    else the run id: a tick may settle more than once), then delete them. A file whose copy or delete S3
    refuses stays live, counted in flight."""
    result = Settlement()
    loaded = [p for p in plans if p.decision is Decision.DELETE]
    failed = [p for p in plans if p.decision is Decision.DEAD_LETTER]
    if failed:
        entries = storage.copy_to_dead_letter(failed)
        copied = {entry.original_key for entry in entries}
        if len(copied) < len(failed):
            result.warnings.append(f"S3 refused {len(failed) - len(copied)} dead-letter copies; they stay live")
        failed = [p for p in failed if p.file.key in copied]
        if failed:
            result.dead_letter_manifest = storage.write_manifest(manifest or batch["run_id"], _manifest(batch, entries))
            result.files_dead_lettered = len(failed)
    settled = loaded + failed
    refused = set(storage.delete([p.file.key for p in settled])) if settled else set()
    result.files_loaded = sum(1 for p in loaded if p.file.key not in refused)
    result.events_delivered = sum(p.record.row_count for p in settled if p.record and p.file.key not in refused)
    waiting = sum(1 for p in plans if p.decision in (Decision.WAIT, Decision.SEND))
    result.files_in_flight = waiting + len(refused) + _retry(result, plans, storage)
    if refused:
        result.warnings.append(f"S3 refused to delete {len(refused)} settled files; the next tick retries")
    return result


def _retry(result: Settlement, plans: list[FilePlan], storage: OrgStorage) -> int:
    """Move each file to retry to its next attempt's name (a new name: Snowpipe's load metadata would skip
    the old one); returns how many files that leaves live (moved or not)."""
    retry = [p for p in plans if p.decision is Decision.RETRY]
    moved = [p for p in retry if (target := retry_key(p.file.key)) and storage.move_for_retry(p.file.key, target)]
    if moved:
        result.warnings.append(f"{len(moved)} files failed to load and will load again under a new name")
    if len(moved) < len(retry):
        result.warnings.append(f"S3 refused to move {len(retry) - len(moved)} files to retry; the next tick retries")
    return len(retry)


def _manifest(batch: dict[str, str], entries: list[DeadLetterEntry]) -> dict[str, Any]:
    return {
        **batch,
        "dead_lettered_at": datetime.now(UTC).isoformat(),
        "files": [entry.__dict__ for entry in entries],
    }


# -- REST mode ----------------------------------------------------------------------------------------


def _load_rest(
    delivery: Delivery, work: Work, pipe: Snowpipe, edges: Edges, deadline: Deadline, *, rest: RestPipe
) -> None:
    """insertFiles, then insertReport until the queued files are terminal; loadHistoryScan only to catch
    up. No warehouse: COPY_HISTORY, SYSTEM$PIPE_STATUS and the table's lineage stay on the rare paths
    (a re-created pipe, files stuck or stranded). No 7-day window either, so nothing is re-staged."""
    files, now = work.files, edges.now()
    # A file older than insertReport's memory may have been submitted by an earlier tick: learn its
    # outcome before submitting it again. The steady state (only young files) skips this.
    known = _catch_up(rest, files, now) if any(now - f.last_modified >= rest.report_window for f in files) else None
    plans = plan_files(files, known or {}, now)
    plans = _settle_early(delivery, _batch(work), work.storage, plans, _loaded_before_pipe(pipe, plans))
    files = [p.file for p in plans]
    submission = rest.submit([p.file for p in plans if p.decision is Decision.SEND])
    delivery.files_sent = len(submission.sent)
    if submission.rejected:
        delivery.warnings.append(_rejected(submission))
    if submission.sent or known is None:
        plans = _follow_rest(rest, files, known or {}, edges, deadline, submitted=bool(submission.sent))
    _finish(delivery, work, plans, pipe, edges, submission=Submission(submission.sent, watched=submission.sent))


def _catch_up(rest: RestPipe, files: list[LiveFile], now: datetime) -> dict[str, LoadRecord]:
    """The report (last 10 minutes), then one loadHistoryScan if the report lost events or does not
    know a file older than its window. If the scan is refused (rate limit), such files are submitted
    again: the pipe's 14-day load metadata skips any it loaded (docs/snowflake-facts.md §1, §3)."""
    report = rest.report()
    records = report.records
    unknown_old = [f for f in files if now - f.last_modified >= rest.report_window and f.key not in records]
    if not report.complete or unknown_old:
        records = _merged(records, rest.scan(history_start(unknown_old or files, now)) or {})
    return records


def _follow_rest(
    rest: RestPipe,
    files: list[LiveFile],
    known: dict[str, LoadRecord],
    edges: Edges,
    outer: Deadline,
    *,
    submitted: bool,
) -> list[FilePlan]:
    """Poll insertReport (one request per poll, each returning only what changed) with backoff until no
    queued file is still loading, or the budget runs out. A submitted file no report names was skipped
    by the pipe's load metadata (loaded or queued before): it is not waited for. A report that lost
    events is completed by the tick's one loadHistoryScan."""
    records, complete = dict(known), True

    def poll() -> list[FilePlan]:
        nonlocal records, complete
        report = rest.report()
        records, complete = _merged(records, report.records), complete and report.complete
        return plan_files(files, records, edges.now())

    plans = _poll_while(poll, lambda plans: bool(unsettled(plans)), edges, outer, submitted=submitted)
    if not complete and (scanned := rest.scan(history_start(files, edges.now()))):
        plans = plan_files(files, _merged(records, scanned), edges.now())
    return plans


def _merged(records: dict[str, LoadRecord], newer: dict[str, LoadRecord]) -> dict[str, LoadRecord]:
    """Newer answers win, except that a terminal outcome is never replaced by `Load in progress`."""
    merged = dict(records)
    for key, record in newer.items():
        current = merged.get(key)
        if current is None or record.status is not LoadStatus.IN_PROGRESS or current.status is LoadStatus.IN_PROGRESS:
            merged[key] = record
    return merged


def _rejected(submission: RestSubmission) -> str:
    shown = "; ".join(f"{key}: {reason}" for key, reason in sorted(submission.rejected.items())[:3])
    more = f" (and {len(submission.rejected) - 3} more)" if len(submission.rejected) > 3 else ""
    return (
        f"insertFiles refused {len(submission.rejected)} files, which stay live (dead-lettered as stranded after "
        f"FLOE_STRANDED_AFTER_SECONDS): {shown}{more}"
    )

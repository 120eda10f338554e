"""Retry a failed load before dead-lettering it. Pure: no I/O.

COPY_HISTORY's FIRST_ERROR_MESSAGE decides (docs/architecture.md, "Retry before dead-lettering"):
a data error (the file's bytes: decompression, JSON parsing, a value's type, the column count) fails
the same way every time, so the file is dead-lettered at once; any other error (the stage's access to
S3, a file not found, Snowflake's internal errors and timeouts, and errors not known to be data errors)
may pass, so the file is loaded again on a later tick, after a backoff, a few times at most.

Snowpipe's load metadata keeps a failed path+name from loading again (under at least one reading,
docs/snowflake-standin.md), so an attempt is a new name: `name.retry-2.json.gz`, `name.retry-3.json.gz`.
The counter lives in the key itself, so a crash can neither lose nor double it: a tick that crashed
after the copy copies onto the same name again. The backoff runs on the attempt's own LastModified.
A partially loaded file is never retried: its good rows are in the table already.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from kernel.config import S3_MAX_KEY_BYTES
from loader.plan import Decision, FilePlan, LoadStatus

# Messages Snowflake gives for a file's own content (the stand-in's engine gives the same texts).
_DATA_ERRORS = re.compile(
    r"decompress|gzip|error parsing json|not recognized|invalid utf-?8|number of columns|column count"
    r"|null result in a non-nullable column|string .* is too long|can't parse|cannot be cast|invalid (date|time)"
    r"|could not convert|conversion error|failed to cast|out of range",
    re.IGNORECASE,
)
_ATTEMPT = re.compile(r"\.retry-(\d+)(?=\.json\.gz$)")
# A connection whose every failed file fails the same way (e.g. the table's schema changed) is one
# connection-level error, not a dead letter per file; fewer files than this are judged one by one.
SYSTEMIC_MIN_FILES = 3
MAX_BACKOFF = timedelta(hours=1)


class FailureKind(StrEnum):
    DATA = "data"  # dead-letter now
    RETRY = "retry"  # load again later


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int  # FLOE_LOAD_RETRIES: loads of one file, the first included
    backoff: timedelta  # FLOE_LOAD_RETRY_BACKOFF_SECONDS: the wait after the first failure, doubled after each

    def wait_after(self, attempt: int) -> timedelta:
        factor: int = 2 ** (attempt - 1)
        return min(self.backoff * factor, MAX_BACKOFF)


def classify(status: LoadStatus, first_error: str | None) -> FailureKind:
    if status is LoadStatus.PARTIAL or (first_error and _DATA_ERRORS.search(first_error)):
        return FailureKind.DATA
    return FailureKind.RETRY


def attempt_of(key: str) -> int:
    """Which load of its file `key` is: 1 for a writer's key, n for `….retry-n.json.gz`."""
    match = _ATTEMPT.search(key)
    return int(match.group(1)) if match else 1


def retry_key(key: str) -> str | None:
    """The name of the file's next attempt, in the writer's layout; None if S3 cannot hold it."""
    stem = _ATTEMPT.sub("", key).removesuffix(".json.gz")
    target = f"{stem}.retry-{attempt_of(key) + 1}.json.gz"
    return target if len(target.encode()) <= S3_MAX_KEY_BYTES else None


def with_retries(plans: list[FilePlan], policy: RetryPolicy, now: datetime) -> tuple[list[FilePlan], str | None]:
    """Failed loads become RETRY (due), WAIT (backing off) or stay DEAD_LETTER; also the connection-level
    error when every failed file fails the same way (those files are retried without limit, never
    dead-lettered, until a person fixes the cause)."""
    failed = [p for p in plans if p.decision is Decision.DEAD_LETTER and p.record is not None]
    systemic = _systemic(plans, failed)
    return [_retry_plan(p, policy, now, systemic=systemic is not None) if p in failed else p for p in plans], systemic


def _retry_plan(plan: FilePlan, policy: RetryPolicy, now: datetime, *, systemic: bool) -> FilePlan:
    attempt = attempt_of(plan.file.key)
    if not systemic and plan.record is not None:
        if classify(plan.record.status, plan.record.first_error) is FailureKind.DATA:
            return replace(plan, reason=f"{plan.reason} (a data error: not retried)")
        if attempt >= policy.attempts:
            return replace(plan, reason=f"{plan.reason} (gave up after {attempt} attempts)")
    if retry_key(plan.file.key) is None:
        return replace(plan, reason=f"{plan.reason} (its key is too long to retry under a new name)")
    due = plan.file.last_modified + policy.wait_after(attempt)
    if now < due:
        return replace(plan, decision=Decision.WAIT, reason=f"attempt {attempt} failed; retried after {due:%H:%M:%S}")
    return replace(plan, decision=Decision.RETRY, reason=f"attempt {attempt} failed: {plan.reason}")


def _systemic(plans: list[FilePlan], failed: list[FilePlan]) -> str | None:
    if len(failed) < SYSTEMIC_MIN_FILES or any(p.decision is Decision.DELETE for p in plans):
        return None
    errors = [p.record.first_error if p.record else None for p in failed]
    if len({_shape(error) for error in errors}) != 1:
        return None
    return (
        f"all {len(failed)} files that failed to load fail the same way ({errors[0]}): likely the "
        "table, its grants or the stage changed, not the files; they stay live and are retried until it is fixed"
    )


def _shape(error: str | None) -> str:
    """An error without what differs per file: quoted names and numbers."""
    return re.sub(r"'[^']*'|\d+", "…", error or "")

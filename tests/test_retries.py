"""Retry before dead-lettering (loader.retries): the error classes, the attempt in the key, the backoff,
the give-up, and the connection-level failure. Pure: no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loader.plan import Decision, FilePlan, LiveFile, LoadRecord, LoadStatus, plan_file
from loader.retries import FailureKind, RetryPolicy, attempt_of, classify, retry_key, with_retries

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(attempts=3, backoff=timedelta(minutes=1))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("Invalid data encountered during decompression for file: 'a.json.gz'", FailureKind.DATA),
        ("Error parsing JSON: incomplete object value, pos 17", FailureKind.DATA),
        ("Numeric value 'abc' is not recognized", FailureKind.DATA),
        ("Timestamp 'yesterday' is not recognized", FailureKind.DATA),
        ("Number of columns in file (3) does not match that of the corresponding table (16)", FailureKind.DATA),
        ("Invalid UTF8 detected in string '0xFF'", FailureKind.DATA),
        ("Conversion Error: Could not convert string '{\"ms\": 1}' to INT64", FailureKind.DATA),
        ("Numeric value '99999999999999999999' is out of range", FailureKind.DATA),
        ("Access Denied (Status Code: 403; Error Code: AccessDenied)", FailureKind.RETRY),
        ("Remote file 's3://b/live/acme/a.json.gz' was not found", FailureKind.RETRY),
        ("Internal error: Processing aborted due to error 300002:2523566", FailureKind.RETRY),
        ("Request to S3 timed out", FailureKind.RETRY),
        ("something Snowflake has not said before", FailureKind.RETRY),
        (None, FailureKind.RETRY),
    ],
)
def test_data_errors_are_dead_lettered_and_the_rest_retried(error: str | None, kind: FailureKind) -> None:
    assert classify(LoadStatus.FAILED, error) is kind


def test_a_partial_load_is_never_retried_its_good_rows_are_in() -> None:
    assert classify(LoadStatus.PARTIAL, "Internal error") is FailureKind.DATA


def test_the_attempt_lives_in_the_key() -> None:
    assert attempt_of("live/acme/e/a.json.gz") == 1
    assert retry_key("live/acme/e/a.json.gz") == "live/acme/e/a.retry-2.json.gz"
    assert attempt_of("live/acme/e/a.retry-2.json.gz") == 2
    assert retry_key("live/acme/e/a.retry-2.json.gz") == "live/acme/e/a.retry-3.json.gz"
    assert retry_key("live/acme/e/a.retry-2.json.gz.replay-ab12.json.gz") is not None
    assert retry_key("live/acme/" + "x" * 1010 + ".json.gz") is None  # past S3's 1,024 bytes


def failed(
    name: str, age: timedelta, error: str = "Internal error", status: LoadStatus = LoadStatus.FAILED
) -> FilePlan:
    file = LiveFile(f"live/acme/e/{name}", 10, NOW - age)
    return plan_file(file, LoadRecord(file.key, status, first_error=error), NOW)


def loaded(name: str) -> FilePlan:
    file = LiveFile(f"live/acme/e/{name}", 10, NOW)
    return plan_file(file, LoadRecord(file.key, LoadStatus.LOADED, row_count=1), NOW)


def decisions(plans: list[FilePlan]) -> list[Decision]:
    return [p.decision for p in with_retries(plans, POLICY, NOW)[0]]


def test_a_retry_waits_a_backoff_that_doubles_with_each_attempt() -> None:
    assert decisions([failed("a.json.gz", timedelta(seconds=59)), loaded("x")]) == [Decision.WAIT, Decision.DELETE]
    assert decisions([failed("a.json.gz", timedelta(seconds=60)), loaded("x")]) == [Decision.RETRY, Decision.DELETE]
    assert decisions([failed("a.retry-2.json.gz", timedelta(seconds=119)), loaded("x")])[0] is Decision.WAIT
    assert decisions([failed("a.retry-2.json.gz", timedelta(seconds=120)), loaded("x")])[0] is Decision.RETRY
    assert POLICY.wait_after(20) == timedelta(hours=1)  # capped


def test_the_last_attempt_and_data_errors_are_dead_lettered_with_the_reason() -> None:
    plans, systemic = with_retries(
        [failed("a.retry-3.json.gz", timedelta(hours=2)), failed("b.json.gz", timedelta(0), "Error parsing JSON: x")],
        POLICY,
        NOW,
    )
    assert systemic is None
    assert [p.decision for p in plans] == [Decision.DEAD_LETTER, Decision.DEAD_LETTER]
    assert "gave up after 3 attempts" in plans[0].reason
    assert "a data error" in plans[1].reason


def test_every_failed_file_failing_the_same_way_is_one_connection_error_and_nothing_is_dead_lettered() -> None:
    error = "Number of columns in file ({}) does not match that of the corresponding table (16)"
    plans, systemic = with_retries(
        [failed(f"{i}.retry-5.json.gz", timedelta(hours=2), error.format(i)) for i in range(3)], POLICY, NOW
    )
    assert systemic is not None
    assert "all 3 files that failed to load fail the same way" in systemic
    assert {p.decision for p in plans} == {Decision.RETRY}  # past the limit, but the cause is not theirs


def test_failures_are_judged_per_file_when_a_file_loaded_or_errors_differ_or_few_fail() -> None:
    same = [failed(f"{i}.json.gz", timedelta(0), "Error parsing JSON: x") for i in range(3)]
    assert with_retries([*same, loaded("ok")], POLICY, NOW)[1] is None
    assert with_retries([*same[:2], failed("z", timedelta(0), "Internal error")], POLICY, NOW)[1] is None
    assert with_retries(same[:2], POLICY, NOW)[1] is None

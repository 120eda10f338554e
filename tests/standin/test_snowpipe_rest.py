"""The stand-in's Snowpipe REST API beyond the conformance suite: counters, faults, the clock, routing.

Driven through snowflake-ingest's SimpleIngestManager over HTTP, as the product will be.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snowflake.ingest import SimpleIngestManager, StagedFile
from snowflake.ingest.error import IngestResponseError

from devstack.snowflake.auth import fingerprint
from devstack.snowflake.server import StandIn

from .helpers import BUCKET, connect, gz_lines, make_role, new_key, public_key_text, run, s3

PREFIX = "rest/acme/"
PIPE = "DB.PUBLIC.P"


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _setup(server: StandIn) -> tuple[Any, rsa.RSAPrivateKey]:
    """Account ACME, stage S on the prefix, table EVENTS (V VARIANT), pipe P for *.json.gz files; the
    ADMIN user (default role ACCOUNTADMIN, the pipe's owner) gets a key pair for the REST API."""
    server.control.create_account("acme")
    s3().create_bucket(Bucket=BUCKET)
    conn = connect(server, "acme", database="DB", schema="PUBLIC", warehouse="COMPUTE_WH")
    run(
        conn,
        "CREATE STORAGE INTEGRATION I TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' "
        "STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/rest-acme' ENABLED = TRUE "
        f"STORAGE_ALLOWED_LOCATIONS = ('s3://{BUCKET}/{PREFIX}')",
    )
    props = {row[0]: row[2] for row in run(conn, "DESC INTEGRATION I")}
    make_role("rest-acme", props["STORAGE_AWS_IAM_USER_ARN"], props["STORAGE_AWS_EXTERNAL_ID"], PREFIX)
    run(conn, f"CREATE STAGE S URL = 's3://{BUCKET}/{PREFIX}' STORAGE_INTEGRATION = I FILE_FORMAT = (TYPE = JSON)")
    run(conn, "CREATE TABLE EVENTS (V VARIANT)")
    run(conn, "CREATE PIPE P AS COPY INTO EVENTS FROM @S PATTERN = '.*[.]json[.]gz'")
    key = new_key()
    run(conn, f"ALTER USER ADMIN SET RSA_PUBLIC_KEY = '{public_key_text(key)}'")
    return conn, key


def _manager(server: StandIn, key: rsa.RSAPrivateKey, account: str = "acme") -> Any:
    return SimpleIngestManager(
        account=account,
        user="ADMIN",
        pipe=PIPE,
        private_key=_pem(key),
        scheme="http",
        host=server.host,
        port=server.port,
    )


def _put(name: str, *records: Any) -> StagedFile:
    body = gz_lines(*records)
    s3().put_object(Bucket=BUCKET, Key=PREFIX + name, Body=body)
    return StagedFile(name, len(body))


def _status(code: int) -> Any:
    return pytest.raises(IngestResponseError, match=f"Http Error: {code}")


def test_rest_calls_are_counted_by_kind_and_are_not_warehouse_statements(standin: StandIn) -> None:
    _, key = _setup(standin)
    manager = _manager(standin, key)
    before = standin.control.stats("acme")

    manager.ingest_files([_put("a.json.gz", {"n": 1})])
    standin.control.drain("acme")
    assert manager.get_history()["files"][0]["status"] == "LOADED"
    start = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert [f["path"] for f in manager.get_history_range(start)["files"]] == ["a.json.gz"]

    after = standin.control.stats("acme")
    assert after["rest_requests_by_kind"] == {"insertFiles": 1, "insertReport": 1, "loadHistoryScan": 1}
    assert after["statements"] == before["statements"]
    assert after["warehouse_statements"] == before["warehouse_statements"]


def test_an_injected_503_is_retried_by_the_client_and_a_429_is_raised(standin: StandIn) -> None:
    _, key = _setup(standin)
    manager = _manager(standin, key)
    standin.control.inject_faults("acme", rest_fail_requests=1, rest_fail_status=503)
    assert manager.ingest_files([_put("a.json.gz", {"n": 1})])["status"] == "SUCCESS"  # after a 1 s back-off
    assert standin.control.stats("acme")["rest_requests_by_kind"] == {"insertFiles": 2}

    standin.control.inject_faults("acme", rest_fail_requests=1, rest_fail_status=429)
    with _status(429):
        manager.get_history()
    assert manager.get_history()["files"][0]["path"] == "a.json.gz"


def test_load_history_scan_is_rate_limited_on_the_standin_clock(standin: StandIn) -> None:
    _, key = _setup(standin)
    manager = _manager(standin, key)
    start = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    manager.get_history_range(start)
    with _status(429):
        manager.get_history_range(start)
    standin.control.advance_clock(60)
    manager.get_history_range(start)

    standin.control.configure("acme", load_history_scan_interval_seconds=0)
    manager.get_history_range(start)


def test_events_older_than_10_minutes_are_forgotten_and_complete_result_says_so(standin: StandIn) -> None:
    _, key = _setup(standin)
    early, late = _manager(standin, key), _manager(standin, key)
    early.ingest_files([_put("a.json.gz", {"n": 1})])
    assert early.get_history()["completeResult"] is True  # its mark now stands before the load event
    standin.control.drain("acme")

    standin.control.advance_clock(11 * 60)
    assert late.get_history()["files"] == []  # the submission and the load are both 11 minutes old
    answer = early.get_history()
    assert answer["completeResult"] is False
    assert answer["files"] == []


def test_pattern_rejects_come_back_unmatched_and_the_rest_are_pending(standin: StandIn) -> None:
    conn, key = _setup(standin)
    manager = _manager(standin, key)
    answer = manager.ingest_files([_put("a.json.gz", {"n": 1}), StagedFile("b.csv", 3)])
    assert answer["unmatchedPatternFiles"] == ["b.csv"]
    status = run(conn, f"SELECT SYSTEM$PIPE_STATUS('{PIPE}')")[0][0]
    assert '"pendingFileCount": 1' in status
    report = manager.get_history()
    assert [(f["path"], f["status"], f["complete"]) for f in report["files"]] == [
        ("a.json.gz", "LOAD_IN_PROGRESS", False)
    ]
    assert report["statistics"] == {"activeFilesCount": 1}


@pytest.mark.parametrize("reading", ["today", "bucket-paths", "url-encoded", "harshest"])
def test_insert_report_sees_a_load_whatever_name_copy_history_shows_it_by(standin: StandIn, reading: str) -> None:
    """The report matches a submission to its load by the path insertFiles named; a reading changes only
    how COPY_HISTORY shows the name (seen once: under bucket-paths no load was ever reported)."""
    _, key = _setup(standin)
    standin.control.set_reading("acme", reading)
    manager = _manager(standin, key)
    manager.ingest_files([_put("ev ts/a.json.gz", {"n": 1})])
    standin.control.drain("acme")
    assert [(f["path"], f["status"]) for f in manager.get_history()["files"]] == [("ev ts/a.json.gz", "LOADED")]


def test_a_file_missing_from_s3_fails_its_load(standin: StandIn) -> None:
    _, key = _setup(standin)
    manager = _manager(standin, key)
    manager.ingest_files([StagedFile("never-staged.json.gz", None)])
    standin.control.drain("acme")
    entry = manager.get_history()["files"][0]
    assert entry["status"] == "LOAD_FAILED"
    assert entry["firstError"]


def _signed(key: rsa.RSAPrivateKey, subject: str, issued: datetime) -> str:
    claims = {
        "iss": f"{subject}.{fingerprint(key.public_key())}",
        "sub": subject,
        "iat": issued,
        "exp": issued + timedelta(minutes=59),
    }
    return jwt.encode(claims, key, algorithm="RS256")


def _with_token(manager: Any, token: str) -> Any:
    """The official client, sending `token` instead of the one it would sign (it renews after 54 minutes)."""
    manager.sec_manager.token = token
    manager.sec_manager.renew_time = datetime.utcnow() + timedelta(hours=1)
    return manager


def test_expired_or_foreign_tokens_are_401_and_the_account_comes_from_the_token(standin: StandIn) -> None:
    _, key = _setup(standin)
    expired = _signed(key, "ACME.ADMIN", datetime.now(UTC) - timedelta(hours=2))
    with _status(401):
        _with_token(_manager(standin, key), expired).get_history()
    with _status(401):
        _manager(standin, key, account="nosuch").get_history()  # no such account: nothing to verify against

    standin.control.create_account("other")  # same ADMIN user, no key: ACME's token does not log in there
    with _status(401):
        _with_token(_manager(standin, key), _signed(key, "OTHER.ADMIN", datetime.now(UTC))).get_history()
    assert _manager(standin, key).get_history()["files"] == []

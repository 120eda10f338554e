"""Integration, stage, pipe, REFRESH, the load engine and COPY_HISTORY over moto S3."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from snowflake.connector.errors import ProgrammingError

from devstack.snowflake.server import StandIn

from .helpers import (
    BUCKET,
    HISTORY,
    PIPE,
    PREFIX,
    connect,
    gz_lines,
    integration_identity,
    put_event,
    run,
    s3,
    setup_acme,
)


def test_refresh_drain_and_copy_history(standin: StandIn) -> None:
    conn = setup_acme(standin)
    put_event(
        "events/a.json.gz",
        gz_lines({"id": 1, "flag": "x", "ts": 1700000000000}, {"id": 2, "flag": "y", "ts": 1700000000001}),
    )
    put_event("events/deep/b.json.gz", gz_lines({"id": 3, "flag": "z", "ts": 1700000000002}))
    put_event("events/c.json.gz", b"not gzip at all")
    sent = run(conn, "ALTER PIPE P REFRESH")
    assert sorted(sent) == [
        ("events/a.json.gz", "SENT"),
        ("events/c.json.gz", "SENT"),
        ("events/deep/b.json.gz", "SENT"),
    ]
    assert run(conn, HISTORY)[0][1] == "Load in progress"
    assert standin.control.drain("acme") == {"loaded": 2, "failed": 1, "partially_loaded": 0}
    history = run(conn, HISTORY)
    assert [(r[0], r[1], r[2], r[3]) for r in history] == [
        ("events/a.json.gz", "Loaded", 2, 2),
        ("events/c.json.gz", "Load failed", 0, 0),
        ("events/deep/b.json.gz", "Loaded", 1, 1),
    ]
    assert "decompression" in history[1][5]
    assert run(conn, "SELECT ID, FILE, ROW_NO FROM EVENTS ORDER BY ID") == [
        (1, "events/a.json.gz", 1),
        (2, "events/a.json.gz", 2),
        (3, "events/deep/b.json.gz", 1),
    ]
    assert run(conn, "ALTER PIPE P REFRESH") == []  # failed files are in the load metadata too
    run(conn, PIPE)  # recreating the pipe forgets its load metadata and history
    assert run(conn, HISTORY) == []
    assert len(run(conn, "ALTER PIPE P REFRESH")) == 3
    status = json.loads(run(conn, "SELECT SYSTEM$PIPE_STATUS('DB.PUBLIC.P')")[0][0])
    assert status["pendingFileCount"] == 3
    assert status["executionState"] == "RUNNING"
    kinds = {s["kind"] for s in standin.control.statements("acme")}
    assert {"refresh_pipe", "copy_history", "pipe_status", "create_pipe"} <= kinds


def test_bad_rows_follow_on_error(standin: StandIn) -> None:
    conn = setup_acme(standin)
    body = gzip.compress(b'{"id": 1, "ts": 1}\nnot json\n{"id": "abc", "ts": 2}\n')
    put_event("mixed.json.gz", body)
    run(conn, "ALTER PIPE P REFRESH")
    standin.control.drain("acme")
    row = run(conn, HISTORY)[0]
    assert row[1:5] == ("Load failed", 0, 3, 2)  # SKIP_FILE is Snowpipe's default (docs/snowflake-facts.md §5)
    assert row[6] == 2
    run(conn, PIPE.replace("FILE_FORMAT", "ON_ERROR = CONTINUE FILE_FORMAT"))
    run(conn, "ALTER PIPE P REFRESH")
    standin.control.drain("acme")
    assert run(conn, HISTORY)[0][1:5] == ("Partially loaded", 1, 3, 2)


def test_old_files_paused_pipes_and_lag(standin: StandIn) -> None:
    conn = setup_acme(standin)
    put_event("old.json.gz", gz_lines({"id": 1}))
    standin.control.advance_clock(8 * 86400)
    assert run(conn, "ALTER PIPE P REFRESH") == []  # docs/snowflake-facts.md §1: only files staged within 7 days
    put_event("new.json.gz", gz_lines({"id": 2}))
    run(conn, "ALTER PIPE P SET PIPE_EXECUTION_PAUSED = TRUE")
    assert run(conn, "ALTER PIPE P REFRESH") == [("new.json.gz", "SENT")]
    assert standin.control.drain("acme")["loaded"] == 0
    assert json.loads(run(conn, "SELECT SYSTEM$PIPE_STATUS('P')")[0][0])["executionState"] == "PAUSED"
    standin.control.configure("acme", history_lag_seconds=60)
    run(conn, "ALTER PIPE P SET PIPE_EXECUTION_PAUSED = FALSE")
    assert standin.control.drain("acme")["loaded"] == 1
    assert run(conn, HISTORY) == []  # finished, but not yet visible
    standin.control.advance_clock(61)
    assert run(conn, HISTORY.replace("hour, -1", "day, -1"))[0][1] == "Loaded"


def test_untrusted_role_cannot_read(standin: StandIn) -> None:
    conn = setup_acme(standin, trust_ok=False)
    put_event("a.json.gz", gz_lines({"id": 1}))
    with pytest.raises(ProgrammingError) as denied:
        run(conn, "ALTER PIPE P REFRESH")
    assert denied.value.errno == 91003
    with pytest.raises(ProgrammingError):
        run(conn, "LIST @S")


def test_role_policy_limits_the_prefix(standin: StandIn) -> None:
    conn = setup_acme(standin)
    put_event("a/x.json.gz", gz_lines({"id": 1}))
    assert [r[0] for r in run(conn, "LIST @S")] == [f"s3://{BUCKET}/{PREFIX}a/x.json.gz"]
    with pytest.raises(ProgrammingError) as outside:
        run(conn, f"CREATE STAGE WIDE URL = 's3://{BUCKET}/live/' STORAGE_INTEGRATION = I")
    assert "not allowed" in str(outside.value)


def test_bulk_copy_aborts_and_dedupes(standin: StandIn) -> None:
    conn = setup_acme(standin)
    put_event("a.json.gz", gz_lines({"id": 1, "ts": 1}))
    copy = "COPY INTO EVENTS (ID, TS) FROM (SELECT $1:id::NUMBER, TO_TIMESTAMP_NTZ($1:ts::NUMBER, 3) FROM @S)"
    rows = run(conn, copy)
    assert rows[0][1:4] == ("LOADED", 1, 1)
    assert run(conn, copy) == [("Copy executed with 0 files processed.",)]
    put_event("b.json.gz", gz_lines({"id": "bad", "ts": 1}))
    with pytest.raises(ProgrammingError) as aborted:
        run(conn, copy)
    assert "Numeric value 'bad' is not recognized" in str(aborted.value)
    assert run(conn, "ALTER PIPE P REFRESH") == [("b.json.gz", "SENT")]  # a.json.gz is in the table's metadata


def test_create_integration_needs_privilege(standin: StandIn) -> None:
    standin.control.create_account("acme")
    with connect(standin, "acme") as admin:
        run(admin, "CREATE USER BOB PASSWORD = 'pw' DEFAULT_ROLE = DEV")
        run(admin, "CREATE ROLE DEV")
        run(admin, "GRANT ROLE DEV TO USER BOB")
    with connect(standin, "acme", user="BOB", password="pw") as bob, pytest.raises(ProgrammingError) as denied:
        run(
            bob,
            "CREATE STORAGE INTEGRATION I TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' "
            "STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::1:role/r' ENABLED = TRUE STORAGE_ALLOWED_LOCATIONS = ('s3://b/p/')",
        )
    assert denied.value.errno == 3001
    assert "Insufficient privileges to operate on account 'ACME'" in str(denied.value)


def test_role_policy_denies_other_prefixes(standin: StandIn) -> None:
    conn = setup_acme(standin)
    run(
        conn,
        "CREATE OR REPLACE STORAGE INTEGRATION WIDE TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' "
        "STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/floe/snowflake/acme' ENABLED = TRUE "
        "STORAGE_ALLOWED_LOCATIONS = ('*') STORAGE_AWS_EXTERNAL_ID = 'wide-external-id'",
    )
    import boto3

    user_arn, external_id = integration_identity(conn)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": user_arn},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": ["wide-external-id", external_id]}},
            }
        ],
    }
    boto3.client("iam").update_assume_role_policy(RoleName="acme", PolicyDocument=json.dumps(trust))
    s3().put_object(Bucket=BUCKET, Key="live/globex/secret.json.gz", Body=gz_lines({"id": 9}))
    run(conn, f"CREATE STAGE OTHER URL = 's3://{BUCKET}/live/globex/' STORAGE_INTEGRATION = WIDE")
    with pytest.raises(ProgrammingError) as denied:
        run(conn, "LIST @OTHER")
    assert "Access Denied" in str(denied.value)


def test_background_loading_and_file_faults(standin: StandIn) -> None:
    conn = setup_acme(standin)
    put_event("a.json.gz", gz_lines({"id": 1}))
    put_event("b.json.gz", gz_lines({"id": 2}))
    standin.control.inject_faults("acme", fail_files={PREFIX + "b.json.gz": "injected failure"})
    standin.control.configure("acme", load_delay_seconds=0)
    run(conn, "ALTER PIPE P REFRESH")
    deadline = time.monotonic() + 5
    while len(rows := run(conn, HISTORY)) < 2 or rows[-1][1] == "Load in progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [(r[0], r[1], r[5]) for r in rows] == [
        ("a.json.gz", "Loaded", None),
        ("b.json.gz", "Load failed", "injected failure"),
    ]
    # system_pipe_status: `error` is the pipe's compilation error; a file's error stays in COPY_HISTORY.
    assert "error" not in json.loads(run(conn, "SELECT SYSTEM$PIPE_STATUS('P')")[0][0])

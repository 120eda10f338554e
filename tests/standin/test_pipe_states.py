"""SYSTEM$PIPE_STATUS states, `Load skipped` and the 403 login fault.

system_pipe_status (https://docs.snowflake.com/en/sql-reference/functions/system_pipe_status): `error` is
the error "produced when the pipe was last compiled for execution", and executionState has STALLED_* and
STOPPED_* states; per-file load errors belong to COPY_HISTORY.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from snowflake.connector.errors import ForbiddenError

from devstack.snowflake.server import StandIn

from .helpers import BUCKET, HISTORY, PREFIX, connect, gz_lines, put_event, run, setup_acme

GOOD = gz_lines({"id": 1, "flag": "a", "ts": 0})


def _status(conn: Any) -> dict[str, Any]:
    return dict(json.loads(run(conn, "SELECT SYSTEM$PIPE_STATUS('P')")[0][0]))


@pytest.fixture
def acme(standin: StandIn) -> Any:
    conn = setup_acme(standin)
    standin.control.set_reading("acme", "today")
    return conn


def test_lost_s3_permission_stalls_the_pipe_until_it_returns(standin: StandIn, acme: Any) -> None:
    put_event("a.json.gz", GOOD)
    run(acme, "ALTER PIPE P REFRESH")
    iam = boto3.client("iam")
    policy = iam.get_role_policy(RoleName="acme", PolicyName="read")["PolicyDocument"]
    iam.delete_role_policy(RoleName="acme", PolicyName="read")

    assert standin.control.drain("acme") == {"loaded": 0, "failed": 0, "partially_loaded": 0}
    stalled = _status(acme)
    assert stalled["executionState"] == "STALLED_STAGE_PERMISSION_ERROR", stalled
    assert "Access Denied" in stalled["error"]
    assert stalled["pendingFileCount"] == 1
    assert [r[1] for r in run(acme, HISTORY)] == ["Load in progress"]  # no per-file failure

    iam.put_role_policy(RoleName="acme", PolicyName="read", PolicyDocument=json.dumps(policy))
    assert standin.control.drain("acme")["loaded"] == 1
    recovered = _status(acme)
    assert recovered["executionState"] == "RUNNING", recovered
    assert "error" not in recovered


def test_dropped_table_and_stage_stop_the_pipe(standin: StandIn, acme: Any) -> None:
    put_event("a.json.gz", GOOD)
    run(acme, "ALTER PIPE P REFRESH")
    run(acme, "DROP TABLE EVENTS")
    assert _status(acme)["executionState"] == "STOPPED_MISSING_TABLE"
    assert standin.control.drain("acme")["failed"] == 0  # a stopped pipe loads nothing
    run(acme, "DROP STAGE S")
    assert _status(acme)["executionState"] == "STOPPED_STAGE_DROPPED"


def test_forced_state_holds_the_queue(standin: StandIn, acme: Any) -> None:
    put_event("a.json.gz", GOOD)
    run(acme, "ALTER PIPE P REFRESH")
    state = standin.control.force_pipe_state("acme", "DB.PUBLIC.P", "STALLED_COMPILATION_ERROR", "bad transform")
    assert state == "STALLED_COMPILATION_ERROR"
    status = _status(acme)
    assert (status["executionState"], status["error"]) == ("STALLED_COMPILATION_ERROR", "bad transform")
    assert standin.control.drain("acme")["loaded"] == 0
    assert standin.control.force_pipe_state("acme", "DB.PUBLIC.P", None) == "RUNNING"
    assert "error" not in _status(acme)
    assert standin.control.drain("acme")["loaded"] == 1


def test_bulk_copy_with_skip_file_records_load_skipped(acme: Any) -> None:
    put_event("bad.json.gz", b"not gzip")
    rows = run(acme, "COPY INTO EVENTS (ID) FROM (SELECT $1:id::NUMBER FROM @S) ON_ERROR = SKIP_FILE")
    assert [r[1] for r in rows] == ["LOAD_FAILED"]
    assert [r[1] for r in run(acme, HISTORY)] == ["Load skipped"]


def test_rejected_login_fails_at_once(standin: StandIn) -> None:
    standin.control.create_account("acme")
    standin.control.reject_logins("acme")
    started = time.monotonic()
    with pytest.raises(ForbiddenError):
        connect(standin, "acme")
    assert time.monotonic() - started < 3
    with connect(standin, "acme") as conn:  # one rejection only
        assert run(conn, "SELECT 1") == [(1,)]


def test_pipe_pattern_is_relative_to_the_stage_url(acme: Any) -> None:
    run(acme, PIPE_WITH_PATTERN)
    put_event("events/a.json.gz", GOOD)
    put_event("other/b.json.gz", GOOD)
    assert [r[0] for r in run(acme, "ALTER PIPE P REFRESH")] == ["events/a.json.gz"]


PIPE_WITH_PATTERN = (
    "CREATE OR REPLACE PIPE P AS COPY INTO EVENTS (ID) FROM (SELECT $1:id::NUMBER FROM @S) "
    "PATTERN = '^events/.*[.]json[.]gz$'"
)


def test_a_file_deleted_after_refresh_fails_alone(standin: StandIn, acme: Any) -> None:
    """A missing object is that file's failure, not a stage permission stall."""
    put_event("gone.json.gz", GOOD)
    put_event("kept.json.gz", GOOD)
    run(acme, "ALTER PIPE P REFRESH")
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=PREFIX + "gone.json.gz")
    assert standin.control.drain("acme") == {"loaded": 1, "failed": 1, "partially_loaded": 0}
    assert _status(acme)["executionState"] == "RUNNING"

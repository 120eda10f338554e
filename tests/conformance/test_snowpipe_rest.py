"""Snowpipe through its REST API (insertFiles, insertReport, loadHistoryScan), driven by the official client.

Facts: https://docs.snowflake.com/en/user-guide/data-load-snowpipe-rest-apis (endpoints, limits, report
fields), https://docs.snowflake.com/en/user-guide/data-load-snowpipe-rest-gs (privileges, default role),
https://docs.snowflake.com/en/user-guide/key-pair-auth (the JWT), §1/§2/§5 of the facts for the pipe.
The client is snowflake-ingest's SimpleIngestManager over HTTP; nothing is mocked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from snowflake.ingest import StagedFile as IngestFile
from snowflake.ingest.error import IngestResponseError

from .harness import (
    KeyPair,
    Loading,
    StagedFile,
    Target,
    copy_history,
    get,
    history_of,
    names_file,
    pipe_status,
    query,
    records,
    refresh,
    rows_from,
    table_rows,
)

Manager = Any  # snowflake.ingest.SimpleIngestManager (the package ships no type information)


def _rest_user(target: Target, loading: Loading, *privileges: str) -> tuple[str, KeyPair]:
    """A key-pair SERVICE user whose default role holds `privileges` on the pipe plus what rest-gs lists
    for loading (USAGE on database, schema and stage; SELECT, INSERT on the table)."""
    stem = "REST_" + "_".join(privileges or ("NONE",))
    role = target.create_role(stem)
    key = KeyPair.generate()
    user = target.create_user(
        stem, properties=f"TYPE = SERVICE RSA_PUBLIC_KEY = '{key.public_b64}' DEFAULT_ROLE = {role}"
    )
    grants = [
        f"GRANT USAGE ON DATABASE {target.database} TO ROLE {role}",
        f"GRANT USAGE ON SCHEMA {target.database}.{target.schema} TO ROLE {role}",
        f"GRANT USAGE ON STAGE {loading.stage} TO ROLE {role}",
        f"GRANT SELECT, INSERT ON TABLE {loading.table} TO ROLE {role}",
        *(f"GRANT {privilege} ON PIPE {loading.pipe} TO ROLE {role}" for privilege in privileges),
        f"GRANT ROLE {role} TO USER {user}",
    ]
    for grant in grants:
        query(target.admin, grant)
    return user, key


def _manager(target: Target, loading: Loading, *privileges: str) -> Manager:
    user, key = _rest_user(target, loading, *privileges)
    return target.ingest_manager(user, key, loading.pipe)


def _send(manager: Manager, files: Iterable[StagedFile]) -> dict[str, Any]:
    """insertFiles with paths relative to the stage (the stage URL is the loading prefix)."""
    response: dict[str, Any] = manager.ingest_files([IngestFile(f.basename, None) for f in files])
    return response


def _wait_reported(target: Target, manager: Manager, files: Sequence[StagedFile]) -> dict[str, dict[str, Any]]:
    """Poll insertReport (the client follows nextBeginMark) until every file is complete; the latest entry
    of each file seen."""
    target.process()
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + target.load_timeout
    while True:
        for entry in manager.get_history()["files"]:
            seen[str(entry["path"])] = entry
        if all(seen.get(f.basename, {}).get("complete") for f in files):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"insertReport shows no completed load for every file after {target.load_timeout:.0f}s: {seen}")
        time.sleep(target.poll_interval)


def _http_status(excinfo: pytest.ExceptionInfo[IngestResponseError]) -> int:
    return int(excinfo.value.http_error_code)


def test_insert_files_then_insert_report_shows_loaded_with_row_counts(target: Target) -> None:
    """rest-apis: insertFiles answers "SUCCESS" (the files are queued, not loaded); insertReport lists the
    file with status LOADED, rowsInserted/rowsParsed, stageLocation (the S3 location of an external stage);
    the load shows in COPY_HISTORY like any Snowpipe load (§2)."""
    loading = target.setup_loading("rest_ok")
    manager = _manager(target, loading, "OPERATE", "MONITOR")
    staged = target.put_file(loading.prefix, "events", records("rest", 3))

    response = _send(manager, [staged])
    assert response["status"] == "SUCCESS", response

    entry = _wait_reported(target, manager, [staged])[staged.basename]
    assert entry["status"] == "LOADED", entry
    assert (entry["rowsInserted"], entry["rowsParsed"]) == (3, 3), entry
    assert str(entry["stageLocation"]).startswith(f"s3://{target.bucket}/"), entry
    assert entry["timeReceived"], entry
    assert entry["lastInsertTime"], entry

    loaded = rows_from(table_rows(target.admin, loading.table), staged.basename)
    assert sorted(get(r, "A") for r in loaded) == ["rest-1", "rest-2", "rest-3"]
    history = history_of(copy_history(target.admin, loading.table), staged.basename)
    assert [get(r, "STATUS") for r in history] == ["Loaded"], history


def test_a_corrupt_file_is_reported_load_failed_with_its_first_error(target: Target) -> None:
    """rest-apis: status LOAD_FAILED with firstError; §5 Snowpipe's ON_ERROR default SKIP_FILE."""
    loading = target.setup_loading("rest_bad")
    manager = _manager(target, loading, "OPERATE", "MONITOR")
    corrupt = target.put_raw(loading.prefix, "corrupt", b"\x1f\x8b\x08\x00 this is not a gzip stream")

    _send(manager, [corrupt])
    entry = _wait_reported(target, manager, [corrupt])[corrupt.basename]
    assert entry["status"] == "LOAD_FAILED", entry
    assert entry["firstError"], entry
    assert entry.get("rowsInserted", 0) == 0, entry


def test_more_than_5000_files_in_one_request_are_refused(target: Target) -> None:
    """rest-apis: "The post can contain at most 5000 files"; a bad request is 400."""
    loading = target.setup_loading("rest_many")
    manager = _manager(target, loading, "OPERATE", "MONITOR")
    files = [IngestFile(f"f{i}.json.gz", None) for i in range(5001)]
    with pytest.raises(IngestResponseError) as excinfo:
        manager.ingest_files(files)
    assert _http_status(excinfo) == 400


def test_a_path_longer_than_1024_bytes_is_refused(target: Target) -> None:
    """rest-apis: each path "must be <= 1024 bytes long when serialized as UTF-8"; a bad request is 400."""
    loading = target.setup_loading("rest_long")
    manager = _manager(target, loading, "OPERATE", "MONITOR")
    with pytest.raises(IngestResponseError) as excinfo:
        manager.ingest_files([IngestFile("d/" * 520 + "f.json.gz", None)])
    assert _http_status(excinfo) == 400


def test_an_unknown_pipe_is_404(target: Target) -> None:
    """rest-apis: 404 "Failure. pipeName not recognized"."""
    loading = target.setup_loading("rest_nopipe")
    user, key = _rest_user(target, loading, "OPERATE", "MONITOR")
    manager = target.ingest_manager(user, key, loading.pipe + "_MISSING")
    staged = target.put_file(loading.prefix, "events", records("nopipe", 1))
    with pytest.raises(IngestResponseError) as excinfo:
        _send(manager, [staged])
    assert _http_status(excinfo) == 404


def test_insert_files_needs_operate_and_reports_need_monitor(target: Target) -> None:
    """rest-gs: OPERATE on the pipe to call insertFiles, MONITOR for insertReport/loadHistoryScan;
    rest-apis: 404 also "if the user does not have the required privileges"."""
    loading = target.setup_loading("rest_privs")
    staged = target.put_file(loading.prefix, "events", records("privs", 1))
    monitor_only = _manager(target, loading, "MONITOR")
    with pytest.raises(IngestResponseError) as excinfo:
        _send(monitor_only, [staged])
    assert _http_status(excinfo) == 404

    operate_only = _manager(target, loading, "OPERATE")
    assert _send(operate_only, [staged])["status"] == "SUCCESS"
    with pytest.raises(IngestResponseError) as excinfo:
        operate_only.get_history()
    assert _http_status(excinfo) == 404
    start = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    with pytest.raises(IngestResponseError) as excinfo:
        operate_only.get_history_range(start)
    assert _http_status(excinfo) == 404

    entry = _wait_reported(target, monitor_only, [staged])[staged.basename]
    assert entry["status"] == "LOADED", entry


def test_a_jwt_signed_with_another_key_is_401(target: Target) -> None:
    """key-pair-auth: the JWT must verify against the user's RSA_PUBLIC_KEY(_2), else 401."""
    loading = target.setup_loading("rest_jwt")
    user, _ = _rest_user(target, loading, "OPERATE", "MONITOR")
    manager = target.ingest_manager(user, KeyPair.generate(), loading.pipe)
    staged = target.put_file(loading.prefix, "events", records("jwt", 1))
    with pytest.raises(IngestResponseError) as excinfo:
        _send(manager, [staged])
    assert _http_status(excinfo) == 401


def test_a_file_already_loaded_is_not_loaded_again(target: Target) -> None:
    """§1: Snowpipe's load metadata keeps path+name for 14 days and skips a file it loaded, whether it is
    sent again by insertFiles or by REFRESH."""
    loading = target.setup_loading("rest_dedupe")
    manager = _manager(target, loading, "OPERATE", "MONITOR")
    staged = target.put_file(loading.prefix, "events", records("dedupe", 2))
    _send(manager, [staged])
    assert _wait_reported(target, manager, [staged])[staged.basename]["status"] == "LOADED"

    assert _send(manager, [staged])["status"] == "SUCCESS"
    assert not names_file(refresh(target.admin, loading.pipe), staged.basename)
    sentinel = target.put_file(loading.prefix, "sentinel", records("sentinel", 1))
    _send(manager, [sentinel])
    assert _wait_reported(target, manager, [sentinel])[sentinel.basename]["status"] == "LOADED"

    assert len(rows_from(table_rows(target.admin, loading.table), staged.basename)) == 2
    assert len(history_of(copy_history(target.admin, loading.table), staged.basename)) == 1


def test_files_sent_to_a_paused_pipe_wait_until_it_is_resumed(target: Target) -> None:
    """§5 / alter-pipe: files submitted while PIPE_EXECUTION_PAUSED = TRUE "won't be processed until the
    pipe is resumed"; §2 SYSTEM$PIPE_STATUS counts them in pendingFileCount."""
    loading = target.setup_loading("rest_paused")
    manager = _manager(target, loading, "OPERATE", "MONITOR")
    query(target.admin, f"ALTER PIPE {loading.pipe} SET PIPE_EXECUTION_PAUSED = TRUE")
    staged = target.put_file(loading.prefix, "events", records("paused", 2))

    assert _send(manager, [staged])["status"] == "SUCCESS"
    target.settle()
    assert rows_from(table_rows(target.admin, loading.table), staged.basename) == []
    status = pipe_status(target.admin, loading.pipe)
    assert status["executionState"] == "PAUSED", status
    assert status["pendingFileCount"] == 1, status

    query(target.admin, f"ALTER PIPE {loading.pipe} SET PIPE_EXECUTION_PAUSED = FALSE")
    assert _wait_reported(target, manager, [staged])[staged.basename]["status"] == "LOADED"
    assert len(rows_from(table_rows(target.admin, loading.table), staged.basename)) == 2


def test_load_history_scan_returns_the_loads_of_a_time_range(target: Target) -> None:
    """rest-apis loadHistoryScan: the loads between startTimeInclusive and endTimeExclusive (ISO-8601);
    one call, since the endpoint is rate limited. A file loaded after the range end is not listed."""
    loading = target.setup_loading("rest_scan")
    manager = _manager(target, loading, "OPERATE", "MONITOR")
    start = datetime.now(UTC) - timedelta(seconds=5)
    first = target.put_file(loading.prefix, "first", records("first", 2))
    _send(manager, [first])
    _wait_reported(target, manager, [first])
    time.sleep(1.5)
    end = datetime.now(UTC)
    time.sleep(1.5)
    second = target.put_file(loading.prefix, "second", records("second", 1))
    _send(manager, [second])
    _wait_reported(target, manager, [second])

    scanned = manager.get_history_range(start.isoformat(), end.isoformat())
    by_path = {str(f["path"]): f for f in scanned["files"]}
    assert by_path[first.basename]["status"] == "LOADED", scanned
    assert by_path[first.basename]["rowsInserted"] == 2, scanned
    assert second.basename not in by_path, scanned
    assert scanned["rangeStartTime"], scanned
    assert scanned["rangeEndTime"], scanned


def test_insert_report_begin_mark_returns_only_newer_events(target: Target) -> None:
    """rest-apis insertReport: nextBeginMark passed back as beginMark returns only events after it."""
    loading = target.setup_loading("rest_mark")
    manager = _manager(target, loading, "OPERATE", "MONITOR")
    first = target.put_file(loading.prefix, "first", records("first", 1))
    _send(manager, [first])
    _wait_reported(target, manager, [first])
    mark = manager.get_history()["nextBeginMark"]
    assert mark, "insertReport gave no nextBeginMark"

    second = target.put_file(loading.prefix, "second", records("second", 1))
    _send(manager, [second])
    target.process()
    newer: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + target.load_timeout
    while not newer.get(second.basename, {}).get("complete"):
        if time.monotonic() > deadline:
            pytest.fail(f"no completed report for {second.basename}: {newer}")
        newer.update({str(f["path"]): f for f in manager.get_history()["files"]})
        time.sleep(target.poll_interval)
    assert first.basename not in newer, f"an event before the begin mark came again: {newer}"


def test_request_ids_are_echoed(target: Target) -> None:
    """rest-apis: insertFiles answers with the requestId given in the URL."""
    loading = target.setup_loading("rest_reqid")
    manager = _manager(target, loading, "OPERATE", "MONITOR")
    staged = target.put_file(loading.prefix, "events", records("reqid", 1))
    request_id = uuid.uuid4()
    assert manager.ingest_files([IngestFile(staged.basename, None)], request_id)["requestId"] == str(request_id)

"""Snowpipe through `ALTER PIPE … REFRESH` and what COPY_HISTORY / SYSTEM$PIPE_STATUS say about it.

Facts: docs/snowflake-facts.md §1 (REFRESH), §2 (load-status sources), §5 (objects, DDL).
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, timedelta

from .harness import (
    COPY_HISTORY_COLUMNS,
    STATUSES,
    Target,
    columns,
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

DAY = 24 * 3600


def test_refresh_sends_a_new_file_and_it_loads_with_lineage(target: Target) -> None:
    """§1 REFRESH queues staged files; §2 COPY_HISTORY shows `Loaded` with ROW_COUNT; §5 a transform
    `COPY INTO t (…) FROM (SELECT $1:…, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER FROM @stage)` fills the
    lineage columns.

    REFRESH's output columns (`File`, `Status` = SENT) are UNCERTAIN (§1), so only that some cell names the
    file is asserted."""
    loading = target.setup_loading("new")
    staged = target.put_file(loading.prefix, "events", records("new", 3))

    sent = refresh(target.admin, loading.pipe)
    assert names_file(sent, staged.basename), f"REFRESH output does not name {staged.basename}: {sent}"

    row = target.wait_loaded(loading, [staged])[staged.basename]
    assert get(row, "STATUS") == "Loaded", row
    assert get(row, "ROW_COUNT") == 3, row

    loaded = rows_from(table_rows(target.admin, loading.table), staged.basename)
    assert sorted((get(r, "A"), int(get(r, "N"))) for r in loaded) == [
        ("new-1", 1),
        ("new-2", 2),
        ("new-3", 3),
    ]
    assert sorted(int(get(r, "SRC_ROW")) for r in loaded) == [1, 2, 3]


def test_refresh_only_queues_loading_happens_later(target: Target) -> None:
    """alter-pipe (https://docs.snowflake.com/en/sql-reference/sql/alter-pipe): REFRESH copies the files
    "to the Snowpipe ingest queue"; §3 "Files added to the queue, not that they loaded". So straight after
    REFRESH the rows are not in the table yet (stand-in: loading delayed by `configure`)."""
    loading = target.setup_loading("async")
    if not target.is_live:
        target.control.configure(target.account.name, load_delay_seconds=3600)
    staged = target.put_file(loading.prefix, "events", records("async", 2))

    assert names_file(refresh(target.admin, loading.pipe), staged.basename)
    assert table_rows(target.admin, loading.table) == []

    assert get(target.wait_loaded(loading, [staged])[staged.basename], "STATUS") == "Loaded"
    assert len(table_rows(target.admin, loading.table)) == 2


def test_refresh_skips_a_loaded_file_even_after_it_is_overwritten(target: Target) -> None:
    """§1 dedupe: REFRESH "checks the load history for both the pipe and the target table" and skips
    loaded files; Snowpipe stores "the path … and name of each loaded file, and prevents loading files with
    the same name even if they were later modified (i.e. have a different eTag)"."""
    loading = target.setup_loading("dedupe")
    staged = target.put_file(loading.prefix, "events", records("first", 2))
    assert names_file(refresh(target.admin, loading.pipe), staged.basename)
    assert get(target.wait_loaded(loading, [staged])[staged.basename], "STATUS") == "Loaded"

    again = refresh(target.admin, loading.pipe)
    assert not names_file(again, staged.basename), f"a loaded file was sent again: {again}"

    # Same key, new content (a new ETag): still the same path and name, so still skipped.
    target.put(staged.key, gzip.compress(b'{"a": "second-1", "n": 10}\n{"a": "second-2", "n": 20}\n'))
    after_overwrite = refresh(target.admin, loading.pipe)
    assert not names_file(after_overwrite, staged.basename), f"overwritten file was sent: {after_overwrite}"

    # A sentinel file proves the pipe did run after those REFRESHes.
    sentinel = target.put_file(loading.prefix, "sentinel", records("sentinel", 1))
    assert names_file(refresh(target.admin, loading.pipe), sentinel.basename)
    assert get(target.wait_loaded(loading, [sentinel])[sentinel.basename], "STATUS") == "Loaded"

    rows = rows_from(table_rows(target.admin, loading.table), staged.basename)
    assert sorted(get(r, "A") for r in rows) == ["first-1", "first-2"], rows
    assert len(history_of(copy_history(target.admin, loading.table), staged.basename)) == 1


def test_refresh_skips_a_file_staged_more_than_7_days_ago(target: Target) -> None:
    """§1: REFRESH "can only load data files that were staged within the last 7 days" (MODIFIED_AFTER's
    "default and maximum allowed value is 7 days", compared with LAST_MODIFIED). The stand-in's clock is
    moved 8 days past the file's LAST_MODIFIED. A control file under another PREFIX, sent before the move,
    proves the pipe works; the old file is never sent, so never loads."""
    target.needs_standin("needs the stand-in's clock: a real file cannot be made 8 days old")
    loading = target.setup_loading("old")
    control = target.put_file(loading.prefix + "ctl/", "control", records("control", 1))
    old = target.put_file(loading.prefix + "old/", "old", records("old", 2))

    sent = refresh(target.admin, loading.pipe, prefix="ctl/")
    assert names_file(sent, control.basename), sent
    assert not names_file(sent, old.basename), f"PREFIX = 'ctl/' sent a file outside ctl/: {sent}"
    assert get(target.wait_loaded(loading, [control])[control.basename], "STATUS") == "Loaded"

    target.control.advance_clock(8 * DAY)
    admin = target.reconnect()  # a new session, as a new tick would open after 8 days
    sent = refresh(admin, loading.pipe)
    assert not names_file(sent, old.basename), f"REFRESH sent a file staged 8 days ago: {sent}"
    target.settle()
    rows = table_rows(admin, loading.table)
    assert rows_from(rows, old.basename) == []
    assert len(rows_from(rows, control.basename)) == 1


def test_refresh_prefix_and_modified_after_narrow_what_is_sent(target: Target) -> None:
    """§1: PREFIX "is appended to the stage reference in the pipe definition" (a pipe on `@s/path1/` with
    `PREFIX='d1/'` loads from `/path1/d1/`); MODIFIED_AFTER (ISO-8601) is compared with LAST_MODIFIED, so
    only files modified after it are sent."""
    loading = target.setup_loading("narrow")
    in_d1 = target.put_file(loading.prefix + "d1/", "d1", records("d1", 1))
    in_d2 = target.put_file(loading.prefix + "d2/", "d2", records("d2", 1))

    sent = refresh(target.admin, loading.pipe, prefix="d1/")
    assert names_file(sent, in_d1.basename), sent
    assert not names_file(sent, in_d2.basename), sent

    earlier = target.put_file(loading.prefix + "d3/", "earlier", records("earlier", 1))
    first_modified = target.s3.head_object(Bucket=target.bucket, Key=earlier.key)["LastModified"]
    time.sleep(2.1)  # LAST_MODIFIED has whole seconds
    later = target.put_file(loading.prefix + "d3/", "later", records("later", 1))
    cutoff = (first_modified + timedelta(seconds=1)).astimezone(UTC).isoformat(timespec="seconds")
    sent = refresh(target.admin, loading.pipe, prefix="d3/", modified_after=cutoff)
    assert names_file(sent, later.basename), sent
    assert not names_file(sent, earlier.basename), f"MODIFIED_AFTER = {cutoff} sent an older file: {sent}"

    status = target.wait_loaded(loading, [in_d1, later])
    assert {get(r, "STATUS") for r in status.values()} == {"Loaded"}, status
    rows = table_rows(target.admin, loading.table)
    assert rows_from(rows, in_d2.basename) == []
    assert rows_from(rows, earlier.basename) == []


def test_recreating_the_pipe_forgets_its_history_and_reloads(target: Target) -> None:
    """§5 "When a pipe is recreated, the load history is dropped", a later REFRESH "could load duplicate
    data" (§1: dedupe holds only if the owner "did not recreate the pipe"); §2 "Dropping or recreating a
    pipe object removes the historical data for Snowpipe data loads using the pipe"."""
    loading = target.setup_loading("recreate")
    staged = target.put_file(loading.prefix, "events", records("re", 2))
    assert names_file(refresh(target.admin, loading.pipe), staged.basename)
    assert get(target.wait_loaded(loading, [staged])[staged.basename], "STATUS") == "Loaded"

    query(target.admin, f"CREATE OR REPLACE {loading.pipe_sql}")
    cleared = history_of(copy_history(target.admin, loading.table), staged.basename)
    assert cleared == [], f"COPY_HISTORY still shows the old pipe's load: {cleared}"

    sent = refresh(target.admin, loading.pipe)
    assert names_file(sent, staged.basename), f"the recreated pipe did not send the file: {sent}"
    assert get(target.wait_loaded(loading, [staged])[staged.basename], "STATUS") == "Loaded"
    assert len(rows_from(table_rows(target.admin, loading.table), staged.basename)) == 4
    assert len(history_of(copy_history(target.admin, loading.table), staged.basename)) == 1


def test_bad_files_fail_alone_and_their_neighbours_load(target: Target) -> None:
    """§5: Snowpipe's ON_ERROR default is SKIP_FILE; §2 COPY_HISTORY STATUS `Load failed` with
    FIRST_ERROR_MESSAGE and ERROR_COUNT. A non-gzip body and a file with one non-JSON line each fail whole
    (the valid line of the second is not loaded); the good files beside them load."""
    loading = target.setup_loading("errors")
    good_1 = target.put_file(loading.prefix, "good1", records("good1", 2))
    corrupt = target.put_raw(loading.prefix, "corrupt", b"\x1f\x8b\x08\x00 this is not a gzip stream")
    not_json = target.put_raw(
        loading.prefix,
        "notjson",
        gzip.compress(json.dumps({"a": "ok", "n": 1}).encode() + b"\nthis line is not json\n"),
    )
    good_2 = target.put_file(loading.prefix, "good2", records("good2", 3))
    files = [good_1, corrupt, not_json, good_2]

    sent = refresh(target.admin, loading.pipe)
    assert all(names_file(sent, f.basename) for f in files), sent
    status = target.wait_loaded(loading, files)

    for good, count in ((good_1, 2), (good_2, 3)):
        assert get(status[good.basename], "STATUS") == "Loaded", status[good.basename]
        assert get(status[good.basename], "ROW_COUNT") == count
    for bad in (corrupt, not_json):
        row = status[bad.basename]
        assert get(row, "STATUS") == "Load failed", row
        assert get(row, "FIRST_ERROR_MESSAGE"), row
        assert (get(row, "ERROR_COUNT") or 0) >= 1, row

    rows = table_rows(target.admin, loading.table)
    assert rows_from(rows, corrupt.basename) == []
    assert rows_from(rows, not_json.basename) == [], "SKIP_FILE loads nothing of a file with an error"
    assert len(rows) == 5


def test_injected_file_fault_is_a_load_failure(target: Target) -> None:
    """§5 SKIP_FILE and §2 `Load failed` + FIRST_ERROR_MESSAGE, for a failure the stand-in is told to make
    (its `inject_faults(fail_files=…)`): the file fails with that message, its neighbour loads."""
    target.needs_standin("needs the stand-in's fault injection: a real load cannot be made to fail on demand")
    loading = target.setup_loading("fault")
    doomed = target.put_file(loading.prefix, "doomed", records("doomed", 2))
    fine = target.put_file(loading.prefix, "fine", records("fine", 1))
    target.control.inject_faults(target.account.name, fail_files={doomed.key: "injected: disk on fire"})

    refresh(target.admin, loading.pipe)
    status = target.wait_loaded(loading, [doomed, fine])
    assert get(status[doomed.basename], "STATUS") == "Load failed", status
    assert "injected: disk on fire" in str(get(status[doomed.basename], "FIRST_ERROR_MESSAGE"))
    assert get(status[fine.basename], "STATUS") == "Loaded", status
    assert rows_from(table_rows(target.admin, loading.table), doomed.basename) == []


def test_paused_pipe_holds_files_until_resumed(target: Target) -> None:
    """§5 / alter-pipe: `PIPE_EXECUTION_PAUSED = TRUE` pauses the pipe; SYSTEM$PIPE_STATUS executionState is
    PAUSED; files submitted while paused "won't be processed until the pipe is resumed"; FALSE resumes it
    and executionState is RUNNING (§2)."""
    loading = target.setup_loading("pause")
    running = pipe_status(target.admin, loading.pipe)
    assert running["executionState"] == "RUNNING", running

    query(target.admin, f"ALTER PIPE {loading.pipe} SET PIPE_EXECUTION_PAUSED = TRUE")
    assert pipe_status(target.admin, loading.pipe)["executionState"] == "PAUSED"

    staged = target.put_file(loading.prefix, "events", records("paused", 2))
    refresh(target.admin, loading.pipe)
    target.settle()
    assert table_rows(target.admin, loading.table) == []
    history = history_of(copy_history(target.admin, loading.table), staged.basename)
    assert all(get(r, "STATUS") != "Loaded" for r in history), history
    # §2: ROW_PARSED is "NULL while in progress".
    assert all(get(r, "ROW_PARSED") is None for r in history if get(r, "STATUS") == "Load in progress")

    query(target.admin, f"ALTER PIPE {loading.pipe} SET PIPE_EXECUTION_PAUSED = FALSE")
    assert pipe_status(target.admin, loading.pipe)["executionState"] == "RUNNING"
    assert get(target.wait_loaded(loading, [staged])[staged.basename], "STATUS") == "Loaded"
    assert len(table_rows(target.admin, loading.table)) == 2


def test_pipe_status_fields(target: Target) -> None:
    """§2 SYSTEM$PIPE_STATUS: JSON with executionState and pendingFileCount; "The oldestPending* fields are
    absent when pendingFileCount=0"; after a load, lastIngestedFilePath names the file."""
    loading = target.setup_loading("status")
    idle = pipe_status(target.admin, loading.pipe)
    assert idle["executionState"] == "RUNNING", idle
    assert idle["pendingFileCount"] == 0, idle
    assert not [k for k in idle if k.startswith("oldestPending")], idle

    staged = target.put_file(loading.prefix, "events", records("status", 1))
    refresh(target.admin, loading.pipe)
    target.wait_loaded(loading, [staged])
    after = pipe_status(target.admin, loading.pipe)
    if after["pendingFileCount"] == 0:
        assert not [k for k in after if k.startswith("oldestPending")], after
    assert staged.basename in str(after.get("lastIngestedFilePath")), after


def test_copy_history_columns_and_status_values(target: Target) -> None:
    """§2: COPY_HISTORY's columns are FILE_NAME … BYTES_BILLED (21 listed) and STATUS is one of
    `Load in progress`, `Loaded`, `Load failed`, `Partially loaded`, `Load skipped`."""
    loading = target.setup_loading("columns")
    good = target.put_file(loading.prefix, "good", records("good", 1))
    bad = target.put_raw(loading.prefix, "bad", b"not gzip at all")
    refresh(target.admin, loading.pipe)
    target.wait_loaded(loading, [good, bad])

    names = columns(
        target.admin,
        "SELECT * FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY("
        f"TABLE_NAME => '{loading.table}', START_TIME => DATEADD(HOUR, -24, CURRENT_TIMESTAMP())))",
    )
    assert sorted(n.upper() for n in names) == sorted(COPY_HISTORY_COLUMNS)

    history = copy_history(target.admin, loading.table)
    assert len(history) >= 2
    assert {get(r, "STATUS") for r in history} <= STATUSES, history
    for row in history:
        assert str(get(row, "TABLE_NAME")).upper() == loading.table.rsplit(".", 1)[-1]


def test_refresh_skips_a_file_loaded_by_copy_into(target: Target) -> None:
    """§1: REFRESH "checks the load history for both the pipe and the target table" and skips files loaded
    "by a `COPY INTO <table>`" (a bulk load on a warehouse)."""
    loading = target.setup_loading("bulk")
    staged = target.put_file(loading.prefix, "events", records("bulk", 2))
    query(
        target.admin,
        f"COPY INTO {loading.table} (A, N, SRC_FILE, SRC_ROW) FROM (SELECT $1:a::STRING, $1:n::NUMBER, "
        f"METADATA$FILENAME, METADATA$FILE_ROW_NUMBER FROM @{loading.stage}) "
        f"FILE_FORMAT = (FORMAT_NAME = {target.file_format()})",
    )
    assert len(rows_from(table_rows(target.admin, loading.table), staged.basename)) == 2

    sent = refresh(target.admin, loading.pipe)
    assert not names_file(sent, staged.basename), f"REFRESH sent a file COPY INTO already loaded: {sent}"
    sentinel = target.put_file(loading.prefix, "sentinel", records("sentinel", 1))
    refresh(target.admin, loading.pipe)
    target.wait_loaded(loading, [sentinel])
    assert len(rows_from(table_rows(target.admin, loading.table), staged.basename)) == 2


def test_copy_history_starts_after_truncate(target: Target) -> None:
    """§2: COPY_HISTORY "Results start after the latest TRUNCATE"."""
    loading = target.setup_loading("truncate")
    staged = target.put_file(loading.prefix, "events", records("truncate", 1))
    refresh(target.admin, loading.pipe)
    target.wait_loaded(loading, [staged])
    query(target.admin, f"TRUNCATE TABLE {loading.table}")
    assert history_of(copy_history(target.admin, loading.table), staged.basename) == []


def test_copy_history_for_one_pipe(target: Target) -> None:
    """§2: COPY_HISTORY takes `PIPE_NAME => '<string>'`; rows carry PIPE_NAME; only that pipe's loads."""
    loading = target.setup_loading("bypipe")
    staged = target.put_file(loading.prefix, "events", records("bypipe", 1))
    refresh(target.admin, loading.pipe)
    target.wait_loaded(loading, [staged])

    rows = copy_history(target.admin, loading.table, pipe=loading.pipe)
    assert [basename for basename in (str(get(r, "FILE_NAME")).rsplit("/", 1)[-1] for r in rows)] == [staged.basename]
    assert str(get(rows[0], "PIPE_NAME")).upper() == loading.pipe.rsplit(".", 1)[-1]

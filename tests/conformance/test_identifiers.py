"""Identifiers: unquoted names fold to upper case; quoted names keep case and any character.

Facts: docs/snowflake-facts.md §9 (identifiers and quoting), §2 (SYSTEM$PIPE_STATUS with a
case-sensitive name). Floe's renderer double-quotes every identifier, so the stand-in must too.
"""

from __future__ import annotations

import pytest

from .harness import Target, get, names_file, pipe_status, query, records, table_rows


@pytest.mark.standin_gap("DuckDB, under fakesnow, compares quoted identifiers case-insensitively")
def test_unquoted_names_are_stored_upper_case_and_quoted_ones_are_distinct(target: Target) -> None:
    """§9: unquoted identifiers "are stored uppercase"; quoted identifiers are case-sensitive; `"` is
    escaped as `""`."""
    base = target.name("CASE")
    query(target.admin, f"CREATE TABLE {base.lower()} (X NUMBER)")
    query(target.admin, f'CREATE TABLE "{base.lower()}" (X NUMBER)')
    query(target.admin, f'CREATE TABLE "{base}_q""uote" (X NUMBER)')
    query(target.admin, f"INSERT INTO {base.lower()} (X) VALUES (1)")
    query(target.admin, f'INSERT INTO "{base.lower()}" (X) VALUES (2)')
    query(target.admin, f'INSERT INTO "{base}_q""uote" (X) VALUES (3)')

    names = {str(get(r, "name")) for r in query(target.admin, f"SHOW TABLES LIKE '{base}%'")}
    assert names == {base, base.lower(), f'{base}_q"uote'}, names
    assert [get(r, "X") for r in query(target.admin, f"SELECT X FROM {base}")] == [1]
    assert [get(r, "X") for r in query(target.admin, f'SELECT X FROM "{base.lower()}"')] == [2]
    assert [get(r, "X") for r in query(target.admin, f'SELECT X FROM "{base}_q""uote"')] == [3]


def test_quoted_mixed_case_names_through_the_whole_pipe(target: Target) -> None:
    """§9: quoted identifiers "may contain any character", each part of a qualified name quoted; §2:
    SYSTEM$PIPE_STATUS takes case-sensitive names as `'db.sch."myPipe"'`. A table, stage and pipe with
    mixed case, dots and spaces in their names load a file like any other. Such a stage is referenced in
    single quotes (https://docs.snowflake.com/en/sql-reference/sql/copy-into-table)."""
    prefix = target.prefix("quoted")
    access = target.create_access("QUOTED", allowed_prefixes=[prefix])
    schema = f"{target.database}.{target.schema}"
    table = f'{schema}."events.{target.run_id.lower()} T"'
    stage = f'{schema}."my Stage.{target.run_id.lower()}"'
    pipe_name = f"myPipe.{target.run_id.lower()}"
    pipe = f'{schema}."{pipe_name}"'
    query(target.admin, f"CREATE TABLE {table} (A STRING, N NUMBER, SRC_FILE STRING, SRC_ROW NUMBER)")
    query(target.admin, f"CREATE STAGE {stage} URL = '{target.url(prefix)}' STORAGE_INTEGRATION = {access.integration}")
    if target.is_live:
        target.await_stage_readable(stage)
    query(
        target.admin,
        f"CREATE PIPE {pipe} AUTO_INGEST = FALSE AS COPY INTO {table} (A, N, SRC_FILE, SRC_ROW) "
        "FROM (SELECT $1:a::STRING, $1:n::NUMBER, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER "
        f"FROM '@{stage}') FILE_FORMAT = (FORMAT_NAME = {target.file_format()})",
    )
    staged = target.put_file(prefix, "events", records("quoted", 2))

    assert names_file(query(target.admin, f"ALTER PIPE {pipe} REFRESH"), staged.basename)
    status = pipe_status(target.admin, f'{schema}."{pipe_name}"')
    assert status["executionState"] == "RUNNING", status
    target.wait_until(lambda: len(table_rows(target.admin, table)) == 2, f"2 rows in {table}")
    assert sorted(get(r, "A") for r in table_rows(target.admin, table)) == ["quoted-1", "quoted-2"]

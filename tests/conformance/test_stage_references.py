"""How a pipe's PATTERN and a stage reference are read.

- create-pipe (https://docs.snowflake.com/en/sql-reference/sql/create-pipe): for PATTERN, Snowflake "trims
  any path segments in the stage definition from the storage location and applies the regular expression
  to any remaining path segments and filenames".
- list (https://docs.snowflake.com/en/sql-reference/sql/list) and copy-into-table
  (https://docs.snowflake.com/en/sql-reference/sql/copy-into-table): a stage name with spaces or special
  characters "must be enclosed in single quotes (e.g. '@"my stage"')".
"""

from __future__ import annotations

import pytest
import snowflake.connector

from .harness import Target, get, names_file, query, records, refresh, rows_from, table_rows


def test_pipe_pattern_applies_to_the_path_after_the_stage_url(target: Target) -> None:
    """An anchored pattern over the relative path selects `events/…` files under the stage URL, and would
    select nothing if it were applied to the whole s3:// URL."""
    prefix = target.prefix("pattern")
    access = target.create_access("PATTERN", allowed_prefixes=[prefix])
    stage = target.create_stage("PATTERN", access, prefix)
    if target.is_live:
        target.await_stage_readable(stage)
    table = target.fq(target.name("T_PATTERN"))
    pipe = target.fq(target.name("P_PATTERN"))
    query(target.admin, f"CREATE TABLE {table} (A STRING, N NUMBER, SRC_FILE STRING, SRC_ROW NUMBER)")
    query(
        target.admin,
        f"CREATE PIPE {pipe} AUTO_INGEST = FALSE AS COPY INTO {table} (A, N, SRC_FILE, SRC_ROW) "
        "FROM (SELECT $1:a::STRING, $1:n::NUMBER, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER "
        f"FROM @{stage}) FILE_FORMAT = (FORMAT_NAME = {target.file_format()}) "
        "PATTERN = '^events/.*[.]json[.]gz$'",
    )
    if not target.is_live:
        target.control.set_reading(target.account.name, "today")  # REFRESH's rows are a reading
    wanted = target.put_file(prefix + "events/", "wanted", records("wanted", 2))
    other = target.put_file(prefix + "other/", "other", records("other", 1))

    sent = refresh(target.admin, pipe)
    assert not names_file(sent, other.basename), sent
    target.wait_until(lambda: len(table_rows(target.admin, table)) == 2, f"2 rows in {table}")
    assert rows_from(table_rows(target.admin, table), other.basename) == []
    assert len(rows_from(table_rows(target.admin, table), wanted.basename)) == 2


def _spaced_stage(target: Target, stem: str) -> tuple[str, str]:
    prefix = target.prefix(stem.lower())
    access = target.create_access(stem, allowed_prefixes=[prefix])
    stage = f'{target.database}.{target.schema}."{stem.lower()} stage {target.run_id.lower()}"'
    query(target.admin, f"CREATE STAGE {stage} URL = '{target.url(prefix)}' STORAGE_INTEGRATION = {access.integration}")
    return stage, prefix


def _listable(target: Target, sql: str) -> bool:
    try:
        query(target.admin, sql)
    except snowflake.connector.errors.DatabaseError:
        return False
    return True


def test_unquoted_stage_reference_with_a_space_is_refused(target: Target) -> None:
    stage, _ = _spaced_stage(target, "UNQUOTED")
    with pytest.raises(snowflake.connector.errors.ProgrammingError) as refused:
        query(target.admin, f"LIST @{stage}")
    assert "SQL compilation error" in str(refused.value), refused.value


def test_single_quoted_stage_reference_works_in_list_copy_and_pipe(target: Target) -> None:
    stage, prefix = _spaced_stage(target, "QUOTED")
    if target.is_live:
        target.wait_until(lambda: _listable(target, f"LIST '@{stage}'"), f"{stage} readable")
    staged = target.put_file(prefix, "events", records("quoted", 2))
    listed = query(target.admin, f"LIST '@{stage}'")
    assert any(str(get(r, "name")).endswith(staged.basename) for r in listed), listed

    table = target.fq(target.name("T_QUOTED"))
    query(target.admin, f"CREATE TABLE {table} (A STRING, N NUMBER, SRC_FILE STRING, SRC_ROW NUMBER)")
    select = "SELECT $1:a::STRING, $1:n::NUMBER, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER"
    file_format = f"FILE_FORMAT = (FORMAT_NAME = {target.file_format()})"
    query(target.admin, f"COPY INTO {table} (A, N, SRC_FILE, SRC_ROW) FROM ({select} FROM '@{stage}') {file_format}")
    assert len(rows_from(table_rows(target.admin, table), staged.basename)) == 2

    pipe = target.fq(target.name("P_QUOTED"))
    query(
        target.admin,
        f"CREATE PIPE {pipe} AUTO_INGEST = FALSE AS COPY INTO {table} (A, N, SRC_FILE, SRC_ROW) "
        f"FROM ({select} FROM '@{stage}') {file_format}",
    )
    later = target.put_file(prefix, "later", records("later", 1))
    refresh(target.admin, pipe)
    target.wait_until(lambda: len(rows_from(table_rows(target.admin, table), later.basename)) == 1, "later loaded")

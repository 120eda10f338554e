"""Rendering: the filters, every template, versions, the setup script, and docs/sql-review.md."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jinja2
import pytest

from kernel import render as r
from kernel.config import Settings
from kernel.connections import Connection
from kernel.render import RenderError, SqlText, Target

# A real RSA-2048 public key body (its private half was thrown away).
SAMPLE_PUBLIC_KEY = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvi/XRLRUJUNKvIj/1K+OJM7YSo3BEgbMUgMS6kH1WvVrNsd2vXb9omcc"
    "bYuXPSGYY/aNjBCy5mB462OOHK9FM2dIxliEKTgkJ9qTU0BBaDCSvf73oSC05NlD5G3DUJ/YoPOSE/qz9QKpmPyQn9CVh7PzXRpg"
    "7AiO4yx08k4mucfQhPWEtWkZDyCJX0eO4pxEw4KL/1SurV8ZIQYSp/MnRYFpoq3EM/YWJYxaNZtPA9XGlbqSOZaRC2UvAJ3j+0hF"
    "wSuno7wMik4Bald+erkhq5HiNTd4L0GQzcxn8X8RHvW6rGUQxD1t+nepLJ0zPaWnbTuns6BYZrGIiRWvfMGYrQIDAQAB"
)
SAMPLE_DESCRIPTION: dict[str, object] = {
    "org_id": "acme",
    "account": "xy12345.eu-west-1",
    "user": "FLOE_LOADER",
    "role": "FLOE_LOADER_ROLE",
    "warehouse": "FLOE_WH",
    "database": "ANALYTICS",
    "schema": "FLAGSMITH",
    "table": "FLAG_EVENTS",
    "aws_account_id": "123456789012",
}
SAMPLE_TIME = datetime(2025, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
SQL_REVIEW = Path(__file__).resolve().parents[1] / "docs" / "sql-review.md"


@pytest.fixture
def target() -> Target:
    return Target.from_description(SAMPLE_DESCRIPTION)


# -- filters ------------------------------------------------------------------------------------------


def test_ident_quotes_and_doubles_double_quotes() -> None:
    assert r.ident('My "odd" name').text == '"My ""odd"" name"'
    assert r.ident(("My.DB", "s", "T.1")).text == '"My.DB"."s"."T.1"'


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x" * 256,
        "a\nb",
        "a\rb",
        "a\x00b",
        "a\tb",
        "a\u200bb",  # zero-width space
        "a\u202eb",  # right-to-left override
        "a\u2028b",  # line separator
        "a\uff02b",  # fullwidth quotation mark
        "a\uff1bb",  # fullwidth semicolon
        " leading",
        "trailing ",
    ],
)
def test_ident_rejects_unsafe_names(bad: str) -> None:
    with pytest.raises(RenderError):
        r.ident(bad)


def test_ident_accepts_the_longest_name_and_any_printable_character() -> None:
    assert len(r.ident("x" * 255).text) == 257
    assert r.ident("a'b;--c/*d\\e").text == '"a\'b;--c/*d\\e"'


def test_ident_refuses_non_strings_and_already_rendered_sql() -> None:
    for value in (1, None, SqlText('"x"'), ()):
        with pytest.raises(RenderError):
            r.ident(value)


def test_literal_escapes_backslash_then_quote() -> None:
    assert r.literal("it's").text == "'it''s'"
    assert r.literal("a\\'b").text == "'a\\\\''b'"
    assert r.literal(SqlText('"D"."it\'s"')).text == "'\"D\".\"it''s\"'"


def test_literal_rejects_control_characters_and_non_strings() -> None:
    for value in ("a\nb", "a\x00", 3, None):
        with pytest.raises(RenderError):
            r.literal(value)


def test_a_template_printing_an_unfiltered_value_fails() -> None:
    environment = r._environment()
    with pytest.raises(RenderError, match="without the ident or literal filter"):
        environment.from_string("SELECT {{ value }}").render(value="1; DROP TABLE t")
    with pytest.raises(RenderError, match="without the ident or literal filter"):
        environment.from_string("SELECT {{ 'constant' }}").render()
    assert environment.from_string("SELECT {{ value | literal }}").render(value="x") == "SELECT 'x'"


def test_an_undefined_name_fails() -> None:
    with pytest.raises(jinja2.UndefinedError):
        r._environment().from_string("SELECT {{ missing | ident }}").render()


def test_every_template_file_is_a_known_kind() -> None:
    shipped = {p.stem for p in Path(r.__file__).resolve().parents[1].joinpath("sql_templates").glob("*.sql")}
    assert shipped == set(r.KINDS) | {"setup"}


# -- the target ---------------------------------------------------------------------------------------


def test_object_names_follow_the_contract(target: Target) -> None:
    assert target.integration == "FLOE_ACME_S3"
    assert Target.from_description({**SAMPLE_DESCRIPTION, "org_id": "a-b-1"}).integration == "FLOE_A_B_1_S3"
    assert target.qualified_stage == ("ANALYTICS", "FLAGSMITH", "FLOE_EVENTS_STAGE")
    assert target.qualified_pipe == ("ANALYTICS", "FLAGSMITH", "FLOE_EVENTS_PIPE")
    assert target.qualified_table == ("ANALYTICS", "FLAGSMITH", "FLAG_EVENTS")
    assert target.qualified_file_format == ("ANALYTICS", "FLAGSMITH", "FLOE_EVENTS_JSON")
    assert target.stage_url == "s3://floe-events/live/acme/"
    assert target.iam_role_arn == "arn:aws:iam::123456789012:role/floe/snowflake/floe-snowflake-acme"


def test_from_connection_uses_settings_and_the_connection(target: Target) -> None:
    connection = Connection(
        connection_id="c-1",
        org_id="acme",
        account="xy12345.eu-west-1",
        user="FLOE_LOADER",
        role="FLOE_LOADER_ROLE",
        warehouse="FLOE_WH",
        database="ANALYTICS",
        schema="FLAGSMITH",
        table="FLAG_EVENTS",
        secret_ref="floe/connections/c-1",
    )
    assert Target.from_connection(connection, Settings(), "123456789012") == target
    other = Settings(bucket="other-bucket", live_prefix="in/{org_id}/", iam_role_path="/x/")
    moved = Target.from_connection(connection, other, "123456789012")
    assert moved.stage_url == "s3://other-bucket/in/acme/"
    assert moved.iam_role_arn == "arn:aws:iam::123456789012:role/x/floe-snowflake-acme"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown fields"),
        ({"org_id": "Acme"}, "org_id"),
        ({"table": "a\nb"}, "table"),
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"live_prefix": "live/acme"}, "live_prefix"),
        ({"live_prefix": "live/other/"}, "org_id"),
        ({"aws_account_id": "12"}, "12 digits"),
        ({"iam_role_arn": "arn:aws:iam::1:user/x"}, "iam_role_arn"),
    ],
)
def test_from_description_validates(change: dict[str, object], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        Target.from_description({**SAMPLE_DESCRIPTION, **change})


def test_from_description_names_missing_fields() -> None:
    description = {k: v for k, v in SAMPLE_DESCRIPTION.items() if k not in ("warehouse", "aws_account_id")}
    with pytest.raises(RenderError, match="aws_account_id"):
        Target.from_description(description)
    description["iam_role_arn"] = "arn:aws:iam::123456789012:role/r"
    with pytest.raises(RenderError, match="lacks: warehouse"):
        Target.from_description(description)


# -- statements ---------------------------------------------------------------------------------------


def test_integration_allows_only_the_org_prefix(target: Target) -> None:
    sql = r.render("integration", target)
    assert "STORAGE_ALLOWED_LOCATIONS = ('s3://floe-events/live/acme/')" in sql
    assert 'CREATE STORAGE INTEGRATION IF NOT EXISTS "FLOE_ACME_S3"' in sql
    assert "OR REPLACE" not in sql  # a replaced integration gets a new external ID (docs/snowflake-facts.md §4)


def test_stage_points_at_the_org_prefix_through_the_integration(target: Target) -> None:
    sql = r.render("stage", target)
    assert "URL = 's3://floe-events/live/acme/'" in sql
    assert 'STORAGE_INTEGRATION = "FLOE_ACME_S3"' in sql


def test_pipe_is_manual_and_records_lineage(target: Target) -> None:
    sql = r.render("pipe", target)
    assert "AUTO_INGEST = FALSE" in sql
    for needed in ("METADATA$FILENAME", "METADATA$FILE_ROW_NUMBER", "METADATA$START_SCAN_TIME"):
        assert needed in sql
    assert "CURRENT_TIMESTAMP" not in sql  # docs/snowflake-facts.md §5
    assert "PARSE_JSON($1:traits::VARCHAR)" in sql
    assert "PARSE_JSON($1:metadata::VARCHAR)" in sql
    assert 'FROM \'@"ANALYTICS"."FLAGSMITH"."FLOE_EVENTS_STAGE"\'' in sql
    assert 'FORMAT_NAME = \'"ANALYTICS"."FLAGSMITH"."FLOE_EVENTS_JSON"\'' in sql


def test_pipe_loads_every_table_column_in_order(target: Target) -> None:
    table_columns = re.findall(r"^  ([A-Z_]+) [A-Z]", r.render("table", target), re.MULTILINE)
    copy_columns = re.findall(r"^  ([A-Z_]+),?$", r.render("pipe", target).split("FROM (")[0], re.MULTILINE)
    expressions = r.render("pipe", target).split("SELECT")[1].split("FROM '@")[0].strip().split(",\n")
    assert table_columns == copy_columns
    assert len(expressions) == len(table_columns) == 16
    assert table_columns[:11] == [
        "ENVIRONMENT_KEY",
        "COLLECTED_AT",
        "SDK_LANGUAGE",
        "SDK_VERSION",
        "EVENT",
        "FEATURE_NAME",
        "IDENTIFIER",
        "VALUE",
        "TRAITS",
        "METADATA",
        "TIMESTAMP",
    ]


def test_refresh_variants(target: Target) -> None:
    pipe = '"ANALYTICS"."FLAGSMITH"."FLOE_EVENTS_PIPE"'
    assert r.render("refresh", target) == f"ALTER PIPE {pipe} REFRESH"
    assert r.render("refresh", target, prefix="events/env_key=a'b/") == (
        f"ALTER PIPE {pipe} REFRESH PREFIX = 'events/env_key=a''b/'"
    )
    assert r.render("refresh", target, prefix=None, modified_after=SAMPLE_TIME) == (
        f"ALTER PIPE {pipe} REFRESH MODIFIED_AFTER = '2025-03-04T05:06:07+00:00'"
    )
    plus_two = SAMPLE_TIME.astimezone(timezone(timedelta(hours=2)))
    assert r.render("refresh", target, prefix="e/", modified_after=plus_two).endswith(
        "PREFIX = 'e/' MODIFIED_AFTER = '2025-03-04T05:06:07+00:00'"
    )


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("nope", {}, "unknown statement kind"),
        ("refresh", {"modified_after": datetime(2025, 1, 1)}, "timezone-aware"),
        ("refresh", {"prefix": "/abs"}, "relative"),
        ("refresh", {"prefix": ""}, "relative"),
        ("refresh", {"limit": 3}, "does not take limit"),
        ("copy_history", {}, "needs start_time"),
        ("copy_history", {"start_time": "2025-01-01"}, "timezone-aware"),
        ("pipe", {"comment": "x"}, "takes no parameters"),
        ("teardown", {"object": "database"}, "object must be one of"),
        ("show", {"object": "pipe", "name": "a\nb"}, "control"),
    ],
)
def test_render_rejects_bad_parameters(target: Target, kind: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        r.render(kind, target, **params)


def test_copy_history_selects_what_the_loader_reads(target: Target) -> None:
    sql = r.render("copy_history", target, start_time=SAMPLE_TIME)
    for column in (
        "FILE_NAME",
        "STAGE_LOCATION",
        "STATUS",
        "ROW_COUNT",
        "ROW_PARSED",
        "ERROR_COUNT",
        "FIRST_ERROR_MESSAGE",
        "FIRST_ERROR_LINE_NUMBER",
        "LAST_LOAD_TIME",
        "PIPE_RECEIVED_TIME",
    ):
        assert re.search(rf"^  {column},?$", sql, re.MULTILINE), column
    assert 'FROM TABLE("ANALYTICS".INFORMATION_SCHEMA.COPY_HISTORY(' in sql
    assert 'TABLE_NAME => \'"ANALYTICS"."FLAGSMITH"."FLAG_EVENTS"\'' in sql
    assert "START_TIME => TO_TIMESTAMP_LTZ('2025-03-04T05:06:07+00:00')" in sql


def test_pipe_status_names_the_pipe_as_a_quoted_string(target: Target) -> None:
    assert r.render("pipe_status", target) == (
        'SELECT SYSTEM$PIPE_STATUS(\'"ANALYTICS"."FLAGSMITH"."FLOE_EVENTS_PIPE"\') AS PIPE_STATUS'
    )


def test_teardown_keeps_the_table_unless_told(target: Target) -> None:
    assert [kind for kind, _ in r.teardown_statements(target)] == ["pipe", "stage"]
    statements = dict(r.teardown_statements(target, drop_table=True))
    assert statements["table"] == 'DROP TABLE IF EXISTS "ANALYTICS"."FLAGSMITH"."FLAG_EVENTS"'
    assert statements["pipe"].startswith("DROP PIPE IF EXISTS")


# -- versions -----------------------------------------------------------------------------------------


def test_provision_statements_run_in_order_with_their_versions(target: Target) -> None:
    statements = r.provision_statements(target)
    assert [kind for kind, _ in statements] == list(r.PROVISION_KINDS)
    for kind, sql in statements:
        version = r.object_version(kind, target)
        assert f"COMMENT = 'floe template v{version}'" in sql
        assert r.version_in_comment(f"floe template v{version}") == version


def test_object_version_hashes_the_statement_without_its_comment(target: Target) -> None:
    sql = r.render("stage", target)
    without_comment = re.sub(r"COMMENT = '[^']*'", "COMMENT = ''", sql)
    assert r.object_version("stage", target) == hashlib.sha256(without_comment.encode()).hexdigest()[:12]


def test_template_version_is_stable_and_follows_the_ddl(target: Target) -> None:
    version = r.template_version(target)
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    assert r.template_version(Target.from_description(SAMPLE_DESCRIPTION)) == version
    moved = replace(target, table="OTHER")
    assert r.template_version(moved) != version
    changed = {k for k in r.PROVISION_KINDS if r.object_version(k, moved) != r.object_version(k, target)}
    assert changed == {"table", "pipe"}  # the stage and file format do not name the table


def test_version_in_comment_ignores_other_comments() -> None:
    assert r.version_in_comment(None) is None
    assert r.version_in_comment("made by hand") is None
    assert r.version_in_comment("floe template vXYZ") is None


# -- setup script -------------------------------------------------------------------------------------


def test_setup_script_grants_what_the_loader_needs(target: Target) -> None:
    script = r.setup_script(target, SAMPLE_PUBLIC_KEY)
    role = '"FLOE_LOADER_ROLE"'
    for grant in (
        f'GRANT USAGE ON DATABASE "ANALYTICS" TO ROLE {role};',
        f'GRANT USAGE ON SCHEMA "ANALYTICS"."FLAGSMITH" TO ROLE {role};',
        f'GRANT USAGE ON WAREHOUSE "FLOE_WH" TO ROLE {role};',
        f'GRANT USAGE ON INTEGRATION "FLOE_ACME_S3" TO ROLE {role};',
        f'GRANT ROLE {role} TO USER "FLOE_LOADER";',
    ):
        assert grant in script
    for privilege in ("FILE FORMAT", "TABLE", "STAGE", "PIPE"):
        assert f'GRANT CREATE {privilege} ON SCHEMA "ANALYTICS"."FLAGSMITH" TO ROLE {role};' in script
    assert "TYPE = SERVICE" in script
    assert f"RSA_PUBLIC_KEY = '{SAMPLE_PUBLIC_KEY}'" in script
    assert r.render("integration", target) + ";" in script
    # every statement is explained: a SQL comment precedes each group
    assert all(block.lstrip().startswith("--") for block in script.split("\n\n"))


def test_setup_script_refuses_a_pem_or_garbage_key(target: Target) -> None:
    for key in ("-----BEGIN PUBLIC KEY-----\n" + SAMPLE_PUBLIC_KEY, "short", SAMPLE_PUBLIC_KEY + "'"):
        with pytest.raises(RenderError, match="public_key_b64"):
            r.setup_script(target, key)


# -- docs/sql-review.md -------------------------------------------------------------------------------


def review_blocks() -> list[tuple[str, str]]:
    """(label, sql) for every code block of docs/sql-review.md, in order, rendered for the sample."""
    target = Target.from_description(SAMPLE_DESCRIPTION)
    blocks = [(kind, sql + ";") for kind, sql in r.provision_statements(target)]
    blocks += [
        ("refresh", r.render("refresh", target) + ";"),
        ("refresh", r.render("refresh", target, prefix="events/", modified_after=SAMPLE_TIME) + ";"),
        ("copy_history", r.render("copy_history", target, start_time=SAMPLE_TIME) + ";"),
        ("pipe_status", r.render("pipe_status", target) + ";"),
    ]
    blocks += [(f"teardown {name}", sql + ";") for name, sql in r.teardown_statements(target, True)]
    blocks.append(("setup", r.setup_script(target, SAMPLE_PUBLIC_KEY).rstrip()))
    return blocks


_REVIEW_BLOCK = re.compile(r"<!-- rendered: ([a-z_ ]+) -->\n```sql\n(.*?)```", re.DOTALL)


def test_sql_review_doc_shows_the_rendered_sql() -> None:
    found = [(label, sql.rstrip("\n")) for label, sql in _REVIEW_BLOCK.findall(SQL_REVIEW.read_text())]
    assert found == review_blocks(), "out of date: run `.venv/bin/python tests/test_render.py` to refresh it"


def refresh_sql_review() -> None:
    """Rewrite the doc's rendered blocks in place (the prose around them is hand-written)."""
    blocks = iter(review_blocks())

    def fill(_: re.Match[str]) -> str:
        label, sql = next(blocks)
        return f"<!-- rendered: {label} -->\n```sql\n{sql}\n```"

    SQL_REVIEW.write_text(_REVIEW_BLOCK.sub(fill, SQL_REVIEW.read_text()))


if __name__ == "__main__":
    refresh_sql_review()


def test_user_key_sets_or_unsets_one_slot_and_refuses_anything_else(target: Target) -> None:
    key = "M" + "A" * 299
    assert (
        r.render("user_key", target, slot=2, public_key=key)
        == f"ALTER USER \"FLOE_LOADER\" SET RSA_PUBLIC_KEY_2 = '{key}'"
    )
    assert r.render("user_key", target, slot=1) == 'ALTER USER "FLOE_LOADER" UNSET RSA_PUBLIC_KEY'
    for bad in ({"slot": 3}, {"slot": 1, "public_key": "x'; DROP USER y; --"}):
        with pytest.raises(r.RenderError):
            r.render("user_key", target, **bad)

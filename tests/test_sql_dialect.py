"""Every template, rendered with ordinary and with hostile values, is rejected or is one Snowflake statement.

Checks, with sqlglot's Snowflake dialect:
- parsing gives exactly one statement (the setup script: exactly its 18 statements);
- lexing the hostile rendering gives the same token kinds, in the same order and with the same comments,
  as an ordinary rendering, and each hostile value comes back intact as exactly the identifier or string
  token it was meant to be. This is what guards the statements sqlglot cannot parse fully: CREATE PIPE,
  ALTER PIPE … REFRESH, DROP PIPE, SHOW PIPES / INTEGRATIONS, and in the setup script CREATE ROLE,
  CREATE USER, ALTER USER and GRANT ROLE come back as one
  `exp.Command` (asserted below, so a sqlglot upgrade that parses them is noticed); the pipe's COPY body
  is parsed on its own as a COPY statement.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlglot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

from kernel import render as r
from kernel.render import RenderError, Target

# sqlglot logs a warning each time it falls back to exp.Command; that is expected here.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

SAMPLE_DESCRIPTION: dict[str, object] = {
    "org_id": "acme",
    "account": "xy12345",
    "user": "FLOE_LOADER",
    "role": "FLOE_LOADER_ROLE",
    "warehouse": "FLOE_WH",
    "database": "ANALYTICS",
    "schema": "FLAGSMITH",
    "table": "FLAG_EVENTS",
    "aws_account_id": "123456789012",
}
SAMPLE_PUBLIC_KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 300 + "IDAQAB"
SAMPLE_TIME = datetime(2025, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
IDENT_FIELDS = ("user", "role", "warehouse", "database", "schema", "table", "file_format")
PLACEHOLDER = "PLACEHOLDER_VALUE_7"
SETUP_STATEMENTS = 18


def _case(kind: str, **params: object) -> tuple[str, dict[str, object]]:
    return kind, params


# (kind, params) covering every kind and every branch of its template.
CASES = [
    *[_case(kind) for kind in r.PROVISION_KINDS],
    _case("refresh"),
    _case("refresh", prefix="events/env_key=abc/"),
    _case("refresh", modified_after=SAMPLE_TIME),
    _case("refresh", prefix="events/", modified_after=SAMPLE_TIME),
    _case("copy_history", start_time=SAMPLE_TIME),
    _case("pipe_status"),
    _case("loaded_files", names=["events/a.json.gz"], since=SAMPLE_TIME),
    _case("loaded_files", names=["events/a.json.gz"]),
    _case("loaded_files", names=["events/a.json.gz", "events/it's; --.json.gz"], since=SAMPLE_TIME),
    *[_case("teardown", object=name) for name in r.TEARDOWN_OBJECTS],
    _case("describe_integration"),
    _case("grant_integration"),
    *[_case("show", object=name, name="SOME_NAME") for name in r.SHOWABLE_OBJECTS],
    _case("list_stage"),
    _case("query_history"),
    *[_case("drop_scratch", object=name) for name in r.SCRATCH_OBJECTS],
]
# Statements sqlglot 30 parses only as an opaque exp.Command (checked by tokens instead).
COMMAND_CASES = {
    ("pipe", ""),
    ("refresh", ""),
    ("teardown", "pipe"),
    ("show", "pipe"),
    ("show", "integration"),
    ("drop_scratch", "user"),
}

HOSTILE_SEEDS = [
    'x"; DROP TABLE t; --',
    "x'; DROP TABLE t; --",
    "a--b",
    "a/*b*/c",
    "*/ DROP TABLE t /*",
    "back\\slash\\",
    "\\'",
    '"',
    '""',
    "'",
    ";",
    "$$",
    "@stage",
    "a.b.c",
    "IDENTIFIER('x')",
    "\uff02fullwidth\uff02",  # fullwidth look-alike of a double quote
    "\uff07\uff1b",  # fullwidth look-alikes of a quote and a semicolon
    "\u0410\u0412\u0421",  # Cyrillic letters that look Latin
    "zero\u200bwidth",
    "rtl\u202eoverride",
    "new\nline",
    "carriage\rreturn",
    "nul\x00byte",
    "tab\there",
    "x" * 255,
    "x" * 256,
    " padded ",
    "",
    "caf\u00e9",
    "e\u0301",  # decomposed é: NFKC composes it
    "\U0001f600",
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE_SEEDS),
    st.text(alphabet=st.sampled_from(list("\"'\\;-/*$@.() \n\tAaZz09_\u00e9\uff02\u200b")), max_size=40),
    st.text(max_size=300),
)


def _sample_target() -> Target:
    return Target.from_description(SAMPLE_DESCRIPTION)


def _case_id(kind: str, params: dict[str, object]) -> str:
    return kind + "".join(f"-{k}" for k in params)


def _is_command_case(kind: str, params: dict[str, object]) -> bool:
    detail = str(params.get("object", ""))
    return (kind, detail) in COMMAND_CASES


def _parse_one(sql: str) -> exp.Expr:
    statements = [s for s in sqlglot.parse(sql, read="snowflake") if s is not None]
    assert len(statements) == 1, sql
    return statements[0]


def _tokens(sql: str) -> list[Token]:
    return list(sqlglot.tokenize(sql, read="snowflake"))


_QUOTED_PART = re.compile(r'"((?:[^"]|"")*)"')


def _name_parts(text: str) -> list[str] | None:
    """`"A"."B""c"` → ["A", 'B"c'], decoded independently of the filters; None if not such a name."""
    parts = _QUOTED_PART.findall(text)
    rebuilt = ".".join('"' + p + '"' for p in parts)
    return [p.replace('""', '"') for p in parts] if parts and rebuilt == text else None


def _assert_same_shape(ordinary: str, hostile: str, value: str) -> None:
    """Same token kinds and comments; where the ordinary SQL had PLACEHOLDER, the hostile one has `value`."""
    expected, actual = _tokens(ordinary), _tokens(hostile)
    assert [t.token_type for t in actual] == [t.token_type for t in expected], hostile
    for want, got in zip(expected, actual, strict=True):
        assert got.comments == want.comments
        if want.token_type == TokenType.IDENTIFIER and want.text == PLACEHOLDER:
            assert got.text == value
        elif want.token_type == TokenType.STRING and PLACEHOLDER in want.text:
            # A quoted name inside a string: SYSTEM$PIPE_STATUS's argument, or a stage reference (`@…`).
            assert got.text.startswith("@") == want.text.startswith("@")
            want_parts = _name_parts(want.text.removeprefix("@"))
            assert want_parts is not None
            assert _name_parts(got.text.removeprefix("@")) == [value if p == PLACEHOLDER else p for p in want_parts]
        elif r.version_in_comment(want.text):
            assert r.version_in_comment(got.text)  # the version follows the DDL, so it differs
        else:
            assert got.text == want.text


# -- ordinary values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "params"), CASES, ids=[_case_id(k, p) for k, p in CASES])
def test_each_statement_parses_as_one_snowflake_statement(kind: str, params: dict[str, object]) -> None:
    sql = r.render(kind, _sample_target(), **params)
    statement = _parse_one(sql)
    assert isinstance(statement, exp.Command) == _is_command_case(kind, params), type(statement)
    assert not any(t.token_type == TokenType.SEMICOLON for t in _tokens(sql))


def test_the_pipe_copy_body_parses_as_a_copy_statement() -> None:
    sql = r.render("pipe", _sample_target())
    _, body = sql.split("\nAS\n")
    copy = _parse_one(body)
    assert isinstance(copy, exp.Copy)
    assert copy.this.find(exp.Table).sql("snowflake") == '"ANALYTICS"."FLAGSMITH"."FLAG_EVENTS"'
    assert "CURRENT_TIMESTAMP" not in {f.sql_name() for f in copy.find_all(exp.Func)}


def test_the_setup_script_is_its_statements_and_nothing_else() -> None:
    script = r.setup_script(_sample_target(), SAMPLE_PUBLIC_KEY)
    statements = [s for s in sqlglot.parse(script, read="snowflake") if s is not None]
    assert len(statements) == SETUP_STATEMENTS
    assert sum(t.token_type == TokenType.SEMICOLON for t in _tokens(script)) == SETUP_STATEMENTS


# Names the connection row accepts that a bare `@db.schema.stage` would break (docs/snowflake-facts.md §9).
SPECIAL_NAMES = ["Analytics DB", "a.b", 'say "hi"', "it's", "back\\slash", " inner  spaces x", "a@t", "x/y"]


@pytest.mark.parametrize("field", ["database", "schema"])
@pytest.mark.parametrize("name", SPECIAL_NAMES)
def test_every_stage_reference_is_single_quoted_whatever_the_names(field: str, name: str) -> None:
    """The class of bug: a template naming a stage as a bare `@…`. Every rendering parses, no `@`
    stands outside a string or a quoted name, and each stage reference decodes to the stage's own qualified name."""
    target = replace(_sample_target(), **{field: name.strip()})
    stage_refs = 0
    for case, sql in _renderings(target):
        if case == "setup":
            assert len([s for s in sqlglot.parse(sql, read="snowflake") if s]) == SETUP_STATEMENTS
        else:
            _parse_one(sql)
            if case == "pipe":
                assert isinstance(_parse_one(sql.split("\nAS\n")[1]), exp.Copy)
        for token in _tokens(sql):
            if token.token_type not in (TokenType.STRING, TokenType.IDENTIFIER):
                assert "@" not in token.text, (case, sql)  # a bare stage reference
            elif token.text.startswith("@"):
                assert _name_parts(token.text[1:]) == list(target.qualified_stage), (case, sql)
                stage_refs += 1
    assert stage_refs == 2  # LIST and the pipe's FROM


def test_shape_check_catches_an_injection() -> None:
    """The checker itself: an unescaped value changes the token stream, and the check fails."""
    ordinary = f'DROP PIPE IF EXISTS "{PLACEHOLDER}"'
    injected = 'DROP PIPE IF EXISTS "x"; DROP TABLE t; --"'
    with pytest.raises(AssertionError):
        _assert_same_shape(ordinary, injected, 'x"; DROP TABLE t; --')


# -- hostile values -----------------------------------------------------------------------------------


def _renderings(target: Target) -> Iterator[tuple[str, str]]:
    for kind, params in CASES:
        yield _case_id(kind, params), r.render(kind, target, **params)
    yield "setup", r.setup_script(target, SAMPLE_PUBLIC_KEY)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(IDENT_FIELDS), value=hostile_text)
def test_hostile_identifiers_are_rejected_or_stay_one_identifier(field: str, value: str) -> None:
    try:
        hostile = replace(_sample_target(), **{field: value})
    except RenderError:
        with pytest.raises(RenderError):
            r.ident(value)  # rejected by the same rule the filter applies
        event("rejected")
        return
    event("rendered")
    ordinary = replace(_sample_target(), **{field: PLACEHOLDER})
    for (name, want), (_, got) in zip(_renderings(ordinary), _renderings(hostile), strict=True):
        _assert_same_shape(want, got, value)
        if name == "setup":
            assert len([s for s in sqlglot.parse(got, read="snowflake") if s]) == SETUP_STATEMENTS
        else:
            _parse_one(got)


@settings(max_examples=150, deadline=None)
@given(value=hostile_text)
def test_hostile_refresh_prefixes_are_rejected_or_stay_one_string(value: str) -> None:
    target = _sample_target()
    try:
        sql = r.render("refresh", target, prefix=value, modified_after=SAMPLE_TIME)
    except RenderError:
        return
    statement = _parse_one(sql)
    assert isinstance(statement, exp.Command)
    strings = [t.text for t in _tokens(sql) if t.token_type == TokenType.STRING]
    assert strings == [value, "2025-03-04T05:06:07+00:00"]
    ordinary = r.render("refresh", target, prefix="p/", modified_after=SAMPLE_TIME)
    assert [t.token_type for t in _tokens(sql)] == [t.token_type for t in _tokens(ordinary)]


@settings(max_examples=100, deadline=None)
@given(value=hostile_text)
def test_hostile_show_names_are_rejected_or_stay_one_string(value: str) -> None:
    try:
        sql = r.render("show", _sample_target(), object="pipe", name=value)
    except RenderError:
        return
    _parse_one(sql)
    strings = [t.text for t in _tokens(sql) if t.token_type == TokenType.STRING]
    assert strings == [value]


@settings(max_examples=100, deadline=None)
@given(key=hostile_text)
def test_hostile_public_keys_are_rejected_or_stay_one_string(key: str) -> None:
    try:
        script = r.setup_script(_sample_target(), key)
    except RenderError:
        return
    strings = [t.text for t in _tokens(script) if t.token_type == TokenType.STRING]
    assert strings.count(key) == 2  # CREATE USER and ALTER USER


def test_times_render_as_one_iso_string() -> None:
    sql = r.render("copy_history", _sample_target(), start_time=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert isinstance(_parse_one(sql), exp.Select)
    assert "2025-01-02T03:04:05+00:00" in [t.text for t in _tokens(sql) if t.token_type == TokenType.STRING]

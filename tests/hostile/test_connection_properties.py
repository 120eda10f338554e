"""Connection rows with hostile identifiers and organisation ids (hypothesis, pure).

A value is either refused when the `Connection` is built (`InvalidConnection`, the value not echoed) or,
once accepted, usable everywhere downstream: every statement Floe renders for it keeps the same SQL
structure as for a plain name (the value only ever inside a quoted identifier), and an organisation id
maps to a prefix of its own that no other id's prefix contains, and to valid IAM and Snowflake names.
The SQL filters' own hostile-value tests live in tests/test_sql_dialect.py.
"""

from __future__ import annotations

import re
import string
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devstack.scenario import new_connection
from kernel import render
from kernel.config import Settings
from kernel.connections import (
    ACCOUNT_PATTERN,
    SECRET_REF_PATTERN,
    Connection,
    ConnectionStatus,
    InvalidConnection,
)
from kernel.identifiers import CONNECTION_ID_PATTERN, ORG_ID_PATTERN
from kernel.render import RenderError, Target

SETTINGS = Settings()
AWS_ACCOUNT = "123456789012"
IDENTIFIER_FIELDS = ("user", "role", "warehouse", "database", "schema", "table", "file_format")
PUBLIC_KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "A" * 300 + "IDAQAB"
RULE_TEXT = " ".join(p.pattern for p in (ORG_ID_PATTERN, CONNECTION_ID_PATTERN, ACCOUNT_PATTERN, SECRET_REF_PATTERN))

BASE = replace(new_connection("acme", "ACME_ACCOUNT", Settings()), connection_id="c-1", status=ConnectionStatus.READY)

hostile_identifiers = st.sampled_from(
    [
        'a"b',
        '"',
        '""',
        'x"; DROP TABLE t; --',
        "x'; DROP TABLE t; --",
        "x -- comment",
        "x /* c */ y",
        "x;y",
        "x\\y",
        "x\\",
        "a.b",
        "a b",
        "$1",
        "@stage",
        "IDENTIFIER('x')",
        "café",
        "cafe\u0301",  # NFD
        "\uff02x\uff1b",  # fullwidth quote and semicolon
        "\uff58",  # fullwidth x
        "\u0421afe",  # Cyrillic capital Es
        "x\u200by",  # zero-width space
        "x\u202ey",  # right-to-left override
        "x\ny",
        "x\x00y",
        " x",
        "x ",
        "",
        "x" * 255,
        "x" * 256,
        "ﬁ",  # ligature, NFKC → fi
        "\u0410nalytics",  # Cyrillic capital A for Latin A
        "\u0420\u0410\u0421\u0415",  # Cyrillic, reads as PACE: every letter looks Latin
        "\u0391NALYTICS",  # Greek capital Alpha
        "данные",  # Cyrillic, not a look-alike of a Latin name
    ]
) | st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=300)

hostile_org_ids = (
    st.sampled_from(
        [
            "acme",
            "a",
            "a-b",
            "acme-",
            "0",
            "../acme",
            "..",
            "acme/..",
            "acme/x",
            "acme%2Fx",
            "%2e%2e",
            "/acme",
            "s3://acme",
            "Acme",
            "ACME",
            "acmé",
            "\u0430cme",  # Cyrillic small a
            "acme\n",
            "acme ",
            "acme_x",
            "acme.x",
            "-acme",
            "a" * 63,
            "a" * 64,
            "x" * 49,
            "x" * 50,
        ]
    )
    | st.from_regex(ORG_ID_PATTERN, fullmatch=True)
    | st.text(max_size=70)
)


def _build(**changes: Any) -> Connection:
    return replace(BASE, **changes)


# -- a small lexer: what is outside quotes is the statement's structure ---------------------------


def _lex(sql: str) -> tuple[str, list[str], list[str]]:
    """(skeleton, identifiers, literals): quoted identifiers become "I" and literals 'L' in the skeleton."""
    skeleton: list[str] = []
    identifiers: list[str] = []
    literals: list[str] = []
    i = 0
    while i < len(sql):
        quote = sql[i]
        if quote not in "\"'":
            skeleton.append(quote)
            i += 1
            continue
        buffer: list[str] = []
        j = i + 1
        while True:
            assert j < len(sql), f"unterminated {quote} in {sql!r}"
            if quote == "'" and sql[j] == "\\":
                buffer.append(sql[j + 1])
                j += 2
            elif sql[j] == quote and sql[j + 1 : j + 2] == quote:
                buffer.append(quote)
                j += 2
            elif sql[j] == quote:
                break
            else:
                buffer.append(sql[j])
                j += 1
        (identifiers if quote == '"' else literals).append("".join(buffer))
        skeleton.append('"I"' if quote == '"' else "'L'")
        i = j + 1
    return "".join(skeleton), identifiers, literals


def _structure(sql: str) -> tuple[str, list[str], list[str]]:
    """Skeleton plus the skeletons of literals that hold quoted names (FORMAT_NAME, TABLE_NAME => …)."""
    sql = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    skeleton, identifiers, literals = _lex(sql)
    nested: list[str] = []
    for literal in literals:
        if literal.startswith('"'):
            inner, names, _ = _lex(literal)
            assert re.fullmatch(r'"I"(\."I")*', inner), f"a quoted name in a literal broke out: {literal!r}"
            identifiers += names
            nested.append(inner)
    return skeleton, identifiers, nested


def _statements(connection: Connection) -> list[str]:
    target = Target.from_connection(connection, SETTINGS, AWS_ACCOUNT)
    now = datetime.now(UTC)
    return [
        *(sql for _, sql in render.provision_statements(target)),
        render.render("refresh", target, prefix="events/", modified_after=now),
        render.render("copy_history", target, start_time=now),
        render.render("pipe_status", target),
        render.render("describe_integration", target),
        render.render("grant_integration", target),
        render.render("list_stage", target),
        *(sql for _, sql in render.teardown_statements(target, drop_table=True)),
        render.setup_script(target, PUBLIC_KEY),
    ]


# -- identifiers ----------------------------------------------------------------------------------


@settings(max_examples=600, deadline=None)
@given(field=st.sampled_from(IDENTIFIER_FIELDS), value=hostile_identifiers)
def test_a_refused_identifier_is_refused_at_construction_without_echoing_it(field: str, value: str) -> None:
    refused: InvalidConnection | None = None
    try:
        _build(**{field: value})
    except InvalidConnection as error:
        refused = error
    if refused is not None:
        assert refused.field == field
        assert len(value) < 4 or value not in str(refused) or value in RULE_TEXT
        return
    assert value.isprintable()
    assert 0 < len(value) <= 255


@settings(max_examples=600, deadline=None)
@given(field=st.sampled_from(IDENTIFIER_FIELDS), value=hostile_identifiers)
def test_an_accepted_identifier_only_ever_renders_inside_a_quoted_identifier(field: str, value: str) -> None:
    try:
        connection = _build(**{field: value})
        hostile = _statements(connection)
    except (InvalidConnection, RenderError):
        return  # refused: by the model, or (see the next test) by the renderer
    plain = _statements(_build(**{field: "PLAIN_NAME"}))
    assert len(hostile) == len(plain)
    for hostile_sql, plain_sql in zip(hostile, plain, strict=True):
        skeleton, identifiers, nested = _structure(hostile_sql)
        plain_skeleton, plain_identifiers, plain_nested = _structure(plain_sql)
        assert (skeleton, nested) == (plain_skeleton, plain_nested), hostile_sql
        if "PLAIN_NAME" in plain_identifiers:
            assert value in identifiers, hostile_sql


@settings(max_examples=600, deadline=None)
@given(field=st.sampled_from(IDENTIFIER_FIELDS), value=hostile_identifiers)
def test_an_identifier_the_connection_accepts_is_one_floe_can_render(field: str, value: str) -> None:
    """The row's checks and the renderer's must agree: a row accepted here is stored, then every tick
    reads its secret and logs in to Snowflake before rendering refuses it (and provision fails)."""
    try:
        connection = _build(**{field: value})
    except InvalidConnection:
        return
    try:
        _statements(connection)
    except RenderError as error:
        pytest.fail(f"Connection accepted {field}={value!r}, rendering refuses it: {error}")


# Latin letters and a look-alike from another script (Unicode's confusables: Cyrillic and Greek).
LOOK_ALIKES = {
    "A": "\u0410",
    "B": "\u0412",
    "C": "\u0421",
    "E": "\u0415",
    "H": "\u041d",
    "K": "\u041a",
    "M": "\u041c",
    "O": "\u041e",
    "P": "\u0420",
    "T": "\u0422",
    "X": "\u0425",
    "a": "\u0430",
    "c": "\u0441",
    "e": "\u0435",
    "o": "\u043e",
    "p": "\u0440",
    "x": "\u0445",
    "y": "\u0443",
    "I": "\u0399",
    "N": "\u039d",
    "Z": "\u0396",
}
latin_names = st.text(alphabet=st.sampled_from(sorted(LOOK_ALIKES) + list("_ 0123456789DFGJLQRSUVW")), min_size=1)


def _assert_refused_naming_only_the_field(field: str, value: str) -> None:
    with pytest.raises(InvalidConnection) as refused:
        _build(**{field: value})
    assert refused.value.field == field
    assert value not in str(refused.value)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(IDENTIFIER_FIELDS), name=latin_names, data=st.data())
def test_a_name_with_one_look_alike_letter_is_refused(field: str, name: str, data: st.DataObject) -> None:
    """The class of bug: one letter swapped for its look-alike in another script names another object
    (mixed scripts; or, when it is the only letter, a whole-script look-alike)."""
    name = name.strip()
    swappable = [i for i, c in enumerate(name) if c in LOOK_ALIKES]
    assume(swappable)
    index = data.draw(st.sampled_from(swappable))
    _assert_refused_naming_only_the_field(field, name[:index] + LOOK_ALIKES[name[index]] + name[index + 1 :])


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(IDENTIFIER_FIELDS), name=st.text(alphabet=st.sampled_from(sorted(LOOK_ALIKES)), min_size=1)
)
def test_a_name_whose_every_letter_is_a_look_alike_is_refused(field: str, name: str) -> None:
    """A whole-script confusable: Cyrillic U+0420 U+0410 U+0421 U+0415 reads as Latin `PACE`."""
    _assert_refused_naming_only_the_field(field, "".join(LOOK_ALIKES[c] for c in name))


def test_a_name_in_one_other_script_is_accepted() -> None:
    for value in ("данные", "日本語", "Données", "Analytics DB"):
        assert _build(database=value).database == value


def test_plain_names_never_load_the_confusable_tables() -> None:
    """kernel.identifiers runs on the idle path (every row read): the tables load only for non-ASCII names."""
    code = (
        "import sys, dataclasses, loader.handler\n"
        "from tests.hostile.test_connection_properties import BASE\n"
        "dataclasses.replace(BASE, database='Analytics DB')\n"
        "assert 'confusable_homoglyphs' not in sys.modules\n"
        "dataclasses.replace(BASE, database='Donn\u00e9es')\n"
        "assert 'confusable_homoglyphs' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- organisation ids -----------------------------------------------------------------------------


@settings(max_examples=800, deadline=None)
@given(hostile_org_ids)
def test_an_accepted_org_id_is_confined_to_its_own_prefix(org_id: str) -> None:
    try:
        connection = _build(org_id=org_id, secret_ref=f"floe/connections/{org_id}")
    except InvalidConnection as error:
        refused_field = error.field
        assert refused_field in ("org_id", "secret_ref")
        return
    allowed = set(string.ascii_lowercase + string.digits + "-")
    assert set(org_id) <= allowed
    live = SETTINGS.live_prefix_for(connection.org_id)
    dead = SETTINGS.dead_letter_prefix_for(connection.org_id)
    assert live == f"live/{org_id}/"
    assert dead == f"dead-letter/{org_id}/"
    for prefix in (live, dead):
        segments = prefix.split("/")
        assert segments[1] == org_id
        assert ".." not in segments
        assert "%" not in prefix


@settings(max_examples=800, deadline=None)
@given(st.from_regex(ORG_ID_PATTERN, fullmatch=True), st.from_regex(ORG_ID_PATTERN, fullmatch=True))
def test_no_organisations_prefix_contains_anothers(first: str, second: str) -> None:
    assume(first != second)
    for prefix_of in (SETTINGS.live_prefix_for, SETTINGS.dead_letter_prefix_for):
        assert not prefix_of(first).startswith(prefix_of(second))
    assert render.integration_name(first) != render.integration_name(second)
    assert render.iam_role_name(first) != render.iam_role_name(second)


@settings(max_examples=300, deadline=None)
@given(hostile_org_ids)
def test_an_org_id_the_connection_accepts_is_one_floe_can_render(org_id: str) -> None:
    """IAM role names hold at most 64 characters; `floe-snowflake-` takes 15 of them."""
    try:
        connection = _build(org_id=org_id)
    except InvalidConnection:
        return
    try:
        _statements(connection)
    except RenderError as error:
        pytest.fail(f"Connection accepted org_id={org_id!r} ({len(org_id)} characters), rendering refuses it: {error}")
    assert len(render.iam_role_name(org_id)) <= 64

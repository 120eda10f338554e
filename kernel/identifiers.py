"""Every naming rule Floe checks, in one place: Snowflake identifiers (refused when a row is stored and
again when SQL is rendered), organisation and connection ids, bucket names and AWS account ids. Light
enough for the Lambda's cold path."""

from __future__ import annotations

import re
import unicodedata

IDENTIFIER_MAX_LENGTH = 255  # docs/snowflake-facts.md §9, quoted or not
# 49 at most: the organisation's IAM role, `floe-snowflake-<org_id>`, must fit IAM's 64-character names.
ORG_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,48}$")
CONNECTION_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
AWS_ACCOUNT_PATTERN = re.compile(r"[0-9]{12}")


def identifier_problem(value: object) -> str | None:
    """Why `value` is not safe as one quoted identifier part, or None if it is.

    Quoting makes any character inert (docs/snowflake-facts.md §9), so the rule keeps out what would
    mislead a reviewer or break a line-based tool: control and invisible characters, compatibility
    look-alikes (NFKC changes them: fullwidth quotes, ligatures), leading or trailing spaces, and names
    that only look like another (`_script_problem`). The message names the rule, never the value.
    """
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not 0 < len(value) <= IDENTIFIER_MAX_LENGTH:
        return f"must be 1-{IDENTIFIER_MAX_LENGTH} characters (Snowflake's limit)"
    if not value.isprintable():
        return "contains a control or invisible character"
    if unicodedata.normalize("NFKC", value) != value:
        return "contains a look-alike (compatibility) character"
    if value != value.strip():
        return "has leading or trailing whitespace"
    if not value.isascii():
        return _script_problem(value)
    return None


def _script_problem(value: str) -> str | None:
    """Unicode's confusable rules (UTS #39): `Analytics` spelt with a Cyrillic A (U+0410) reads as
    `Analytics` but is another object, and Floe would create objects and load files there.

    Refused: mixed scripts (Common characters such as digits, spaces and punctuation aside), and a name
    in another script whose every letter has a Latin look-alike (a whole-script confusable: Cyrillic
    U+0420 U+0410 U+0421 U+0415 reads as `PACE`). The library's tables (about 1 MB of JSON, ~40 ms)
    load here, only for a non-ASCII name, so an idle tick's cold start on plain names never pays.
    """
    from confusable_homoglyphs import categories, confusables

    if confusables.is_mixed_script(value):
        return "mixes letters of different scripts (a look-alike of another name)"
    foreign = {c for c in value if c.isalpha() and categories.alias(c) != "LATIN"}
    latin_look_alikes = confusables.is_confusable(value, greedy=True, preferred_aliases=["latin"]) or []
    if foreign and foreign <= {found["character"] for found in latin_look_alikes}:
        return "is written in letters that all look Latin (a look-alike of another name)"
    return None

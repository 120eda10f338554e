"""What may be a Snowflake identifier in Floe: one rule, shared by the connection rows (refused when
stored) and the SQL renderer (refused when rendered), and light enough for the Lambda's cold path."""

from __future__ import annotations

import unicodedata

IDENTIFIER_MAX_LENGTH = 255  # snowflake-facts.md §9, quoted or not


def identifier_problem(value: object) -> str | None:
    """Why `value` is not safe as one quoted identifier part, or None if it is.

    Quoting makes any character inert (facts §9), so the rule keeps out what would mislead a reviewer or
    break a line-based tool: control and invisible characters, compatibility look-alikes (NFKC changes
    them: fullwidth quotes, ligatures), and leading or trailing spaces.
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
    return None

"""Which listed S3 key a file name shown by Snowflake stands for. Pure: no I/O.

Whether COPY_HISTORY's FILE_NAME and REFRESH's `File` URL-encode special characters is not documented
(docs/snowflake-facts.md §10; the stand-in's `url-encoded` reading does). A key may legitimately hold
`%` (`a%20b` is a valid S3 key), so decoding cannot be unconditional: the name is matched against the
keys the tick listed, raw first (a name shown as-is), then decoded.
"""

from __future__ import annotations

from collections.abc import Set
from urllib.parse import unquote


def listed_key(key: str, listed: Set[str]) -> str:
    """`key` as Snowflake spelled it, mapped to the listed key it names; unchanged when neither the raw
    nor the decoded form is listed (a file the tick did not list: nothing will act on it)."""
    if key in listed:
        return key
    decoded = unquote(key)
    return decoded if decoded in listed else key

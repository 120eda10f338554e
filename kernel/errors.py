"""One error hierarchy for every failure Floe expects.

A `FloeError`'s message is Floe's own sentence, built from names, counts and rules: never from a
credential, a DSN or a driver's text that might echo one. That is what lets the tick put it in a run
report and the CLI print it. Anything that is not a `FloeError` is a bug, reported by its type only.
"""

from __future__ import annotations


class FloeError(Exception):
    """Base of Floe's expected failures; `transient` says whether trying again later may help."""

    transient: bool = False


MESSAGE_LIMIT = 500  # characters of an error a report or a log line carries


def describe(error: BaseException) -> str:
    """The one line a report, a log line or the CLI shows for `error`: a `FloeError`'s kind and message,
    trimmed; for anything else only its type, since its text may hold anything (a DSN, a key)."""
    if isinstance(error, FloeError):
        return f"{type(error).__name__}: {error}"[:MESSAGE_LIMIT]
    return f"unexpected {type(error).__name__} (a bug in Floe: see the log's traceback)"

"""One error hierarchy for every failure Floe expects.

A `FloeError`'s message is Floe's own sentence, built from names, counts and rules: never from a
credential, a DSN or a driver's text that might echo one. That is what lets the tick put it in a run
report and the CLI print it. Anything that is not a `FloeError` is a bug, reported by its type only.
"""

from __future__ import annotations


class FloeError(Exception):
    """Base of Floe's expected failures; `transient` says whether trying again later may help."""

    transient: bool = False


def describe_unexpected(error: BaseException) -> str:
    """A bug's one line for a report or a log: its type only, since its text may hold anything."""
    return f"unexpected {type(error).__name__} (a bug in Floe: see the log's traceback)"

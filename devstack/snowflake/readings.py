"""Named readings: how the stand-in behaves where Snowflake's documentation leaves a choice open.

Each axis is one documented silence (docs/snowflake-standin.md, "Readings"); ``today`` is the stand-in's
historical behaviour, each other preset flips one axis, ``harshest`` flips them all. Readings are chosen
per account through the control API, and a server-wide default applies to accounts created later.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import quote


@dataclass(frozen=True)
class Reading:
    name: str
    # A queued, not yet committed file shows in COPY_HISTORY as `Load in progress` (else it is absent).
    queued_in_history: bool = True
    # REFRESH resends a file whose load failed ("queues only those files that were not loaded already").
    resend_failed: bool = False
    # COPY_HISTORY FILE_NAME is relative to the bucket and STAGE_LOCATION is the bucket (BCR 2305).
    bucket_paths: bool = False
    # Special characters in names come back URL-encoded (COPY_HISTORY, REFRESH rows, LIST).
    url_encoded: bool = False
    # REFRESH answers one File/Status row per queued file (else no rows at all).
    refresh_rows: bool = True
    # A file REFRESHed while still queued is queued again and skipped at load by the load metadata.
    requeue: bool = False

    def shown(self, name: str) -> str:
        """A file name as the reading shows it to clients. URL-encoding keeps `/` and `=`: both are legal in
        a URL path (RFC 3986), and hive-style `key=value/` folders keep their names."""
        return quote(name, safe="/=") if self.url_encoded else name


TODAY = Reading("today")
_FLIPS = {
    "queued-absent": {"queued_in_history": False},
    "failed-resent": {"resend_failed": True},
    "bucket-paths": {"bucket_paths": True},
    "url-encoded": {"url_encoded": True},
    "refresh-silent": {"refresh_rows": False},
    "requeue": {"requeue": True},
}


def _harshest() -> Reading:
    flips: dict[str, bool] = {}
    for axis in _FLIPS.values():
        flips.update(axis)
    return replace(TODAY, name="harshest", **flips)


PRESETS: dict[str, Reading] = {
    "today": TODAY,
    **{name: replace(TODAY, name=name, **flip) for name, flip in _FLIPS.items()},
    "harshest": _harshest(),
}


def reading(name: str) -> Reading:
    """The preset called name; KeyError names the known ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown reading {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def axes() -> tuple[str, ...]:
    """The reading's axes: its fields besides the name."""
    return tuple(name for name in TODAY.__dataclass_fields__ if name != "name")


def agreeing(axis: str, observed: bool | None) -> list[str]:
    """The presets whose `axis` is `observed` (all of them when it was not settled)."""
    return [name for name, preset in PRESETS.items() if observed is None or getattr(preset, axis) == observed]


def matching(observed: dict[str, bool | None]) -> list[str]:
    """The presets agreeing with every settled observation (axis -> value; None: not settled)."""
    return [name for name in PRESETS if all(name in agreeing(axis, value) for axis, value in observed.items())]

"""The invocation event: `{"connection_id": "..."}`, checked before anything is touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernel.errors import FloeError
from kernel.identifiers import CONNECTION_ID_PATTERN

# The task processor may tag an invocation with its tick; nothing else is accepted.
_OPTIONAL_FIELDS = {"tick_id"}


class InvalidEvent(FloeError):
    """The event is not `{"connection_id": "<id>"}`; nothing was touched."""


@dataclass(frozen=True)
class LoaderEvent:
    connection_id: str
    tick_id: str | None = None

    @classmethod
    def parse(cls, event: Any) -> LoaderEvent:
        if not isinstance(event, dict):
            raise InvalidEvent(f'expected a JSON object like {{"connection_id": "c-123"}}, got {type(event).__name__}')
        unknown = sorted(str(k)[:40] for k in event if k not in _OPTIONAL_FIELDS | {"connection_id"})
        if unknown:
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            raise InvalidEvent(f"unexpected field(s) {unknown[:3]}{more}: the event carries only connection_id")
        connection_id = event.get("connection_id")
        if not isinstance(connection_id, str) or not CONNECTION_ID_PATTERN.fullmatch(connection_id):
            raise InvalidEvent(
                "connection_id must be a string of 1-128 letters, digits, '_', '.' or '-' "
                f"starting with a letter or digit, got {_preview(connection_id)}"
            )
        tick_id = event.get("tick_id")
        if tick_id is not None and (not isinstance(tick_id, str) or len(tick_id) > 128):
            raise InvalidEvent(f"tick_id must be a string of at most 128 characters, got {_preview(tick_id)}")
        return cls(connection_id, tick_id)


def _preview(value: object) -> str:
    return f"{type(value).__name__} {str(value)[:40]!r}"

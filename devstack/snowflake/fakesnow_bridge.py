"""Access to fakesnow's server module, which the ``fakesnow`` package shadows with its ``server()`` helper."""

from __future__ import annotations

import importlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

_server: Any = importlib.import_module("fakesnow.server")


def fakesnow_sessions() -> dict[str, Any]:
    """fakesnow's token -> connection map, read by its own query handler."""
    sessions: dict[str, Any] = _server.sessions
    return sessions


async def fakesnow_query(request: Request) -> Response:
    """fakesnow's query-request handler."""
    response: Response = await _server.query_request(request)
    return response

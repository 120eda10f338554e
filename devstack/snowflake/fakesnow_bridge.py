"""Access to fakesnow's server module, which the ``fakesnow`` package shadows with its ``server()`` helper."""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

_server: Any = importlib.import_module("fakesnow.server")
# fakesnow makes a fakesnow_bucket_* temp directory (for internal stages, which the stand-in does not
# model) when imported and never removes it; the stand-in removes it when its last server stops, or at exit.
_stage_dir: str = importlib.import_module("fakesnow.transforms.stage").LOCAL_BUCKET_PATH
_running: list[object] = []  # one entry per running server
_running_lock = threading.Lock()
atexit.register(shutil.rmtree, _stage_dir, ignore_errors=True)


def claim_stage_dir(server: object) -> None:
    """A server starts: fakesnow's stage directory must exist while it runs."""
    with _running_lock:
        _running.append(server)
        os.makedirs(_stage_dir, exist_ok=True)


def release_stage_dir(server: object) -> None:
    """A server stops: the last one removes fakesnow's stage directory."""
    with _running_lock:
        _running.remove(server)
        if not _running:
            shutil.rmtree(_stage_dir, ignore_errors=True)


def fakesnow_sessions() -> dict[str, Any]:
    """fakesnow's token -> connection map, read by its own query handler."""
    sessions: dict[str, Any] = _server.sessions
    return sessions


async def fakesnow_query(request: Request) -> Response:
    """fakesnow's query-request handler."""
    response: Response = await _server.query_request(request)
    return response

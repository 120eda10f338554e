"""The Snowflake stand-in server: a Starlette app served by uvicorn on 127.0.0.1.

``StandIn(aws_endpoint_url)`` runs it in a background thread; the connector reaches it with
``host``/``port``/``protocol="http"``. See docs/snowflake-standin.md.
"""

from __future__ import annotations

import socket
import threading
import time
import warnings
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from . import pipes
from .control import StandInControl
from .control_api import ControlApi
from .fakesnow_bridge import claim_stage_dir, release_stage_dir
from .protocol import Protocol
from .snowpipe_rest import SnowpipeRest
from .state import StandInState

# fakesnow 0.12 on duckdb 2.0 warns on every result set; it says nothing about the stand-in's behaviour.
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)

LOAD_LOOP_INTERVAL_SECONDS = 0.05


def create_app(state: StandInState) -> Starlette:
    return Starlette(routes=[*Protocol(state).routes(), *SnowpipeRest(state).routes(), *ControlApi(state).routes()])


class _LoadLoop(threading.Thread):
    """Loads queued files load_delay_seconds after they were queued (accounts with a delay set)."""

    def __init__(self, state: StandInState) -> None:
        super().__init__(name="standin-load-loop", daemon=True)
        self.state = state
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(LOAD_LOOP_INTERVAL_SECONDS):
            for account in list(self.state.accounts.values()):
                if account.settings.load_delay_seconds is not None:
                    pipes.load_due(self.state.runtime, account, everything=False)


class StandIn:
    """A running stand-in: ``with StandIn(aws_endpoint_url) as server: server.url, server.control``."""

    def __init__(self, aws_endpoint_url: str, port: int = 0) -> None:
        self.state = StandInState(aws_endpoint_url)
        self.host = "127.0.0.1"
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self.host, port))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        self.control = StandInControl(self.url)
        config = uvicorn.Config(create_app(self.state), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._loop = _LoadLoop(self.state)

    def start(self) -> StandIn:
        claim_stage_dir(self)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Snowflake stand-in did not start")
            time.sleep(0.01)
        self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stopping.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        release_stage_dir(self)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

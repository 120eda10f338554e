"""The ``/devstack/`` control API: accounts, loading, settings, faults, the clock and counters."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import pipes
from .model import Account, QualifiedName
from .readings import PRESETS
from .sqltext import split_name
from .state import StandInState

_SETTINGS = (
    "load_delay_seconds",
    "history_lag_seconds",
    "statement_latency_seconds",
    "login_latency_seconds",
    "load_history_scan_interval_seconds",
)


class ControlApi:
    def __init__(self, state: StandInState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/devstack/reset", self.reset, methods=["POST"]),
            Route("/devstack/accounts", self.create_account, methods=["POST"]),
            Route("/devstack/accounts/{name}/drain", self.drain, methods=["POST"]),
            Route("/devstack/accounts/{name}/settings", self.settings, methods=["PUT"]),
            Route("/devstack/accounts/{name}/faults", self.faults, methods=["POST"]),
            Route("/devstack/accounts/{name}/readings", self.account_reading, methods=["PUT"]),
            Route("/devstack/readings", self.default_reading, methods=["PUT"]),
            Route("/devstack/accounts/{name}/pipes/{pipe}/state", self.pipe_state, methods=["PUT"]),
            Route("/devstack/accounts/{name}/stats", self.stats, methods=["GET"]),
            Route("/devstack/accounts/{name}/statements", self.statements, methods=["GET"]),
            Route("/devstack/clock", self.clock, methods=["POST"]),
        ]

    def _account(self, request: Request) -> Account | None:
        return self.state.account(request.path_params["name"])

    @staticmethod
    def _missing(request: Request) -> JSONResponse:
        return JSONResponse({"error": f"no account {request.path_params['name']}"}, status_code=404)

    async def reset(self, _: Request) -> JSONResponse:
        self.state.reset()
        return JSONResponse({})

    async def create_account(self, request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        if self.state.account(str(body["name"])) is not None:
            return JSONResponse({"error": f"account {body['name']} exists"}, status_code=409)
        account = self.state.create_account(
            str(body["name"]), str(body.get("admin_user", "ADMIN")), str(body.get("admin_password", "admin-password"))
        )
        return JSONResponse({"name": account.name, "iam_user_arn": account.iam_user_arn})

    async def drain(self, request: Request) -> JSONResponse:
        account = self._account(request)
        if account is None:
            return self._missing(request)
        counts = await run_in_threadpool(pipes.load_due, self.state.runtime, account, True)
        return JSONResponse(counts)

    async def settings(self, request: Request) -> JSONResponse:
        account = self._account(request)
        if account is None:
            return self._missing(request)
        body: dict[str, Any] = await request.json()
        unknown = set(body) - set(_SETTINGS)
        if unknown:
            return JSONResponse({"error": f"unknown settings {sorted(unknown)}"}, status_code=400)
        with account.lock:
            for key, value in body.items():
                # Only load_delay_seconds means something when null (load on drain only).
                number = None if value is None and key == "load_delay_seconds" else float(value or 0)
                setattr(account.settings, key, number)
        return JSONResponse(asdict(account.settings))

    async def faults(self, request: Request) -> JSONResponse:
        account = self._account(request)
        if account is None:
            return self._missing(request)
        body: dict[str, Any] = await request.json()
        with account.lock:
            account.fail_requests += int(body.get("fail_requests") or 0)
            account.reject_logins += int(body.get("reject_logins") or 0)
            account.fail_files.update({str(k): str(v) for k, v in (body.get("fail_files") or {}).items()})
            rest = account.snowpipe_rest
            rest.fail_requests += int(body.get("rest_fail_requests") or 0)
            rest.fail_status = int(body.get("rest_fail_status") or rest.fail_status)
        return JSONResponse(
            {
                "fail_requests": account.fail_requests,
                "reject_logins": account.reject_logins,
                "fail_files": account.fail_files,
                "rest_fail_requests": rest.fail_requests,
                "rest_fail_status": rest.fail_status,
            }
        )

    @staticmethod
    def _unknown_reading(name: str) -> JSONResponse:
        return JSONResponse({"error": f"unknown reading {name!r}", "readings": list(PRESETS)}, status_code=400)

    async def account_reading(self, request: Request) -> JSONResponse:
        account = self._account(request)
        if account is None:
            return self._missing(request)
        name = str((await request.json()).get("name"))
        if name not in PRESETS:
            return self._unknown_reading(name)
        with account.lock:
            account.reading = PRESETS[name]
        return JSONResponse(asdict(account.reading))

    async def default_reading(self, request: Request) -> JSONResponse:
        name = str((await request.json()).get("name"))
        if name not in PRESETS:
            return self._unknown_reading(name)
        self.state.default_reading = PRESETS[name]
        return JSONResponse(asdict(self.state.default_reading))

    async def pipe_state(self, request: Request) -> JSONResponse:
        """Force a pipe's executionState (and its `error` text); a null state returns it to the model."""
        account = self._account(request)
        if account is None:
            return self._missing(request)
        body: dict[str, Any] = await request.json()
        state = body.get("execution_state")
        if state is not None and state not in pipes.EXECUTION_STATES:
            return JSONResponse({"error": f"unknown executionState {state!r}"}, status_code=400)
        with account.lock:
            pipe = account.pipes.get(_pipe_name(request.path_params["pipe"]))
            if pipe is None:
                return JSONResponse({"error": f"no pipe {request.path_params['pipe']}"}, status_code=404)
            pipe.forced_state = state
            error = body.get("error")
            pipe.last_error = None if state is None or error is None else str(error)
            pipe.last_error_at = self.state.runtime.clock.now() if pipe.last_error else None
            return JSONResponse({"execution_state": pipes.execution_state(account, pipe)})

    async def clock(self, request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        await run_in_threadpool(self.state.runtime.advance_clock, float(body.get("advance_seconds", 0)))
        return JSONResponse({"now": self.state.runtime.clock.now()})

    async def stats(self, request: Request) -> JSONResponse:
        account = self._account(request)
        if account is None:
            return self._missing(request)
        return JSONResponse(self.state.stats(account))

    async def statements(self, request: Request) -> JSONResponse:
        account = self._account(request)
        if account is None:
            return self._missing(request)
        with account.lock:
            return JSONResponse([asdict(s) for s in account.statements])


def _pipe_name(text: str) -> QualifiedName:
    """``DB.SCHEMA.PIPE`` (identifier rules of facts §9: quote a part to keep its case)."""
    parts = split_name(text)
    if len(parts) != 3:
        raise ValueError(f"a pipe is named db.schema.pipe, not {text!r}")
    return (parts[0], parts[1], parts[2])

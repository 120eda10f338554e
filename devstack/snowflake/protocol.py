"""The HTTP routes snowflake-connector-python calls: login, queries, session, abort, monitoring."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import secrets
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import auth, router
from .context import Context, Session
from .errors import LoginError, SnowflakeError
from .fakesnow_bridge import fakesnow_query, fakesnow_sessions
from .model import Account, User
from .security import user_roles
from .sqltext import split_name
from .state import StandInState

logger = logging.getLogger(__name__)


def error_response(error: SnowflakeError) -> JSONResponse:
    code = f"{error.errno:06d}"
    return JSONResponse(
        {
            "data": {"errorCode": code, "sqlState": error.sqlstate},
            "code": code,
            "message": error.message,
            "success": False,
        }
    )


def network_failure() -> Response:
    """An injected network failure: a 200 with a ``null`` body.

    The connector treats an empty answer as "Failed to get the response. Hanging?" and raises
    OperationalError (ER_FAILED_TO_REQUEST) at once for a query; a login is tried twice, then fails
    with 250001. A 5xx or a dropped connection would instead be retried for minutes.
    """
    return Response("null", media_type="application/json")


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return dict(json.loads(body))


def _ident(value: str | None) -> str | None:
    return split_name(value)[-1] if value else None


def login_forbidden() -> Response:
    """An injected login rejection: HTTP 403 on the login request, which connector 4.x raises as
    ForbiddenError at once (network.py: "FORBIDDEN error when trying to login" is not retried)."""
    return Response("Forbidden", status_code=403, media_type="text/plain")


def _take_login_rejection(account: Account) -> bool:
    with account.lock:
        if account.reject_logins > 0:
            account.reject_logins -= 1
            return True
    return False


def _take_fault(account: Account) -> bool:
    with account.lock:
        if account.fail_requests > 0:
            account.fail_requests -= 1
            return True
    return False


class Protocol:
    def __init__(self, state: StandInState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/session/v1/login-request", self.login, methods=["POST"]),
            Route("/queries/v1/query-request", self.query, methods=["POST"]),
            Route("/session", self.session, methods=["POST"]),
            Route("/session/heartbeat", self.session, methods=["POST"]),
            Route("/session/token-request", self.session, methods=["POST"]),
            Route("/queries/v1/abort-request", self.ok, methods=["POST"]),
            Route("/telemetry/send", self.ok, methods=["POST"]),
            Route("/monitoring/queries/{sfqid}", self.monitoring, methods=["GET"]),
        ]

    async def ok(self, _: Request) -> JSONResponse:
        return JSONResponse({"data": None, "success": True})

    # ---- login ----------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        data = (await _json_body(request))["data"]
        account = self.state.account(str(data.get("ACCOUNT_NAME", "")))
        if account is not None and _take_login_rejection(account):
            return login_forbidden()
        if account is not None and _take_fault(account):
            return network_failure()
        try:
            if account is None:
                raise auth.bad_credentials()
            await asyncio.sleep(account.settings.login_latency_seconds)
            session = await run_in_threadpool(self._open_session, account, data, request.query_params)
        except SnowflakeError as error:
            return error_response(error)
        except Exception as error:
            logger.exception("stand-in login failed")
            return error_response(LoginError(2, f"Internal error in the Snowflake stand-in: {error}", "08001"))
        return JSONResponse(self._login_answer(session))

    def _authenticate(self, account: Account, data: dict[str, Any]) -> User:
        user = account.users.get(str(data.get("LOGIN_NAME", "")).upper())
        jwt_login = str(data.get("AUTHENTICATOR", "SNOWFLAKE")).upper() == "SNOWFLAKE_JWT"
        if user is None or user.disabled:
            raise auth.jwt_invalid() if jwt_login else auth.bad_credentials()
        if jwt_login:
            auth.verify_jwt(account.name, user, data.get("TOKEN"))
        else:
            auth.verify_password(user, data.get("PASSWORD"))
        return user

    def _open_session(self, account: Account, data: dict[str, Any], params: Any) -> Session:
        with account.lock:
            user = self._authenticate(account, data)
            role = _ident(params.get("roleName")) or user.default_role or "PUBLIC"
            if role not in account.roles or role not in user_roles(account, user):
                raise LoginError(
                    390189,
                    f"Role '{role}' specified in the connect string is not granted to this user. Contact your "
                    "local system administrator, or attempt to login with another role, e.g. PUBLIC.",
                    "08004",
                )
            warehouse = _ident(params.get("warehouse")) or user.default_warehouse
            conn = account.fakesnow.connect(_ident(params.get("databaseName")), _ident(params.get("schemaName")))
            token = secrets.token_urlsafe(32)
            session = Session(
                token, account, user.name, role, warehouse if warehouse in account.warehouses else None, conn
            )
            account.logins += 1
        self.state.sessions[token] = session
        fakesnow_sessions()[token] = conn
        self.state.record(account, "login", "", False)
        return session

    @staticmethod
    def _login_answer(session: Session) -> dict[str, Any]:
        return {
            "data": {
                "token": session.token,
                "masterToken": session.token,
                "validityInSeconds": 3600,
                "masterValidityInSeconds": 14400,
                "serverVersion": "9.0.0",
                "parameters": [
                    {"name": "AUTOCOMMIT", "value": True},
                    {"name": "CLIENT_SESSION_KEEP_ALIVE_HEARTBEAT_FREQUENCY", "value": 3600},
                    {"name": "CLIENT_STAGE_ARRAY_BINDING_THRESHOLD", "value": 0},
                    {"name": "TIMEZONE", "value": "Etc/UTC"},
                ],
                "sessionInfo": {
                    "databaseName": session.database,
                    "schemaName": session.schema,
                    "warehouseName": session.warehouse,
                    "roleName": session.role,
                },
            },
            "success": True,
        }

    # ---- queries --------------------------------------------------------------------------

    def _session_of(self, request: Request) -> Session | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix('Snowflake Token="').removesuffix('"')
        return self.state.sessions.get(token)

    async def query(self, request: Request) -> Response:
        session = self._session_of(request)
        if session is None:
            return JSONResponse(
                {
                    "data": None,
                    "code": "390104",
                    "message": "User must login again to access the service.",
                    "success": False,
                },
                status_code=401,
            )
        account = session.account
        if _take_fault(account):
            return network_failure()
        await asyncio.sleep(account.settings.statement_latency_seconds)
        body = await _json_body(request)
        sql = str(body.get("sqlText", ""))
        if body.get("describeOnly") or body.get("bindings"):
            # Bound statements are product queries on tables: fakesnow runs them as sent.
            ctx = Context(session, self.state.runtime)
            return await self._delegate(request, body, sql, ctx=ctx, kind="select")
        ctx = Context(session, self.state.runtime)
        try:
            routed = await run_in_threadpool(self._route, ctx, sql)
        except SnowflakeError as error:
            self.state.record(account, "error", sql, ctx.used_warehouse)
            return error_response(error)
        except Exception as error:
            # A stand-in bug must not become a 500, which the connector retries for minutes.
            logger.exception("stand-in failed on %s", sql)
            self.state.record(account, "error", sql, ctx.used_warehouse)
            return error_response(SnowflakeError(2, f"Internal error in the Snowflake stand-in: {error}", "XX000"))
        if routed.result is not None:
            self.state.record(account, routed.kind, sql, ctx.used_warehouse)
            return JSONResponse({"data": routed.result.data(session.database, session.schema), "success": True})
        return await self._delegate(request, body, routed.sql or sql, ctx=ctx, kind=routed.kind, original=sql)

    @staticmethod
    def _route(ctx: Context, sql: str) -> router.Routed:
        with ctx.account.lock:
            return router.route(ctx, sql)

    async def _delegate(
        self,
        request: Request,
        body: dict[str, Any],
        sql: str,
        *,
        ctx: Context,
        kind: str,
        original: str | None = None,
    ) -> Response:
        """Let fakesnow's own query handler run the (possibly rewritten) statement."""
        if sql != body.get("sqlText"):
            request = Request(request.scope, request.receive)
            payload = json.dumps({**body, "sqlText": sql}).encode()
            gzipped = request.headers.get("Content-Encoding") == "gzip"
            request._body = gzip.compress(payload) if gzipped else payload
        response = await fakesnow_query(request)
        self.state.record(ctx.account, kind, original or sql, ctx.used_warehouse)
        if response.status_code >= 500:
            # fakesnow's "unhandled exception" is a 500, which the connector would retry for minutes.
            message = json.loads(bytes(response.body)).get("message", "unsupported statement")
            return error_response(SnowflakeError(2, f"Unsupported feature in the stand-in: {message}", "0A000"))
        return response

    # ---- session --------------------------------------------------------------------------

    async def session(self, request: Request) -> JSONResponse:
        session = self._session_of(request)
        if session is not None and request.query_params.get("delete"):
            self.state.sessions.pop(session.token, None)
            fakesnow_sessions().pop(session.token, None)
        return JSONResponse({"data": None, "code": None, "message": None, "success": True})

    async def monitoring(self, _: Request) -> JSONResponse:
        return JSONResponse({"data": {"queries": [{"status": "SUCCESS"}]}, "success": True})

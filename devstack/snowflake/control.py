"""Client of the stand-in's ``/devstack/`` control API (stdlib only)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any


class StandInControl:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the stand-in's own http address
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def reset(self) -> None:
        self._call("POST", "/devstack/reset", {})

    def create_account(
        self,
        name: str,
        admin_user: str = "ADMIN",
        admin_password: str = "admin-password",  # noqa: S107 - the stand-in's documented default
    ) -> dict[str, Any]:
        body = {"name": name, "admin_user": admin_user, "admin_password": admin_password}
        return dict(self._call("POST", "/devstack/accounts", body))

    def drain(self, account: str) -> dict[str, int]:
        return dict(self._call("POST", f"/devstack/accounts/{account}/drain", {}))

    def configure(self, account: str, **settings: float | None) -> dict[str, Any]:
        return dict(self._call("PUT", f"/devstack/accounts/{account}/settings", dict(settings)))

    def inject_faults(
        self,
        account: str,
        *,
        fail_requests: int = 0,
        fail_files: dict[str, str] | None = None,
        rest_fail_requests: int = 0,
        rest_fail_status: int = 503,
        reject_logins: int = 0,
    ) -> dict[str, Any]:
        """Adds the faults; returns those still pending (the call with no argument only reads them)."""
        return dict(
            self._call(
                "POST",
                f"/devstack/accounts/{account}/faults",
                {
                    "fail_requests": fail_requests,
                    "fail_files": fail_files or {},
                    "rest_fail_requests": rest_fail_requests,
                    "rest_fail_status": rest_fail_status,
                    "reject_logins": reject_logins,
                },
            )
        )

    def reject_logins(self, account: str, count: int = 1) -> None:
        """The next count logins to the account get HTTP 403, which the connector does not retry."""
        self.inject_faults(account, reject_logins=count)

    def set_reading(self, account: str, name: str) -> dict[str, Any]:
        return dict(self._call("PUT", f"/devstack/accounts/{account}/readings", {"name": name}))

    def set_default_reading(self, name: str) -> dict[str, Any]:
        """The reading of accounts created from now on (reset keeps it)."""
        return dict(self._call("PUT", "/devstack/readings", {"name": name}))

    def force_pipe_state(self, account: str, pipe: str, execution_state: str | None, error: str | None = None) -> str:
        """Force SYSTEM$PIPE_STATUS's executionState (None: back to the model); pipe is DB.SCHEMA.PIPE."""
        path = f"/devstack/accounts/{account}/pipes/{urllib.parse.quote(pipe, safe='')}/state"
        answer = self._call("PUT", path, {"execution_state": execution_state, "error": error})
        return str(answer["execution_state"])

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "/devstack/clock", {"advance_seconds": seconds})

    def stats(self, account: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/devstack/accounts/{account}/stats"))

    def statements(self, account: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/devstack/accounts/{account}/statements"))

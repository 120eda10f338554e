"""Every account of one stand-in server, its sessions and its clock."""

from __future__ import annotations

import secrets
import string
import threading
from collections import Counter
from typing import Any

from fakesnow.instance import FakeSnow

from .clock import Clock
from .context import Runtime, Session
from .fakesnow_bridge import fakesnow_sessions
from .model import SYSTEM_ROLES, Account, Grant, Role, StatementRecord, User, Warehouse
from .readings import TODAY, Reading


def _iam_user_arn() -> str:
    """facts §4: one IAM user per Snowflake account, shown as STORAGE_AWS_IAM_USER_ARN."""
    digits = "".join(secrets.choice(string.digits) for _ in range(12))
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    return f"arn:aws:iam::{digits}:user/{suffix}-s"


class StandInState:
    def __init__(self, aws_endpoint_url: str) -> None:
        self.runtime = Runtime(Clock(), aws_endpoint_url)
        self.accounts: dict[str, Account] = {}
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        # The reading of accounts created from now on (a reset keeps it: a test session chooses it).
        self.default_reading: Reading = TODAY

    def reset(self) -> None:
        with self.lock:
            for token in self.sessions:
                fakesnow_sessions().pop(token, None)
            self.sessions.clear()
            self.accounts.clear()
            self.runtime.clock.reset()
            self.runtime.staged_times.clear()
            self.runtime.aws.forget_roles()

    def account(self, name: str) -> Account | None:
        """Account identifiers are case-insensitive."""
        return self.accounts.get(name.upper())

    def create_account(self, name: str, admin_user: str, admin_password: str) -> Account:
        now = self.runtime.clock.now()
        account = Account(
            name=name.upper(),
            iam_user_arn=_iam_user_arn(),
            fakesnow=FakeSnow(),
            created_on=now,
            reading=self.default_reading,
        )
        account.roles = {role: Role(role, created_on=now) for role in SYSTEM_ROLES}
        admin = admin_user.upper()
        account.users[admin] = User(admin, password=admin_password, default_role="ACCOUNTADMIN", created_on=now)
        account.grants.append(Grant("USAGE", "USER_ROLE", "ACCOUNTADMIN", admin, "ACCOUNTADMIN", now))
        account.warehouses["COMPUTE_WH"] = Warehouse(
            "COMPUTE_WH", auto_suspend=600, auto_resume=True, created_on=now, resumed_on=now, last_active=now
        )
        with self.lock:
            self.accounts[account.name] = account
        return account

    def record(self, account: Account, kind: str, sql: str, used_warehouse: bool) -> None:
        with account.lock:
            account.statements.append(StatementRecord(kind, sql, used_warehouse, self.runtime.clock.now()))

    def stats(self, account: Account) -> dict[str, Any]:
        with account.lock:
            kinds = Counter(s.kind for s in account.statements)
            statements = [s for s in account.statements if s.kind != "login"]
            return {
                "logins": account.logins,
                "statements": len(statements),
                "statements_by_kind": dict(kinds),
                "warehouse_statements": sum(1 for s in statements if s.used_warehouse),
                "warehouse_resumes": account.warehouse_resumes,
                # Snowpipe REST calls by endpoint; they are not statements and use no warehouse.
                "rest_requests_by_kind": dict(account.snowpipe_rest.calls),
            }

"""The whole local stack in one context manager: moto, the Snowflake stand-in, the core receiver and,
on request, PostgreSQL. `environment()` is what a process needs to run the real product against it."""

from __future__ import annotations

from contextlib import ExitStack
from types import TracebackType

from devstack.aws import ACCOUNT_ID, MotoServer
from devstack.core_api import CoreReceiver
from devstack.snowflake.server import StandIn


class LocalStack:
    def __init__(self, *, postgres: bool = False) -> None:
        self._with_postgres = postgres
        self._stack = ExitStack()
        self.aws: MotoServer
        self.snowflake: StandIn
        self.core: CoreReceiver
        self.postgres_dsn: str | None = None

    def __enter__(self) -> LocalStack:
        with ExitStack() as starting:
            self.aws = starting.enter_context(MotoServer())
            self.snowflake = starting.enter_context(StandIn(aws_endpoint_url=self.aws.endpoint_url))
            self.core = starting.enter_context(CoreReceiver())
            if self._with_postgres:
                from devstack.postgres import TemporaryPostgres

                self.postgres_dsn = starting.enter_context(TemporaryPostgres()).dsn
            self._stack = starting.pop_all()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def environment(self) -> dict[str, str]:
        env = {
            **self.aws.environment(),
            "FLOE_AWS_ACCOUNT_ID": ACCOUNT_ID,
            "FLOE_SNOWFLAKE_HOST": self.snowflake.host,
            "FLOE_SNOWFLAKE_PORT": str(self.snowflake.port),
            "FLOE_SNOWFLAKE_PROTOCOL": "http",
            "FLOE_LOCAL_STACK": "1",  # the only place plain http is allowed
            "FLOE_CORE_API_URL": self.core.url,
        }
        if self.postgres_dsn:
            env["FLOE_CONNECTIONS_DSN"] = self.postgres_dsn
        return env

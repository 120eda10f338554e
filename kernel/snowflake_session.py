"""Opening a Snowflake session for one connection, with its own credentials and nothing shared.

The connector is imported here, lazily, so an idle tick (which never logs in) never pays for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kernel.errors import FloeError

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection

    from kernel.config import Settings
    from kernel.connections import Connection
    from kernel.secrets import SnowflakeCredentials

LOGIN_TIMEOUT_SECONDS = 30
NETWORK_TIMEOUT_SECONDS = 60
STATEMENT_TIMEOUT_SECONDS = 120


class SnowflakeError(FloeError):
    """A Snowflake request failed; `transient` says whether retrying may help."""

    def __init__(self, message: str, *, transient: bool, errno: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.errno = errno


def open_session(
    connection: Connection, credentials: SnowflakeCredentials, settings: Settings, *, query_tag: str
) -> SnowflakeConnection:
    import snowflake.connector

    arguments: dict[str, Any] = {
        "account": connection.account,
        "user": connection.user,
        "role": connection.role,
        "warehouse": connection.warehouse,
        "database": connection.database,
        "schema": connection.schema,
        "application": "floe",
        "login_timeout": LOGIN_TIMEOUT_SECONDS,
        "network_timeout": NETWORK_TIMEOUT_SECONDS,
        "session_parameters": {
            "QUERY_TAG": query_tag,
            "STATEMENT_TIMEOUT_IN_SECONDS": STATEMENT_TIMEOUT_SECONDS,
        },
        **credentials.connect_arguments(),
    }
    if settings.snowflake_host:
        arguments.update(
            host=settings.snowflake_host,
            port=settings.snowflake_port or (443 if settings.snowflake_protocol == "https" else 80),
            protocol=settings.snowflake_protocol,
        )
    try:
        return snowflake.connector.connect(**arguments)
    except snowflake.connector.errors.Error as error:
        doing = f"connection {connection.connection_id}: login to Snowflake account {connection.account!r}"
        raise as_snowflake_error(error, doing) from None


def query(session: SnowflakeConnection, sql: str) -> list[dict[str, Any]]:
    """Run one statement and return its rows as dicts keyed by upper-case column name."""
    import snowflake.connector

    try:
        with session.cursor(snowflake.connector.DictCursor) as cursor:
            cursor.execute(sql)
            rows: Sequence[Mapping[str, Any]] = cursor.fetchall()
    except snowflake.connector.errors.Error as error:
        raise as_snowflake_error(error, " ".join(sql.split()[:3])) from None
    return [{str(k).upper(): v for k, v in row.items()} for row in rows]


# Errors a retry cannot fix: authentication, privileges, missing objects, SQL compilation.
_PERMANENT_SQLSTATE_CLASSES = ("28", "42", "02")


def as_snowflake_error(error: Exception, doing: str) -> SnowflakeError:
    import snowflake.connector

    errno = getattr(error, "errno", None)
    sqlstate = str(getattr(error, "sqlstate", "") or "")
    message = str(getattr(error, "msg", "") or type(error).__name__).strip().splitlines()[0][:300]
    network = isinstance(error, snowflake.connector.errors.OperationalError) and not sqlstate
    transient = network or not sqlstate.startswith(_PERMANENT_SQLSTATE_CLASSES)
    if errno in (390100, 390144, 394304, 390318):  # bad credentials: no retry will help
        transient = False
    return SnowflakeError(
        f"{doing}: {message} (errno {errno}, sqlstate {sqlstate or '-'})", transient=transient, errno=errno
    )

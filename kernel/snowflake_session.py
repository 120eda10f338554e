"""Opening a Snowflake session for one connection, with its own credentials and nothing shared.

The connector is imported here, lazily, so an idle tick (which never logs in) never pays for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kernel.errors import FloeError
from kernel.render import ident

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
    connection: Connection,
    credentials: SnowflakeCredentials,
    settings: Settings,
    *,
    query_tag: str,
    timeout_seconds: int | None = None,
) -> SnowflakeConnection:
    """`timeout_seconds` (the time a tick has left) caps the login, network and statement timeouts, so
    neither the login, its retries nor any later statement outlives the caller's budget."""
    import snowflake.connector

    def capped(seconds: int) -> int:
        return seconds if timeout_seconds is None else max(1, min(seconds, timeout_seconds))

    arguments: dict[str, Any] = {
        "account": connection.account,
        "user": connection.user,
        # Names the login resolves as identifiers: quoted, so `Analytics DB` or a lower-case name is
        # the object provision created, not an upper-cased or unparsable one (docs/snowflake-facts.md §9).
        "role": ident(connection.role).text,
        "warehouse": ident(connection.warehouse).text,
        "database": ident(connection.database).text,
        "schema": ident(connection.schema).text,
        "application": "floe",
        "login_timeout": capped(LOGIN_TIMEOUT_SECONDS),
        "network_timeout": capped(NETWORK_TIMEOUT_SECONDS),
        # The connector (4.x) otherwise probes cloud metadata endpoints and STS on every login to report
        # its platform: up to a second of a tick's budget and calls outside the tick's own; 0 skips them.
        "platform_detection_timeout_seconds": 0.0,
        "session_parameters": {
            "QUERY_TAG": query_tag,
            "STATEMENT_TIMEOUT_IN_SECONDS": capped(STATEMENT_TIMEOUT_SECONDS),
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


def query(session: SnowflakeConnection, sql: str, timeout_seconds: int | None = None) -> list[dict[str, Any]]:
    """Run one statement and return its rows as dicts keyed by upper-case column name; the connector
    cancels it after `timeout_seconds` (default: the session's network timeout)."""
    import snowflake.connector

    try:
        with session.cursor(snowflake.connector.DictCursor) as cursor:
            cursor.execute(sql, timeout=timeout_seconds)
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

"""Snowflake's SQL errors as the connector expects them: errno, SQLSTATE and message."""

from __future__ import annotations


class SnowflakeError(Exception):
    """An error the server answers with ``success: false``; the connector raises ProgrammingError."""

    def __init__(self, errno: int, message: str, sqlstate: str = "42000") -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message
        self.sqlstate = sqlstate


class StageAccessError(SnowflakeError):
    """The stage cannot be reached: integration gone, disabled or disallowing the URL, role not assumable,
    S3 permission denied. A pipe stalls on it (STALLED_STAGE_PERMISSION_ERROR) instead of failing files."""


class LoginError(SnowflakeError):
    """A rejected login; the connector raises DatabaseError ("Failed to connect to DB: …")."""


def does_not_exist(kind: str, name: str) -> SnowflakeError:
    return SnowflakeError(2003, f"{kind} '{name}' does not exist or not authorized.", "02000")


def already_exists(kind: str, name: str) -> SnowflakeError:
    return SnowflakeError(2002, f"SQL compilation error:\n{kind} '{name}' already exists.", "42710")


def insufficient_privileges(kind: str, name: str) -> SnowflakeError:
    # 003001 is Snowflake's "SQL access control error" (e.g. creating an integration without the privilege).
    return SnowflakeError(3001, f"SQL access control error:\nInsufficient privileges to operate on {kind} '{name}'")


def syntax_error(detail: str) -> SnowflakeError:
    return SnowflakeError(1003, f"SQL compilation error:\nsyntax error {detail}", "42000")


def stage_failure(cause: str) -> SnowflakeError:
    return SnowflakeError(91003, f"Failure using stage area. Cause: [{cause}]", "XX000")


def stage_access_denied(cause: str) -> StageAccessError:
    return StageAccessError(91003, f"Failure using stage area. Cause: [{cause}]", "XX000")

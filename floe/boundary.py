"""The CLI's one error boundary: how every failure becomes one line on stderr and an exit code.

`floe: <what went wrong> — <what to do>`. What went wrong is `kernel.errors.describe(error)` (the one
rule for showing an error: never a secret), or a sentence of ours for the few foreign errors the CLI
expects (AWS settings, an unreachable endpoint). The exit codes are documented in docs/operations.md.
"""

from __future__ import annotations

from enum import IntEnum

from kernel.config import ConfigError
from kernel.connections import (
    DuplicateConnection,
    InvalidConnection,
    StoreMissing,
    StoreUnavailable,
    UnknownConnection,
)
from kernel.errors import FloeError, describe


class Exit(IntEnum):
    OK = 0
    BUG = 1  # not an expected failure: rerun with --debug for the traceback
    USAGE = 2  # a flag, a setting or a description is wrong
    NOT_FOUND = 3  # no such connection
    REFUSED = 4  # Snowflake, AWS or one of Floe's checks said no
    UNAVAILABLE = 5  # transient: something was unreachable or busy; trying again may help
    INTERRUPTED = 130  # Ctrl-C


class UsageError(FloeError):
    """A command line that cannot be run as given."""


class Refused(FloeError):
    """A command ran and the outcome is a refusal (for example a provision step Snowflake refused)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


_USAGE_HINT = "see `floe <command> --help` and docs/architecture.md (Configuration)"
# What to do, by error type; the first match wins, so subclasses come before their bases.
_HINTS: tuple[tuple[type[FloeError], Exit, str], ...] = (
    (
        UnknownConnection,
        Exit.NOT_FOUND,
        "list connections with `floe connection list`; add one with `floe connection add`",
    ),
    (DuplicateConnection, Exit.USAGE, "pick another --connection-id, or look at it with `floe connection show`"),
    (StoreMissing, Exit.USAGE, "run `floe db migrate` (or point FLOE_CONNECTIONS_DSN at the right database)"),
    (StoreUnavailable, Exit.UNAVAILABLE, "check FLOE_CONNECTIONS_DSN and that the database is up, then try again"),
    (InvalidConnection, Exit.USAGE, "fix that field and run the command again"),
    (ConfigError, Exit.USAGE, "fix that setting (docs/architecture.md, Configuration)"),
    (UsageError, Exit.USAGE, _USAGE_HINT),
)
_TRANSIENT_HINT = "nothing is lost; run the command again once it is reachable"
_REFUSED_HINT = "fix what it names, then run the command again"


def failure(error: BaseException) -> tuple[Exit, str]:
    """The exit code and the one line for an error; `Exit.BUG` for anything Floe does not expect."""
    expected = _from_aws(error)
    if expected is not None:
        return expected
    if not isinstance(error, FloeError):
        return Exit.BUG, line(describe(error), "rerun with --debug for the traceback, and report it")
    for kind, code, hint in _HINTS:
        if isinstance(error, kind):
            return code, line(describe(error), hint)
    if error.transient:
        return Exit.UNAVAILABLE, line(describe(error), _TRANSIENT_HINT)
    return Exit.REFUSED, line(describe(error), _REFUSED_HINT)


def line(what: str, todo: str) -> str:
    return f"floe: {what} — {todo}"


def _from_aws(error: BaseException) -> tuple[Exit, str] | None:
    """botocore's errors, in our words: its own text can hold endpoint URLs and request details."""
    from botocore import exceptions as aws

    if isinstance(error, aws.NoCredentialsError | aws.PartialCredentialsError):
        return Exit.USAGE, line("no AWS credentials", _AWS_SETUP)
    if isinstance(error, aws.NoRegionError):
        return Exit.USAGE, line("no AWS region", _AWS_SETUP)
    if isinstance(error, aws.EndpointConnectionError | aws.ConnectTimeoutError | aws.ReadTimeoutError):
        return Exit.UNAVAILABLE, line("cannot reach AWS (or AWS_ENDPOINT_URL)", _TRANSIENT_HINT)
    if isinstance(error, aws.ClientError):
        code = str(error.response.get("Error", {}).get("Code", "unknown"))
        what = f"AWS refused {error.operation_name}: {code}"
        if code == "NoSuchBucket":
            return Exit.USAGE, line(what, "create the bucket FLOE_BUCKET names, or point FLOE_BUCKET at it")
        if code in ("Throttling", "ThrottlingException", "SlowDown", "RequestLimitExceeded"):
            return Exit.UNAVAILABLE, line(what, _TRANSIENT_HINT)
        return Exit.REFUSED, line(what, "check the credentials' permissions (docs/operations.md)")
    return None


_AWS_SETUP = (
    "set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and AWS_DEFAULT_REGION; "
    "on the local stack, export what `floe devstack up` prints"
)

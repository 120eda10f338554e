"""One organisation's AWS credentials for one tick: AWS itself keeps org A's tick out of org B's files and
secret, behind storage.py's key checks (defence in depth).

When FLOE_LOADER_DATA_ROLE_ARN is set, the tick's S3 and Secrets Manager clients use a session of that
role (`sts:AssumeRole`, `RoleSessionName = floe-<org_id>`, 900 s) narrowed by a session policy to the
organisation's live and dead-letter prefixes and the connection's own secret. The policy is generated from
`loader.aws_actions` (the data role's grants and their scopes), so it can never grant more than the role,
nor miss an action the tick needs. Without the variable (local stack, tests) the tick uses the function's
own credentials, as before.

Credentials are cached per organisation and secret in a warm process while they outlive the invocation,
so an idle tick in steady state still sends one ListObjectsV2 and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from kernel.config import ConfigError, Settings
from kernel.connections import Connection
from kernel.errors import FloeError
from loader import aws_actions

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

SESSION_SECONDS = 900  # STS's minimum; a fresh session outlives any Lambda invocation (at most 900 s)
CLOCK_SKEW = timedelta(seconds=60)


class DataAccessRefused(FloeError):
    """The organisation's session could not be had: the data role refused or STS was unreachable."""

    transient = True


@dataclass(frozen=True)
class _Session:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires: datetime


_sessions: dict[tuple[str, str, str], _Session] = {}  # (role ARN, org_id, secret_ref) -> live session


def scoped_clients(
    settings: Settings, connection: Connection, seconds_needed: float
) -> tuple[S3Client, Callable[[], SecretsManagerClient]]:
    """An S3 client and a Secrets Manager client maker that can reach only this connection's organisation
    and secret (the secret is read only by a busy tick, so its client is made only then)."""
    session = _session(settings, connection, seconds_needed)
    key, secret, token = session.access_key_id, session.secret_access_key, session.session_token
    s3 = boto3.client("s3", aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token)

    def secrets() -> SecretsManagerClient:
        return boto3.client(
            "secretsmanager", aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token
        )

    return s3, secrets


def session_policy(settings: Settings, connection: Connection) -> dict[str, Any]:
    """The data role's grants (`aws_actions.LOADER_DATA_ACTIONS`), each narrowed to this connection."""
    statements = []
    for sid, actions in aws_actions.LOADER_DATA_ACTIONS.items():
        resource, condition = _narrowed(aws_actions.LOADER_DATA_SCOPES[sid], settings, connection)
        statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resource}
        if condition:
            statement["Condition"] = condition
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def _narrowed(scope: str, settings: Settings, connection: Connection) -> tuple[str, dict[str, Any] | None]:
    bucket = f"arn:aws:s3:::{settings.bucket}"
    live = settings.live_prefix_for(connection.org_id)
    if scope == "prefix:live":
        return bucket, {"StringLike": {"s3:prefix": [live, f"{live}*"]}}
    if scope == "object:live":
        return f"{bucket}/{live}*", None
    if scope == "object:dead-letter":
        return f"{bucket}/{settings.dead_letter_prefix_for(connection.org_id)}*", None
    if scope == "secret:connections":
        return _secret_arn(connection.secret_ref), None
    raise KeyError(f"no session-policy resource for scope {scope!r}: add it to loader/data_access.py")


def _secret_arn(secret_ref: str) -> str:
    """The connection's own secret. Its ARN ends in '-' and six random characters: '-??????', not '*',
    so connection c-1's session cannot read c-10's secret."""
    if secret_ref.startswith("arn:"):
        return secret_ref
    return f"arn:aws:secretsmanager:*:*:secret:{secret_ref}-??????"


def _session(settings: Settings, connection: Connection, seconds_needed: float) -> _Session:
    role = settings.loader_data_role_arn
    if not role:
        raise ConfigError("FLOE_LOADER_DATA_ROLE_ARN is not set: there is no data role to scope a session of")
    key = (role, connection.org_id, connection.secret_ref)
    cached = _sessions.get(key)
    if cached is None or cached.expires - datetime.now(UTC) < timedelta(seconds=seconds_needed) + CLOCK_SKEW:
        _sessions[key] = cached = _assume(role, settings, connection)
    return cached


def _assume(role: str, settings: Settings, connection: Connection) -> _Session:
    try:
        credentials = boto3.client("sts").assume_role(
            RoleArn=role,
            RoleSessionName=f"floe-{connection.org_id}",
            Policy=json.dumps(session_policy(settings, connection), separators=(",", ":")),
            DurationSeconds=SESSION_SECONDS,
        )["Credentials"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        raise DataAccessRefused(
            f"cannot assume FLOE_LOADER_DATA_ROLE_ARN for organisation {connection.org_id!r} ({code}): check "
            "the data role exists and trusts the loader's execution role"
        ) from None
    except BotoCoreError as error:
        raise DataAccessRefused(f"STS AssumeRole failed ({type(error).__name__})") from None
    return _Session(
        credentials["AccessKeyId"],
        credentials["SecretAccessKey"],
        credentials["SessionToken"],
        credentials["Expiration"],
    )

"""Opening the connection database as configured: FLOE_CONNECTIONS_DSN (local use), or in AWS the DSN held
by the Secrets Manager secret FLOE_CONNECTIONS_DSN_SECRET names, so the password is in no function's
environment.

The secret is read once per process (a warm Lambda reuses it) and re-read once when the database refuses
the login, so a rotated password takes effect at the next tick without a cold start. Nothing here ever
puts the DSN, or a driver's text that may quote it, into a message.
"""

from __future__ import annotations

from kernel.config import ConfigError, Settings
from kernel.connections import AUTHENTICATION_FAILED, ConnectionStore, StoreUnavailable, open_store

_dsns: dict[str, str] = {}  # secret id -> DSN, for this process's lifetime


def open_configured_store(settings: Settings, *, create: bool = True) -> ConnectionStore:
    """`create=False` for read-only commands: a missing SQLite database is an error, not a new file."""
    secret = settings.connections_dsn_secret
    if not secret:
        return open_store(settings.connections_dsn, create=create)
    cached = secret in _dsns
    try:
        return open_store(_dsn(secret), create=create)
    except StoreUnavailable as error:
        if not cached or error.kind != AUTHENTICATION_FAILED:
            raise
    _dsns.pop(secret)  # the password was rotated since this process read it
    return open_store(_dsn(secret), create=create)


def _dsn(secret: str) -> str:
    if secret not in _dsns:
        _dsns[secret] = _read(secret)
    return _dsns[secret]


def _read(secret: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=secret).get("SecretString")
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        raise ConfigError(f"cannot read FLOE_CONNECTIONS_DSN_SECRET ({code})") from None
    except BotoCoreError as error:
        raise ConfigError(f"cannot read FLOE_CONNECTIONS_DSN_SECRET ({type(error).__name__})") from None
    if not value:
        raise ConfigError("FLOE_CONNECTIONS_DSN_SECRET holds no SecretString: put the DSN in it")
    return value

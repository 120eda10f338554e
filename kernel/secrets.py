"""A connection's Snowflake credentials, read from Secrets Manager on every call and never cached.

The secret is a JSON object: `{"private_key": "<PEM>", "private_key_passphrase": "<optional>"}` for
key-pair authentication, or `{"password": "..."}` only where that is what a customer insists on.
Nothing here ever puts secret material into a message, a repr or a log line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kernel.errors import FloeError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class SecretError(FloeError):
    """The connection's secret is missing, unreadable or malformed; the message says which and what to do."""


@dataclass(frozen=True)
class SnowflakeCredentials:
    """Exactly one of `private_key` (DER, PKCS#8, unencrypted) or `password` is set."""

    private_key: bytes | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def connect_arguments(self) -> dict[str, object]:
        if self.private_key is not None:
            return {"authenticator": "SNOWFLAKE_JWT", "private_key": self.private_key}
        return {"password": self.password}

    def private_key_pem(self) -> str | None:
        """The key as unencrypted PKCS#8 PEM text, the form snowflake-ingest signs with (the connector
        takes DER); None for a password."""
        if self.private_key is None:
            return None
        key = serialization.load_der_private_key(self.private_key, password=None)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return pem.decode()

    def __repr__(self) -> str:
        kind = "key pair" if self.private_key is not None else "password"
        return f"SnowflakeCredentials(<{kind}, redacted>)"


def read_credentials(secret_ref: str, client: SecretsManagerClient | None = None) -> SnowflakeCredentials:
    client = client or boto3.client("secretsmanager")
    try:
        raw = client.get_secret_value(SecretId=secret_ref)["SecretString"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        raise SecretError(
            f"cannot read secret {secret_ref!r} ({code}); check that it exists and the loader may read it"
        ) from None
    except KeyError:
        raise SecretError(f"secret {secret_ref!r} has no SecretString; store the credentials as JSON") from None
    return parse_credentials(secret_ref, raw)


def parse_credentials(secret_ref: str, raw: str) -> SnowflakeCredentials:
    try:
        document = json.loads(raw)
    except ValueError:
        raise SecretError(f"secret {secret_ref!r} is not a JSON object; see docs/operations.md") from None
    if not isinstance(document, dict):
        raise SecretError(f"secret {secret_ref!r} is not a JSON object; see docs/operations.md")
    if isinstance(pem := document.get("private_key"), str):
        passphrase = document.get("private_key_passphrase")
        return SnowflakeCredentials(private_key=_der_private_key(secret_ref, pem, passphrase))
    if isinstance(password := document.get("password"), str) and password:
        return SnowflakeCredentials(password=password)
    raise SecretError(f"secret {secret_ref!r} holds neither 'private_key' nor 'password'")


def _der_private_key(secret_ref: str, pem: str, passphrase: object) -> bytes:
    """The connector wants DER bytes or a key object, not PEM (docs/snowflake-facts.md §7)."""
    if passphrase is not None and not isinstance(passphrase, str):
        raise SecretError(f"secret {secret_ref!r}: 'private_key_passphrase' must be a string")
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=passphrase.encode() if passphrase else None)
    except (ValueError, TypeError):
        # The library's message can quote key material; never pass it on.
        raise SecretError(
            f"secret {secret_ref!r}: 'private_key' is not a readable PEM private key "
            "(or its passphrase is wrong); regenerate it with `floe provision --rotate-key`"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise SecretError(f"secret {secret_ref!r}: Snowflake needs an RSA key of at least 2048 bits")
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def store_private_key(secret_ref: str, pem: str, client: SecretsManagerClient | None = None) -> None:
    """Create or overwrite the connection's secret with a new private key."""
    client = client or boto3.client("secretsmanager")
    body = json.dumps({"private_key": pem})
    try:
        client.put_secret_value(SecretId=secret_ref, SecretString=body)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise SecretError(f"cannot write secret {secret_ref!r}") from None
        client.create_secret(Name=secret_ref, SecretString=body)

"""The connection's RSA key pair: generated once, private half kept only in Secrets Manager.

Snowflake wants at least 2048-bit RSA and the public key's base64 body without PEM lines
(docs/snowflake-facts.md §7). The private key is stored as unencrypted PKCS#8 PEM, the form
`kernel.secrets` reads back.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kernel.secrets import SecretError, read_credentials, store_private_key

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

KEY_BITS = 2048


@dataclass(frozen=True)
class ConnectionKey:
    """The public half to hand to the customer, and whether provision just created the pair."""

    public_key_b64: str
    created: bool


def public_key_b64(key: rsa.RSAPrivateKey) -> str:
    """The `MIIB…` body that CREATE/ALTER USER … RSA_PUBLIC_KEY takes (docs/snowflake-facts.md §7)."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def ensure_key(secret_ref: str, client: SecretsManagerClient | None = None) -> ConnectionKey:
    """The connection's public key: from its secret if one exists, else from a new pair stored there.

    An existing secret is never overwritten, so a running connection keeps its key.
    """
    client = client or boto3.client("secretsmanager")
    if _secret_exists(secret_ref, client):
        credentials = read_credentials(secret_ref, client)
        if credentials.private_key is None:
            raise SecretError(f"secret {secret_ref!r} holds a password, not a key pair; no setup script")
        key = serialization.load_der_private_key(credentials.private_key, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)  # read_credentials accepts RSA keys only
        return ConnectionKey(public_key_b64(key), created=False)
    key = generate_private_key()
    store_private_key(secret_ref, private_key_pem(key), client)
    return ConnectionKey(public_key_b64(key), created=True)


def _secret_exists(secret_ref: str, client: SecretsManagerClient) -> bool:
    try:
        client.describe_secret(SecretId=secret_ref)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        raise SecretError(f"cannot look up secret {secret_ref!r}") from None
    return True


def secret_document(secret_ref: str, client: SecretsManagerClient | None = None) -> dict[str, Any]:
    """The connection secret's JSON object as stored: besides `private_key` (what the loader logs in
    with), a key rotation keeps `key_slot` and, while it waits, `pending_private_key` and `pending_key_slot`."""
    client = client or boto3.client("secretsmanager")
    try:
        document = json.loads(client.get_secret_value(SecretId=secret_ref)["SecretString"])
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        raise SecretError(f"cannot read secret {secret_ref!r} ({code}); has `floe provision` run?") from None
    except (KeyError, ValueError):
        raise SecretError(f"secret {secret_ref!r} is not a JSON object") from None
    if not isinstance(document, dict):
        raise SecretError(f"secret {secret_ref!r} is not a JSON object")
    return document


def write_secret_document(
    secret_ref: str, document: dict[str, Any], client: SecretsManagerClient | None = None
) -> None:
    """A new version of an existing secret: the loader reads it at its next invocation."""
    client = client or boto3.client("secretsmanager")
    try:
        client.put_secret_value(SecretId=secret_ref, SecretString=json.dumps(document))
    except ClientError:
        raise SecretError(f"cannot write secret {secret_ref!r}") from None

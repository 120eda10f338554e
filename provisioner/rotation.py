"""`floe provision --rotate-key`: a new key pair for a ready connection, with no failed login on the way.

A Snowflake user holds two public keys, RSA_PUBLIC_KEY and RSA_PUBLIC_KEY_2 (docs/snowflake-facts.md
§7). Rotation uses the free slot, in two runs, each under the connection's lease (so no tick reads the
secret while it changes):

1. No rotation under way: generate a pair; keep its private half in the secret as
   `pending_private_key` beside the current `private_key` (the loader goes on using the current one);
   return the `ALTER USER … SET RSA_PUBLIC_KEY[_2]` the customer's admin runs.
2. A rotation under way: log in with the pending key. Refused: still waiting (the same SQL again).
   Accepted: the pending key becomes the secret's `private_key` (the loader uses it from its next
   tick), and only then is the old slot unset: by the service user if Snowflake lets it, else by the
   customer's admin, whose SQL the outcome carries.
"""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kernel import config, logs, render
from kernel.connections import ConnectionStatus
from kernel.errors import FloeError
from kernel.render import Target
from kernel.secrets import SecretError, parse_credentials
from kernel.snowflake_session import SnowflakeError, open_session, query
from provisioner import keys
from provisioner.provision import PRIVILEGE_ERRNO, store_for

if TYPE_CHECKING:
    from kernel.config import Settings
    from kernel.connections import Connection, ConnectionStore

_log = logs.get("rotation")
SLOT_PROPERTY = {1: "RSA_PUBLIC_KEY", 2: "RSA_PUBLIC_KEY_2"}


class RotationState(StrEnum):
    WAITING = "waiting_for_customer"  # the customer's admin must install the new key (customer_sql)
    ROTATED = "rotated"  # the loader uses the new key; customer_sql, if any, removes the old one
    BUSY = "busy"  # a tick holds the lease; nothing was done


class RotationRefused(FloeError):
    """The connection is not one whose key can be rotated (not ready, or a password secret)."""


@dataclass(frozen=True)
class RotationOutcome:
    connection_id: str
    state: RotationState
    detail: str
    customer_sql: str | None = None

    def summary(self) -> str:
        return f"{self.connection_id}: key rotation {self.state.value}\n  {self.detail}"


def rotate_key(
    connection_id: str,
    *,
    settings: Settings | None = None,
    store: ConnectionStore | None = None,
    owner: str = "floe-rotate-key",
) -> RotationOutcome:
    """Advance the connection's key rotation by one step (see the module docstring)."""
    settings = settings or config.load()
    with store_for(settings, store) as connections:
        connection = connections.get(connection_id)
        if connection.status is not ConnectionStatus.READY:
            raise RotationRefused(f"{connection_id} is {connection.status.value}: rotate the key of a ready connection")
        lease = connections.acquire_lease(connection_id, owner, timedelta(seconds=settings.lease_seconds))
        if lease is None:
            return RotationOutcome(connection_id, RotationState.BUSY, "a run holds the lease; nothing was done")
        try:
            outcome = _rotate(connection, settings)
        finally:
            connections.release_lease(lease)
    _log.info("key rotation", extra={"connection_id": connection_id, "state": outcome.state.value})
    return outcome


def pending_sql(connection: Connection, settings: Settings) -> str | None:
    """The statement the customer's admin runs to install a pending key, or None if none is pending."""
    document = keys.secret_document(connection.secret_ref)
    if "pending_private_key" not in document:
        return None
    target = Target.from_connection(connection, settings, config.aws_account_id(settings))
    return _install_sql(target, document)


def _rotate(connection: Connection, settings: Settings) -> RotationOutcome:
    document = keys.secret_document(connection.secret_ref)
    if not isinstance(document.get("private_key"), str):
        raise RotationRefused(f"secret {connection.secret_ref!r} holds no key pair; nothing to rotate")
    target = Target.from_connection(connection, settings, config.aws_account_id(settings))
    if "pending_private_key" not in document:
        return _begin(connection, target, document)
    return _finish(connection, target, settings, document)


def _begin(connection: Connection, target: Target, document: dict[str, Any]) -> RotationOutcome:
    slot = _other(_slot(document, "key_slot"))
    pending = keys.private_key_pem(keys.generate_private_key())
    document = {**document, "pending_private_key": pending, "pending_key_slot": slot}
    keys.write_secret_document(connection.secret_ref, document)
    return RotationOutcome(
        connection.connection_id,
        RotationState.WAITING,
        f"a new key waits for {SLOT_PROPERTY[slot]}; the loader keeps the current key until it is proven",
        _install_sql(target, document),
    )


def _finish(connection: Connection, target: Target, settings: Settings, document: dict[str, Any]) -> RotationOutcome:
    new_slot = _slot(document, "pending_key_slot")
    pending = str(document["pending_private_key"])
    credentials = parse_credentials(connection.secret_ref, json.dumps({"private_key": pending}))
    try:
        session = open_session(
            connection, credentials, settings, query_tag=f"floe rotate-key {connection.connection_id}"
        )
    except SnowflakeError as error:
        if error.transient:
            raise
        detail = (
            f"the new key cannot log in yet ({SLOT_PROPERTY[new_slot]} not installed?); the current key still works"
        )
        return RotationOutcome(connection.connection_id, RotationState.WAITING, detail, _install_sql(target, document))
    with closing(session):
        # Proven: from here the loader logs in with the new key; the old one still works meanwhile.
        keys.write_secret_document(connection.secret_ref, {"private_key": pending, "key_slot": new_slot})
        old = render.render("user_key", target, slot=_other(new_slot))
        try:
            query(session, old)
        except SnowflakeError as error:
            if error.errno != PRIVILEGE_ERRNO:
                raise
            detail = "logged in with the new key and switched the loader to it; the old key is still installed"
            return RotationOutcome(connection.connection_id, RotationState.ROTATED, detail, old + ";")
    detail = f"logged in with the new key, switched the loader to it, removed the old {SLOT_PROPERTY[_other(new_slot)]}"
    return RotationOutcome(connection.connection_id, RotationState.ROTATED, detail)


def _install_sql(target: Target, document: dict[str, Any]) -> str:
    try:
        key = serialization.load_pem_private_key(str(document["pending_private_key"]).encode(), password=None)
    except (ValueError, TypeError):
        key = None  # the library's message can quote key material; never pass it on
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SecretError("the pending key in the connection's secret is not a readable RSA key")
    slot = _slot(document, "pending_key_slot")
    return render.render("user_key", target, slot=slot, public_key=keys.public_key_b64(key)) + ";"


def _slot(document: dict[str, Any], name: str) -> int:
    slot = document.get(name, 1)  # a secret from before rotation existed holds its key in slot 1
    if slot not in SLOT_PROPERTY:
        raise SecretError(f"the connection secret's {name} must be 1 or 2")
    return int(slot)


def _other(slot: int) -> int:
    return 2 if slot == 1 else 1

"""Hostile and changing credentials over the local stack: a secret that holds no usable key, a missing
secret, a key rotated between ticks (Snowflake's RSA_PUBLIC_KEY_2 procedure, docs/snowflake-facts.md §7), a
secret updated before its public key is registered, and a key Snowflake no longer accepts.

Every failure must be a clear error in the run report with nothing moved: the file stays in the live
prefix, no REFRESH runs, and a secret that cannot be read or parsed costs no Snowflake login. The
revoked-key case (`UNSET RSA_PUBLIC_KEY`) is tests/test_tick.py's; here the key is replaced instead.
"""

from __future__ import annotations

import json

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kernel.secrets import store_private_key
from provisioner.keys import generate_private_key, private_key_pem, public_key_b64

from .stack import Stack

USER = "FLOE_LOADER"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


NOT_A_KEY = {
    "not-json": ("-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----", "not a JSON object"),
    "json-list": (json.dumps(["private_key"]), "not a JSON object"),
    "no-key-field": (json.dumps({"user": USER}), "neither 'private_key' nor 'password'"),
    "garbage-pem": (json.dumps({"private_key": "-----BEGIN PRIVATE KEY-----\nnot base64!\n"}), "not a readable PEM"),
    "public-key": (
        json.dumps(
            {
                "private_key": generate_private_key()
                .public_key()
                .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode()
            }
        ),
        "not a readable PEM",
    ),
    "ec-key": (json.dumps({"private_key": _pem(ec.generate_private_key(ec.SECP256R1()))}), "at least 2048 bits"),
    "small-rsa": (
        json.dumps({"private_key": _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))}),
        "at least 2048 bits",
    ),
    "key-not-a-string": (json.dumps({"private_key": 42}), "neither 'private_key' nor 'password'"),
    "empty": ("{}", "neither 'private_key' nor 'password'"),
}


def _set_secret(stack: Stack, value: str) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=stack.connection.secret_ref, SecretString=value)


def _nothing_moved(stack: Stack, key: str) -> None:
    assert stack.live_keys() == [key]
    assert stack.dead_letters() == []
    assert stack.refreshes() == 0
    assert stack.source_files() == []  # (an admin login: count logins before calling this)


def test_a_secret_that_holds_no_usable_key_fails_clearly_before_any_login(stack: Stack) -> None:
    key = stack.put_events(stack.key("waiting"))
    for case, (value, says) in NOT_A_KEY.items():
        _set_secret(stack, value)
        logins = stack.logins()
        report = stack.tick()
        assert stack.logins() == logins, case  # no login: the secret was refused first
        assert report["status"] == "error", case
        assert "SecretError" in report["error"], (case, report["error"])
        assert says in report["error"], (case, report["error"])
        assert stack.connection.secret_ref in report["error"]
        _nothing_moved(stack, key)


def test_a_missing_secret_fails_clearly_before_any_login(stack: Stack) -> None:
    key = stack.put_events(stack.key("waiting"))
    boto3.client("secretsmanager").delete_secret(SecretId=stack.connection.secret_ref, ForceDeleteWithoutRecovery=True)
    logins = stack.logins()
    report = stack.tick()
    assert stack.logins() == logins
    assert report["status"] == "error"
    assert f"cannot read secret {stack.connection.secret_ref!r} (ResourceNotFoundException)" in report["error"]
    _nothing_moved(stack, key)


def test_a_key_rotated_between_ticks_keeps_every_tick_working(stack: Stack) -> None:
    """Snowflake's procedure: add the new key as RSA_PUBLIC_KEY_2, switch the secret, drop the old key."""
    new = generate_private_key()
    first = stack.put_events(stack.key("before-rotation"))
    assert stack.tick()["files_loaded"] == 1
    stack.admin_sql(f"ALTER USER {USER} SET RSA_PUBLIC_KEY_2 = '{public_key_b64(new)}'")
    stack.put_events(stack.key("both-keys-old-secret"))
    assert stack.tick()["files_loaded"] == 1
    store_private_key(stack.connection.secret_ref, private_key_pem(new))
    stack.put_events(stack.key("both-keys-new-secret"))
    assert stack.tick()["files_loaded"] == 1
    stack.admin_sql(f"ALTER USER {USER} UNSET RSA_PUBLIC_KEY")
    stack.put_events(stack.key("after-rotation"))
    report = stack.tick()
    assert (report["status"], report["files_loaded"]) == ("ok", 1)
    assert stack.live_keys() == []
    assert len(stack.source_files()) == 4 * 3
    assert first.rsplit("/", 1)[-1] in " ".join(stack.source_files())


def test_a_secret_switched_before_its_key_is_registered_fails_then_recovers(stack: Stack) -> None:
    new = generate_private_key()
    store_private_key(stack.connection.secret_ref, private_key_pem(new))
    key = stack.put_events(stack.key("waiting"))
    report = stack.tick()
    assert report["status"] == "error"
    assert "390144" in report["error"] or "JWT" in report["error"], report["error"]
    assert "login" in report["error"].lower()
    _nothing_moved(stack, key)
    stack.admin_sql(f"ALTER USER {USER} SET RSA_PUBLIC_KEY_2 = '{public_key_b64(new)}'")
    after = stack.tick()
    assert (after["status"], after["files_loaded"]) == ("ok", 1)


def test_a_key_snowflake_no_longer_accepts_stops_the_run_before_anything_moves(stack: Stack) -> None:
    """The user's key was replaced (e.g. revoked and re-issued by the customer's admin)."""
    stack.admin_sql(f"ALTER USER {USER} SET RSA_PUBLIC_KEY = '{public_key_b64(generate_private_key())}'")
    key = stack.put_events(stack.key("waiting"))
    report = stack.tick()
    assert report["status"] == "error"
    assert "390144" in report["error"] or "JWT" in report["error"], report["error"]
    assert repr(stack.connection.account) in report["error"]
    _nothing_moved(stack, key)
    [posted] = stack.core.runs()
    assert (posted["status"], posted["files_loaded"]) == ("error", 0)


@pytest.fixture(autouse=True)
def _fast_failing_logins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A permanent login error is not retried; nothing here needs the Lambda's full time budget."""
    monkeypatch.setenv("FLOE_RETRY_ATTEMPTS", "2")

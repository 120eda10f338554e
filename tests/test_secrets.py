"""Reading a connection's credentials from Secrets Manager (moto over HTTP); nothing secret leaks."""

from __future__ import annotations

import json

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack.aws import MotoServer
from kernel.secrets import SecretError, read_credentials, store_private_key

PASSWORD = "correct-horse-battery-staple-7431"


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def put(name: str, value: str) -> None:
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=value)


def test_a_key_pair_secret_becomes_der_bytes_for_the_connector(aws: MotoServer) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    store_private_key("floe/connections/c1", pem(key))
    credentials = read_credentials("floe/connections/c1")
    assert credentials.private_key == key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert credentials.connect_arguments()["authenticator"] == "SNOWFLAKE_JWT"
    assert "redacted" in repr(credentials)
    assert "MII" not in repr(credentials)


def test_an_encrypted_key_is_opened_with_its_passphrase(aws: MotoServer) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    put(
        "c2",
        json.dumps({"private_key": pem(key, b"s3cret-phrase"), "private_key_passphrase": "s3cret-phrase"}),
    )
    assert read_credentials("c2").private_key is not None


def test_a_password_secret_is_used_only_when_that_is_what_it_holds(aws: MotoServer) -> None:
    put("c3", json.dumps({"password": PASSWORD}))
    credentials = read_credentials("c3")
    assert credentials.connect_arguments() == {"password": PASSWORD}
    assert PASSWORD not in repr(credentials)


def test_store_overwrites_an_existing_secret(aws: MotoServer) -> None:
    first, second = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    store_private_key("c4", pem(first))
    store_private_key("c4", pem(second))
    expected = second.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert read_credentials("c4").private_key == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not json at all " + PASSWORD, "not a JSON object"),
        (json.dumps([PASSWORD]), "not a JSON object"),
        (json.dumps({"user": "x"}), "neither 'private_key' nor 'password'"),
        (
            json.dumps({"private_key": "-----BEGIN PRIVATE KEY-----\nMIIBroken" + PASSWORD}),
            "not a readable PEM",
        ),
        (json.dumps({"private_key": "hello", "private_key_passphrase": PASSWORD}), "not a readable PEM"),
    ],
)
def test_malformed_secrets_give_a_typed_error_without_their_content(aws: MotoServer, value: str, says: str) -> None:
    put("bad", value)
    with pytest.raises(SecretError, match=says) as caught:
        read_credentials("bad")
    assert PASSWORD not in str(caught.value)
    assert "MIIBroken" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_a_wrong_passphrase_or_a_small_or_non_rsa_key_is_refused(aws: MotoServer) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    put("wrong", json.dumps({"private_key": pem(rsa_key, b"right"), "private_key_passphrase": "wrong"}))
    put("ec", json.dumps({"private_key": pem(ec.generate_private_key(ec.SECP256R1()))}))
    put(
        "small",
        json.dumps({"private_key": pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))}),
    )
    with pytest.raises(SecretError, match="passphrase is wrong"):
        read_credentials("wrong")
    for name in ("ec", "small"):
        with pytest.raises(SecretError, match="at least 2048 bits"):
            read_credentials(name)


def test_a_missing_secret_says_what_to_check(aws: MotoServer) -> None:
    with pytest.raises(SecretError, match="cannot read secret 'nope' \\(ResourceNotFoundException\\)"):
        read_credentials("nope")

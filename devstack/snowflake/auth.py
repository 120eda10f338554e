"""Login checks: passwords and key-pair JWTs (docs/snowflake-facts.md §7)."""

from __future__ import annotations

import base64
import hashlib
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .errors import LoginError
from .model import User

# Connector error codes for rejected logins (key-pair-auth-troubleshooting; the connector's
# CREDENTIAL_REJECTION_GS_CODES): both surface as DatabaseError "Failed to connect to DB: …".
JWT_INVALID = 390144
BAD_CREDENTIALS = 390100


def jwt_invalid() -> LoginError:
    return LoginError(JWT_INVALID, "JWT token is invalid.", "08001")


def bad_credentials() -> LoginError:
    return LoginError(BAD_CREDENTIALS, "Incorrect username or password was specified.", "08004")


def load_public_key(text: str) -> RSAPublicKey:
    """``RSA_PUBLIC_KEY='MIIB…'``: base64 DER without PEM delimiters (docs/snowflake-facts.md §7); PEM is
    accepted too."""
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    key = serialization.load_der_public_key(base64.b64decode(body))
    if not isinstance(key, RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def fingerprint(key: RSAPublicKey) -> str:
    """``SHA256:<base64 sha256 of the DER public key>``, as the connector puts in the JWT issuer."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def verify_password(user: User, password: str | None) -> None:
    # docs/snowflake-facts.md §7: TYPE = SERVICE users "cannot log in using a password".
    if user.type == "SERVICE" or user.password is None or password != user.password:
        raise bad_credentials()


def verify_jwt(account: str, user: User, token: str | None) -> None:
    """Signature against RSA_PUBLIC_KEY or RSA_PUBLIC_KEY_2, iss/sub naming ACCOUNT.USER, expiry.

    docs/snowflake-facts.md §7: ``iss=ACCOUNT.USER.SHA256:<fp>``, ``sub=ACCOUNT.USER``, valid at most one hour.
    Expiry is checked on the real clock: the connector signs with real time.
    """
    if not token:
        raise jwt_invalid()
    subject = f"{account.upper()}.{user.name.upper()}"
    for key_text in (user.rsa_public_key, user.rsa_public_key_2):
        if not key_text:
            continue
        key = load_public_key(key_text)
        try:
            claims = jwt.decode(token, key, algorithms=["RS256"], options={"require": ["exp", "iat"]})
        except jwt.PyJWTError:
            continue
        if claims.get("sub") != subject or claims.get("iss") != f"{subject}.{fingerprint(key)}":
            continue
        if claims["exp"] - claims["iat"] > 3600 or claims["iat"] > time.time() + 60:
            continue
        return
    raise jwt_invalid()

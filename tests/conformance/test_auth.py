"""Login: key pairs, key rotation, passwords and service users.

Facts: docs/snowflake-facts.md §7 (service users, key pairs, connector).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from snowflake.connector.errors import DatabaseError

from .harness import KeyPair, Target, get, query

PASSWORD = "Conformance-Passw0rd-1"


def test_key_pair_login_and_a_bad_key_is_refused(target: Target) -> None:
    """§7: a user with `RSA_PUBLIC_KEY` logs in with `authenticator='SNOWFLAKE_JWT'` and the matching
    private key as DER bytes; any other key is refused at login."""
    key, stranger = KeyPair.generate(), KeyPair.generate()
    user = target.create_user("KEY", properties=f"TYPE = SERVICE RSA_PUBLIC_KEY = '{key.public_b64}'")

    target.connect(user, private_key=key.der)
    with pytest.raises(DatabaseError):
        target.connect(user, private_key=stranger.der)


def test_rotated_key_works_and_the_unset_key_stops_working(target: Target) -> None:
    """§7 key-pair-auth: rotate with `RSA_PUBLIC_KEY_2` (both keys work), then `UNSET RSA_PUBLIC_KEY`
    (only the new one works)."""
    old, new = KeyPair.generate(), KeyPair.generate()
    user = target.create_user("ROTATE", properties=f"TYPE = SERVICE RSA_PUBLIC_KEY = '{old.public_b64}'")
    with pytest.raises(DatabaseError):
        target.connect(user, private_key=new.der)

    query(target.admin, f"ALTER USER {user} SET RSA_PUBLIC_KEY_2 = '{new.public_b64}'")
    target.connect(user, private_key=new.der)
    target.connect(user, private_key=old.der)

    query(target.admin, f"ALTER USER {user} UNSET RSA_PUBLIC_KEY")
    target.connect(user, private_key=new.der)
    with pytest.raises(DatabaseError):
        target.connect(user, private_key=old.der)


def test_wrong_password_is_refused(target: Target) -> None:
    """§7 (connector login with a password, python-connector-connect): the right password logs a PERSON
    user in, a wrong one is refused."""
    user = target.create_user("PW", properties=f"TYPE = PERSON PASSWORD = '{PASSWORD}'")
    target.connect(user, password=PASSWORD)
    with pytest.raises(DatabaseError):
        target.connect(user, password=PASSWORD + "-wrong")


def test_service_user_cannot_use_a_password(target: Target) -> None:
    """§7 / admin-user-management (https://docs.snowflake.com/en/user-guide/admin-user-management):
    `TYPE = SERVICE` users "cannot log in using a password" and "cannot have the following properties: …
    PASSWORD". So creating one with a password is refused, or, if accepted, the password does not log in;
    a user turned into a SERVICE user can no longer log in with the password that worked before."""
    try:
        direct = target.create_user("SVC_PW", properties=f"TYPE = SERVICE PASSWORD = '{PASSWORD}'")
    except DatabaseError:
        pass  # refused outright: the documented "cannot have … PASSWORD"
    else:
        with pytest.raises(DatabaseError):
            target.connect(direct, password=PASSWORD)

    person = target.create_user("TURNED", properties=f"TYPE = PERSON PASSWORD = '{PASSWORD}'")
    target.connect(person, password=PASSWORD)
    try:
        query(target.admin, f"ALTER USER {person} SET TYPE = SERVICE")
    except DatabaseError:
        return  # refusing the change while a password is set also keeps passwords off SERVICE users
    with pytest.raises(DatabaseError):
        target.connect(person, password=PASSWORD)


def test_a_key_of_another_user_is_refused(target: Target) -> None:
    """§7 JWT: `iss=ACCOUNT.USER.SHA256:<fp>`, `sub=ACCOUNT.USER`: a key is checked against the named
    user's keys, so user B's valid key does not log in user A."""
    key_a, key_b = KeyPair.generate(), KeyPair.generate()
    user_a = target.create_user("KA", properties=f"TYPE = SERVICE RSA_PUBLIC_KEY = '{key_a.public_b64}'")
    user_b = target.create_user("KB", properties=f"TYPE = SERVICE RSA_PUBLIC_KEY = '{key_b.public_b64}'")
    target.connect(user_b, private_key=key_b.der)
    with pytest.raises(DatabaseError):
        target.connect(user_a, private_key=key_b.der)


def test_desc_user_shows_the_key_fingerprint(target: Target) -> None:
    """§7 key-pair-auth: "Check with `RSA_PUBLIC_KEY_FP` in DESC USER"; the fingerprint is `SHA256:` and the
    base64 SHA-256 of the DER public key (the JWT `iss` carries it, §7)."""
    key = KeyPair.generate()
    user = target.create_user("FP", properties=f"TYPE = SERVICE RSA_PUBLIC_KEY = '{key.public_b64}'")
    der = key.private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
    props = {str(get(r, "property")).upper(): get(r, "value") for r in query(target.admin, f"DESC USER {user}")}
    assert props.get("RSA_PUBLIC_KEY_FP") == expected, props

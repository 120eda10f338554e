"""Accounts are separate: one organisation's account cannot see another's objects or users.

Facts: Floe gives each organisation its own Snowflake account (docs/architecture.md, "Isolation");
security-access-control-overview
(https://docs.snowflake.com/en/user-guide/security-access-control-overview): every securable object sits in
a container hierarchy and "all databases for your Snowflake account are contained in the account object";
§4 integrations and their IAM user are per account.
"""

from __future__ import annotations

import pytest
from snowflake.connector.errors import DatabaseError

from .harness import KeyPair, Target, get, query


def test_account_b_cannot_see_account_a_objects(target: Target) -> None:
    """Objects live in one account: B's admin reading A's fully-qualified table either fails or (on a
    same-named database/schema of B's own) sees only B's rows; SHOW in B lists none of A's integrations,
    users or pipes."""
    other = target.other_account()
    loading = target.setup_loading("iso")
    query(target.admin, f"INSERT INTO {loading.table} (A, N) VALUES ('from-a', 1)")
    user_a = target.create_user("ISO_USER", properties="TYPE = SERVICE")

    # B makes the same database.schema name when it can (always on the stand-in), with its own row.
    same_place = other.database == target.database
    if same_place:
        query(other.admin, f"CREATE TABLE {loading.table} (A STRING, N NUMBER, SRC_FILE STRING, SRC_ROW NUMBER)")
        query(other.admin, f"INSERT INTO {loading.table} (A, N) VALUES ('from-b', 2)")
    try:
        seen = [get(r, "A") for r in query(other.admin, f"SELECT A FROM {loading.table}")]
    except DatabaseError:
        seen = None
    if same_place:
        assert seen == ["from-b"], seen
    else:
        assert seen is None, f"account B read account A's table: {seen}"

    integration = loading.access.integration
    assert query(other.admin, f"SHOW INTEGRATIONS LIKE '{integration}'") == []
    assert query(other.admin, f"SHOW USERS LIKE '{user_a}'") == []
    pipe_name = loading.pipe.rsplit(".", 1)[-1]
    assert query(other.admin, f"SHOW PIPES LIKE '{pipe_name}' IN ACCOUNT") == []


def test_a_user_of_account_a_cannot_log_in_to_account_b(target: Target) -> None:
    """Users belong to one account: A's key-pair user logs in to A and is refused by B (§7 key-pair
    login, connector `authenticator='SNOWFLAKE_JWT'` with DER bytes)."""
    other = target.other_account()
    key = KeyPair.generate()
    user = target.create_user("CROSS", properties=f"TYPE = SERVICE RSA_PUBLIC_KEY = '{key.public_b64}'")
    target.connect(user, private_key=key.der)

    with pytest.raises(DatabaseError):
        other.connect(user, private_key=key.der)


def test_accounts_have_their_own_integration_identity(target: Target) -> None:
    """§4: "Snowflake provisions a single IAM user for your entire Snowflake account": two accounts'
    integrations get external ids of their own, so one account's trust policy does not admit the other."""
    other = target.other_account()
    a = target.create_access("IDA", allowed_prefixes=[target.prefix("ida")], trust=False)
    b = other.create_access("IDB", allowed_prefixes=[other.prefix("idb")], trust=False)
    desc_a = query(target.admin, f"DESC INTEGRATION {a.integration}")
    desc_b = query(other.admin, f"DESC INTEGRATION {b.integration}")
    ext_a = {str(get(r, "property_value")) for r in desc_a if get(r, "property") == "STORAGE_AWS_EXTERNAL_ID"}
    ext_b = {str(get(r, "property_value")) for r in desc_b if get(r, "property") == "STORAGE_AWS_EXTERNAL_ID"}
    assert ext_a, desc_a
    assert ext_b, desc_b
    assert ext_a.isdisjoint(ext_b)

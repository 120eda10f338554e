"""Login, accounts and warehouses over the real connector protocol."""

from __future__ import annotations

import pytest
import snowflake.connector
from snowflake.connector.errors import DatabaseError, OperationalError, ProgrammingError

from devstack.snowflake.server import StandIn

from .helpers import connect, der, new_key, public_key_text, run


@pytest.fixture
def acme(standin: StandIn) -> StandIn:
    standin.control.create_account("acme")
    return standin


def _service_user(server: StandIn, key_text: str) -> None:
    with connect(server, "acme") as admin:
        run(admin, f"CREATE USER LOADER TYPE = SERVICE RSA_PUBLIC_KEY = '{key_text}' DEFAULT_ROLE = LOADER_ROLE")
        run(admin, "CREATE ROLE LOADER_ROLE")
        run(admin, "GRANT ROLE LOADER_ROLE TO USER LOADER")


def test_key_pair_login_accepts_the_registered_key_only(acme: StandIn) -> None:
    key = new_key()
    _service_user(acme, public_key_text(key))
    with connect(acme, "ACME", user="LOADER", private_key=der(key), role="LOADER_ROLE") as conn:
        assert run(conn, "SELECT CURRENT_ROLE() IS NOT NULL") is not None
    with pytest.raises(DatabaseError) as wrong_key:
        connect(acme, "acme", user="LOADER", private_key=der(new_key()))
    assert wrong_key.value.errno == 390144
    assert "JWT token is invalid" in str(wrong_key.value)


def test_rotated_key_works_through_rsa_public_key_2(acme: StandIn) -> None:
    old, new = new_key(), new_key()
    _service_user(acme, public_key_text(old))
    with connect(acme, "acme") as admin:
        run(admin, f"ALTER USER LOADER SET RSA_PUBLIC_KEY_2 = '{public_key_text(new)}'")
        run(admin, "ALTER USER LOADER UNSET RSA_PUBLIC_KEY")
    connect(acme, "acme", user="LOADER", private_key=new).close()  # an RSAPrivateKey object works too
    with pytest.raises(DatabaseError):
        connect(acme, "acme", user="LOADER", private_key=der(old))


def test_passwords_and_roles(acme: StandIn) -> None:
    with pytest.raises(DatabaseError) as wrong:
        connect(acme, "acme", password="nope")
    assert wrong.value.errno == 390100
    key = new_key()
    _service_user(acme, public_key_text(key))
    with connect(acme, "acme") as admin:
        run(admin, "ALTER USER LOADER SET PASSWORD = 'secret'")
    with pytest.raises(DatabaseError):  # docs/snowflake-facts.md §7: a SERVICE user cannot use a password
        connect(acme, "acme", user="LOADER", password="secret")
    with pytest.raises(DatabaseError) as role:
        connect(acme, "acme", user="LOADER", private_key=der(key), role="ACCOUNTADMIN")
    assert role.value.errno == 390189
    with pytest.raises(DatabaseError):
        connect(acme, "nobody")


def test_accounts_are_isolated(standin: StandIn) -> None:
    standin.control.create_account("acme")
    standin.control.create_account("globex")
    with connect(standin, "acme", database="DB", schema="PUBLIC", warehouse="COMPUTE_WH") as acme:
        run(acme, "CREATE TABLE T (X NUMBER)")
        run(acme, "INSERT INTO T VALUES (1)")
        run(acme, "CREATE ROLE ONLY_ACME")
    with connect(standin, "globex", database="DB", schema="PUBLIC", warehouse="COMPUTE_WH") as globex:
        with pytest.raises(ProgrammingError):
            run(globex, "SELECT * FROM T")
        assert not [r for r in run(globex, "SHOW ROLES") if r[1] == "ONLY_ACME"]
    assert standin.control.stats("acme")["logins"] == 1


def test_suspended_warehouse_without_auto_resume_refuses_queries_not_ddl(acme: StandIn) -> None:
    with connect(acme, "acme", database="DB", schema="PUBLIC") as conn:
        run(conn, "CREATE TABLE T (X NUMBER)")
        with pytest.raises(ProgrammingError) as none_in_use:
            run(conn, "SELECT * FROM T")
        assert none_in_use.value.errno == 606
        run(conn, "CREATE WAREHOUSE W WAREHOUSE_SIZE = XSMALL AUTO_SUSPEND = 60 AUTO_RESUME = FALSE")
        run(conn, "ALTER WAREHOUSE W SUSPEND")
        with pytest.raises(ProgrammingError) as suspended:
            run(conn, "SELECT * FROM T")
        assert suspended.value.errno == 608
        run(conn, "CREATE TABLE U (X NUMBER)")  # DDL runs in cloud services
        run(conn, "ALTER WAREHOUSE W SET AUTO_RESUME = TRUE")
        assert run(conn, "SELECT count(*) FROM T") == [(0,)]
    stats = acme.control.stats("acme")
    assert stats["warehouse_resumes"] == 1
    assert stats["warehouse_statements"] == 1


def test_auto_suspend_follows_the_clock(acme: StandIn) -> None:
    with connect(acme, "acme", database="DB", schema="PUBLIC", warehouse="COMPUTE_WH") as conn:
        run(conn, "CREATE TABLE T (X NUMBER)")
        run(conn, "SELECT * FROM T")
        acme.control.advance_clock(601)
        assert run(conn, "SHOW WAREHOUSES")[0][1] == "SUSPENDED"
        run(conn, "SELECT * FROM T")
    assert acme.control.stats("acme")["warehouse_resumes"] == 1


def test_injected_request_failures_fail_fast(acme: StandIn) -> None:
    with connect(acme, "acme") as conn:
        acme.control.inject_faults("acme", fail_requests=1)
        with pytest.raises(OperationalError):
            run(conn, "SHOW WAREHOUSES")
        assert run(conn, "SHOW WAREHOUSES")
    # The connector retries a failed login once (two attempts), then gives up with 250001.
    acme.control.inject_faults("acme", fail_requests=2)
    with pytest.raises(OperationalError) as login:
        connect(acme, "acme")
    assert login.value.errno == 250001


def test_connector_version_is_4() -> None:
    assert snowflake.connector.__version__.startswith("4.")

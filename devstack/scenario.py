"""Onboarding an organisation on the local stack, playing every part a person plays in production:
the platform creates the connection row, `floe provision` generates the key and the setup script, the
customer's Snowflake admin runs the script, and `floe provision` runs again and finds everything ready.
Used by `floe demo`, the end-to-end tests and the benchmark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import snowflake.connector

from kernel.connections import Connection, ConnectionStore
from provisioner.provision import ProvisionOutcome, ProvisionState, provision

if TYPE_CHECKING:
    from devstack.snowflake.server import StandIn
    from kernel.config import Settings

ADMIN_USER = "ADMIN"
ADMIN_PASSWORD = "admin-password"  # noqa: S105 - the stand-in's local admin, never a real credential


class OnboardingFailed(RuntimeError):
    pass


def new_connection(org_id: str, account: str, settings: Settings) -> Connection:
    return Connection(
        connection_id=f"conn-{org_id}",
        org_id=org_id,
        account=account,
        user="FLOE_LOADER",
        role="FLOE_LOADER",
        warehouse="COMPUTE_WH",
        database="ANALYTICS",
        schema="FLAGSMITH",
        table="FLAG_EVALUATIONS",
        secret_ref=f"{settings.secret_prefix}{org_id}",
    )


def onboard(org_id: str, account: str, *, standin: StandIn, settings: Settings, store: ConnectionStore) -> Connection:
    """A ready connection for `org_id` in its own stand-in account (created here)."""
    standin.control.create_account(account, admin_user=ADMIN_USER, admin_password=ADMIN_PASSWORD)
    s3 = boto3.client("s3")
    if settings.bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=settings.bucket)
    connection = new_connection(org_id, account, settings)
    store.add(connection)
    first = provision(connection.connection_id, settings=settings, store=store)
    _expect(first, ProvisionState.PENDING_CUSTOMER_SETUP)
    assert first.setup_script is not None
    run_as_admin(standin, account, first.setup_script)
    _expect(provision(connection.connection_id, settings=settings, store=store), ProvisionState.READY)
    return store.get(connection.connection_id)


def admin_session(host: str, port: int, account: str) -> snowflake.connector.SnowflakeConnection:
    """The customer's Snowflake admin, in their own account of the stand-in at host:port."""
    return snowflake.connector.connect(
        account=account,
        user=ADMIN_USER,
        password=ADMIN_PASSWORD,
        host=host,
        port=port,
        protocol="http",
        role="ACCOUNTADMIN",
        warehouse="COMPUTE_WH",
        login_timeout=10,
    )


def run_as_admin(standin: StandIn, account: str, script: str) -> None:
    with admin_session(standin.host, standin.port, account) as admin:
        admin.execute_string(script)


def run_as_admin_query(standin: StandIn, account: str, sql: str) -> list[tuple[Any, ...]]:
    with admin_session(standin.host, standin.port, account) as admin:
        return list(admin.cursor().execute(sql) or [])


def _expect(outcome: ProvisionOutcome, state: ProvisionState) -> None:
    if outcome.state is not state:
        raise OnboardingFailed(f"provision ended {outcome.state.value}, expected {state.value}:\n{outcome.summary()}")

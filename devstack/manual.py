"""The local stack driven by hand (`floe devstack …`): what `up` prepares, and the parts a person plays.

`up` gives every process the stack's AWS test credentials and region, creates the bucket, and opens a
stand-in account per organisation that loads on its own a few seconds after a REFRESH queues a file,
as Snowpipe does; `customer_setup` is the customer's admin running the setup script; `sample_hour`
is the ingestion side writing an hour of evaluation files.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import snowflake.connector

from devstack.aws import TEST_CREDENTIALS
from devstack.events import write_corrupt_file, write_event_file
from devstack.scenario import ADMIN_PASSWORD, ADMIN_USER, admin_session
from kernel import config, render
from kernel.errors import FloeError
from kernel.render import Target
from kernel.secrets import SecretError, read_credentials
from provisioner import keys
from provisioner.rotation import pending_sql

if TYPE_CHECKING:
    from devstack.stack import LocalStack
    from kernel.connections import Connection

DEFAULT_LOAD_DELAY_SECONDS = 2.0
# Polling tuned to the stand-in's seconds, not Snowflake's minutes, so `floe load` returns promptly.
FAST_POLLING = {"FLOE_POLL_FIRST_SECONDS": "1", "FLOE_POLL_MAX_SECONDS": "1", "FLOE_TIME_MARGIN_SECONDS": "2"}
ENVIRONMENT_KEYS = ("env-web", "env-mobile")


class NotOnTheLocalStack(FloeError):
    """A devstack command was pointed at something other than the local stack, or at a part it lacks."""


def account_for(org_id: str) -> str:
    """The stand-in account `up --org` opens for an organisation: `acme-eu` → `ACME_EU`."""
    return org_id.upper().replace("-", "_")


def environment(stack: LocalStack, connections_dsn: str) -> dict[str, str]:
    """Everything a process needs to run the product against `stack`."""
    return {**TEST_CREDENTIALS, **stack.environment(), "FLOE_CONNECTIONS_DSN": connections_dsn, **FAST_POLLING}


def prepare(stack: LocalStack, env: dict[str, str], orgs: list[str], load_delay: float | None) -> dict[str, str]:
    """Point this process at the stack, create the bucket and each organisation's account; returns
    organisation → account. `load_delay` None: files load only when drained (the control API)."""
    os.environ.update(env)  # the stand-in runs in this process and calls moto with these credentials
    boto3.client("s3").create_bucket(Bucket=config.load().bucket)
    accounts = {}
    for org_id in orgs:
        account = account_for(org_id)
        stack.snowflake.control.create_account(account, admin_user=ADMIN_USER, admin_password=ADMIN_PASSWORD)
        stack.snowflake.control.configure(account, load_delay_seconds=load_delay)
        accounts[org_id] = account
    return accounts


def customer_setup(connection: Connection, settings: config.Settings) -> str:
    """Run what the customer's admin is waiting to run, in the connection's stand-in account, as that
    admin; says what it ran: the new key's statement while a key rotation waits, else the setup script
    `floe provision` printed (rendered from the key provision stored)."""
    if settings.snowflake_host is None or settings.snowflake_port is None:
        raise NotOnTheLocalStack("FLOE_SNOWFLAKE_HOST/PORT are not set, so there is no stand-in to run the script in")
    try:
        read_credentials(connection.secret_ref)
    except SecretError:
        raise NotOnTheLocalStack(
            f"{connection.connection_id} has no key yet: run `floe provision` first, it makes the setup script"
        ) from None
    rotation = pending_sql(connection, settings)
    what, script = (
        ("the new key's statement", rotation) if rotation else ("the setup script", _setup_script(connection, settings))
    )
    try:
        with admin_session(settings.snowflake_host, settings.snowflake_port, connection.account) as admin:
            admin.execute_string(script)
    except snowflake.connector.errors.Error:
        raise NotOnTheLocalStack(
            f"the admin of account {connection.account} could not run the script: does the stand-in have that "
            "account (`floe devstack up --org …` opens one per organisation)?"
        ) from None
    return what


def _setup_script(connection: Connection, settings: config.Settings) -> str:
    key = keys.ensure_key(connection.secret_ref)  # exists: read back, never replaced
    target = Target.from_connection(connection, settings, config.aws_account_id(settings))
    return render.setup_script(target, key.public_key_b64)


def sample_hour(org_id: str, settings: config.Settings, *, files: int, corrupt: int, events: int) -> list[str]:
    """An hour of evaluation files under the organisation's live prefix, oldest first, spread over two
    environments; `corrupt` of them cut short, so Snowflake fails them and the loader dead-letters them."""
    s3, prefix, now = boto3.client("s3"), settings.live_prefix_for(org_id), datetime.now(UTC)
    keys_written = []
    for index in range(files + corrupt):
        at = now - timedelta(hours=1) * (1 - (index + 0.5) / (files + corrupt))
        environment_key = ENVIRONMENT_KEYS[index % len(ENVIRONMENT_KEYS)]
        name = f"{at:%H%M%S}-{index:04d}"
        if index < files:
            keys_written.append(
                write_event_file(
                    s3, settings.bucket, prefix, name, events=events, seed=index, environment_key=environment_key, at=at
                )
            )
        else:
            keys_written.append(
                write_corrupt_file(s3, settings.bucket, prefix, name, environment_key=environment_key, at=at)
            )
    return keys_written

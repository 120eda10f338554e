"""Provision, keep current and tear down one connection's Snowflake objects and its IAM role.

`provision` runs, in order: the key pair (secret) and the customer's setup script; the IAM role (trust:
deny all); a login as the service user, which proves the setup script ran; the storage integration and
the IAM trust handshake; the file format, table, stage and pipe at the current template version; and
a check that the stage can list the prefix and the pipe is running. Each step is idempotent, so a
stopped run (customer setup pending, admin SQL needed) resumes where it stopped when run again.

Every function returns a typed outcome for the CLI to print; nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from kernel import config, logs, render
from kernel.config import LoadMode
from kernel.connections import ConnectionStatus
from kernel.dsn import open_configured_store
from kernel.render import Target
from kernel.secrets import SecretError, read_credentials
from kernel.snowflake_objects import pipe_status, shown
from kernel.snowflake_session import SnowflakeError, open_session, query
from provisioner import iam, keys

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection

    from kernel.config import Settings
    from kernel.connections import Connection, ConnectionStore, Lease

_log = logs.get("provision")

# Objects provision keeps at the template version, in creation order (the integration is handled
# by the handshake before them).
OBJECT_KINDS = tuple(kind for kind in render.PROVISION_KINDS if kind != "integration")
# Re-creating these drops the pipe's load history, or breaks the pipe that reads them (docs/snowflake-facts.md §2, §5).
_PIPE_DEPENDENCIES = ("file_format", "stage")
PRIVILEGE_ERRNO = 3001  # "SQL access control error: Insufficient privileges"
VERIFY_ATTEMPTS = 3


class ProvisionState(StrEnum):
    READY = "ready"  # everything exists at the current version and was verified
    PENDING_CUSTOMER_SETUP = "pending_customer_setup"  # the setup script has not been run (yet)
    NEEDS_ADMIN = "needs_admin"  # stopped: an admin must run `admin_sql`, then run provision again
    DEFERRED = "deferred"  # changed objects wait until every file the old pipe loaded is settled
    BUSY = "busy"  # a tick holds the connection's lease; nothing was done
    ERROR = "error"


class Action(StrEnum):
    CREATED = "created"
    RECREATED = "recreated"
    UNCHANGED = "unchanged"
    KEPT = "kept"  # exists, deliberately not replaced (the table holds data)
    DEFERRED = "deferred"
    UPDATED = "updated"
    DROPPED = "dropped"
    ABSENT = "absent"
    FAILED = "failed"


_CHANGES = frozenset({Action.CREATED, Action.RECREATED, Action.UPDATED, Action.DROPPED})


@dataclass(frozen=True)
class ObjectAction:
    object: str
    action: Action
    detail: str = ""


@dataclass(frozen=True)
class ProvisionOutcome:
    connection_id: str
    state: ProvisionState
    template_version: str
    actions: tuple[ObjectAction, ...] = ()
    detail: str = ""
    setup_script: str | None = field(default=None, repr=False)
    admin_sql: str | None = None
    transient: bool = False  # an ERROR that trying again later may clear (something was unreachable)

    @property
    def changed(self) -> bool:
        return any(action.action in _CHANGES for action in self.actions)

    def summary(self) -> str:
        """Human-readable lines for the CLI."""
        head = f"{self.connection_id}: {self.state.value} (template v{self.template_version})"
        lines = [head, *(f"  {a.object}: {a.action.value}{' - ' + a.detail if a.detail else ''}" for a in self.actions)]
        if not self.changed and self.state is ProvisionState.READY:
            lines.append("  nothing changed: everything is at the current template version")
        if self.detail:
            lines.append(f"  {self.detail}")
        return "\n".join(lines)


@dataclass(frozen=True)
class TeardownOutcome:
    connection_id: str
    actions: tuple[ObjectAction, ...]
    detail: str = ""

    def summary(self) -> str:
        lines = [f"{self.connection_id}: teardown"]
        lines += [f"  {a.object}: {a.action.value}{' - ' + a.detail if a.detail else ''}" for a in self.actions]
        return "\n".join(lines + ([f"  {self.detail}"] if self.detail else []))


class _Stop(Exception):
    """Ends a provision run early with this outcome's state and detail."""

    def __init__(self, state: ProvisionState, detail: str, admin_sql: str | None = None) -> None:
        super().__init__(detail)
        self.state = state
        self.detail = detail
        self.admin_sql = admin_sql


# -- provision ----------------------------------------------------------------------------------------


def provision(
    connection_id: str,
    *,
    settings: Settings | None = None,
    store: ConnectionStore | None = None,
    owner: str = "floe-provision",
    mode: LoadMode | None = None,
) -> ProvisionOutcome:
    """Set up (or bring up to date) everything the connection needs; see the module docstring.
    `mode` sets the connection's own load mode (else it keeps its own, or the deployment's default).

    A pipe that must be re-created is left to the loader's next tick: only the tick knows whether the
    old pipe's files are settled (re-creating it forgets its load history).
    """
    settings = settings or config.load()
    with store_for(settings, store) as connections:
        if mode is not None:
            connections.set_load_mode(connection_id, mode)
        connection = connections.get(connection_id)
        target = Target.from_connection(connection, settings, config.aws_account_id(settings))
        lease = connections.acquire_lease(connection_id, owner, timedelta(seconds=settings.lease_seconds))
        if lease is None:
            version = render.template_version(target)
            return ProvisionOutcome(connection_id, ProvisionState.BUSY, version, detail="a run holds the lease")
        try:
            outcome = _provision(
                connection,
                target=target,
                settings=settings,
                store=connections,
                lease=lease,
            )
        finally:
            connections.release_lease(lease)
        _record_status(connections, outcome, was=connection.status)
        if outcome.state is ProvisionState.READY:
            # The names provisioned (as read above): the tick loads only there (docs/architecture.md).
            connections.set_provisioned_target(connection_id, connection.target_names)
        _log.info("provisioned", extra={"connection_id": connection_id, "state": outcome.state.value})
        return outcome


def _provision(
    connection: Connection,
    *,
    target: Target,
    settings: Settings,
    store: ConnectionStore,
    lease: Lease,
) -> ProvisionOutcome:
    actions: list[ObjectAction] = []
    script: str | None = None

    def finish(
        state: ProvisionState, detail: str, admin_sql: str | None = None, *, transient: bool = False
    ) -> ProvisionOutcome:
        version = render.template_version(target)
        return ProvisionOutcome(
            connection.connection_id, state, version, tuple(actions), detail, script, admin_sql, transient
        )

    try:
        key = keys.ensure_key(connection.secret_ref)
        actions.append(ObjectAction("key pair", Action.CREATED if key.created else Action.UNCHANGED))
        script = render.setup_script(target, key.public_key_b64)
        role = iam.ensure_role(target, settings)
        actions.append(ObjectAction("iam role", Action.CREATED if role.created else Action.UNCHANGED, role.role_arn))
        with _service_session(connection, settings) as session:
            _check_customer_setup(session, target)
            actions.extend(_integration_handshake(session, target))
            plan = plan_objects(session, target)
            current = (
                deferred(connection.connection_id, target, plan)
                if plan.recreates_existing_pipe
                else apply_objects(session, target, connection, lease, plan, store=store)
            )
            actions.extend(current.actions)
            if current.state is not ProvisionState.READY:
                return finish(current.state, current.detail)
            _verify(session, target)
    except _Stop as stop:
        return finish(stop.state, stop.detail, stop.admin_sql)
    except (SnowflakeError, SecretError, iam.IamError) as error:
        return finish(ProvisionState.ERROR, str(error), transient=error.transient)
    except BotoCoreError as error:  # botocore's own errors: the endpoint or the network, not a refusal
        return finish(ProvisionState.ERROR, str(error), transient=True)
    except ClientError as error:
        return finish(ProvisionState.ERROR, str(error))
    return finish(ProvisionState.READY, "verified: the stage lists the prefix and the pipe is RUNNING")


@contextmanager
def store_for(settings: Settings, store: ConnectionStore | None) -> Iterator[ConnectionStore]:
    if store is not None:
        yield store
        return
    with open_configured_store(settings) as opened:
        yield opened


def _record_status(store: ConnectionStore, outcome: ProvisionOutcome, *, was: ConnectionStatus) -> None:
    """The connection row's status: ready only once verified; an admin step counts as customer setup.

    A ready connection stays ready whatever a later provision run meets (an unreachable endpoint, a
    refused statement): its objects still load, so only the detail records the failure; taking it out
    of service would stop the loader for a problem that is provision's alone.
    """
    if was is ConnectionStatus.READY and outcome.state is not ProvisionState.READY:
        if outcome.state in (ProvisionState.ERROR, ProvisionState.PENDING_CUSTOMER_SETUP, ProvisionState.NEEDS_ADMIN):
            detail = f"still ready; the last provision ended {outcome.state.value}: {outcome.detail}"
            store.set_status(outcome.connection_id, ConnectionStatus.READY, detail[:500])
        return
    status = {
        ProvisionState.READY: ConnectionStatus.READY,
        ProvisionState.PENDING_CUSTOMER_SETUP: ConnectionStatus.PENDING_CUSTOMER_SETUP,
        ProvisionState.NEEDS_ADMIN: ConnectionStatus.PENDING_CUSTOMER_SETUP,
        ProvisionState.ERROR: ConnectionStatus.ERROR,
    }.get(outcome.state)
    if status is not None:  # DEFERRED and BUSY leave the row as it was
        store.set_status(outcome.connection_id, status, outcome.detail[:500] or None)


@contextmanager
def _service_session(connection: Connection, settings: Settings) -> Iterator[SnowflakeConnection]:
    """A session as the service user with its key; a refused login means the setup script has not run."""
    credentials = read_credentials(connection.secret_ref)
    try:
        session = open_session(
            connection, credentials, settings, query_tag=f"floe provision {connection.connection_id}"
        )
    except SnowflakeError as error:
        if error.transient:
            raise
        raise _Stop(
            ProvisionState.PENDING_CUSTOMER_SETUP,
            f"cannot log in as {connection.user} yet (has the setup script been run?): {error}",
        ) from None
    try:
        yield session
    finally:
        session.close()


def _check_customer_setup(session: SnowflakeConnection, target: Target) -> None:
    """The login resolved the connection's role, warehouse, database and schema.

    Snowflake answers a login with the session's role, warehouse, database and schema, leaving out any the
    user may not use; the connector keeps them, so this needs no query (and no warehouse).
    """
    resolved = {
        "role": (session.role, target.role),
        "warehouse": (session.warehouse, target.warehouse),
        "database": (session.database, target.database),
        "schema": (session.schema, target.schema),
    }
    missing = [f"{what} {wanted}" for what, (got, wanted) in resolved.items() if got != wanted]
    if missing:
        raise _Stop(
            ProvisionState.PENDING_CUSTOMER_SETUP,
            "the service user logs in but cannot use " + ", ".join(missing) + "; run the setup script",
        )


def _shown(session: SnowflakeConnection, target: Target, kind: str, name: str) -> dict[str, Any] | None:
    return shown(partial(query, session), target, kind, name)


# -- storage integration handshake --------------------------------------------------------------------


def _integration_handshake(session: SnowflakeConnection, target: Target) -> list[ObjectAction]:
    """Create the integration if the role may (else stop with the admin's SQL), check it allows only
    the organisation's prefix, then trust its IAM user and external ID in the role (docs/snowflake-facts.md §4)."""
    actions = [_ensure_integration(session, target)]
    properties = {
        str(row.get("PROPERTY")): str(row.get("PROPERTY_VALUE") or "")
        for row in query(session, render.render("describe_integration", target))
    }
    _check_integration(target, properties)
    trust = iam.trust_snowflake(target, properties["STORAGE_AWS_IAM_USER_ARN"], properties["STORAGE_AWS_EXTERNAL_ID"])
    actions.append(ObjectAction("iam trust", Action.UPDATED if trust.trust_changed else Action.UNCHANGED))
    return actions


def _ensure_integration(session: SnowflakeConnection, target: Target) -> ObjectAction:
    if _shown(session, target, "integration", target.integration) is not None:
        return ObjectAction("integration", Action.UNCHANGED, target.integration)
    try:
        query(session, render.render("integration", target))
    except SnowflakeError as error:
        if error.errno != PRIVILEGE_ERRNO:
            raise
        raise _Stop(
            ProvisionState.NEEDS_ADMIN,
            f"role {target.role} may not create storage integration {target.integration}: "
            "an ACCOUNTADMIN must run admin_sql, then run provision again",
            admin_sql(target),
        ) from None
    return ObjectAction("integration", Action.CREATED, target.integration)


def admin_sql(target: Target) -> str:
    """What an ACCOUNTADMIN runs when the connection's role cannot create the integration."""
    statements = ["USE ROLE ACCOUNTADMIN", render.render("integration", target)]
    statements.append(render.render("grant_integration", target))
    return ";\n".join(statements) + ";\n"


def _check_integration(target: Target, properties: dict[str, str]) -> None:
    """The integration must use this organisation's role and allow its prefix and nothing else."""
    allowed = sorted(part.strip() for part in properties.get("STORAGE_ALLOWED_LOCATIONS", "").split(","))
    problems = []
    if allowed != [target.stage_url]:
        problems.append(f"allows {allowed}, not only {target.stage_url}")
    if properties.get("STORAGE_AWS_ROLE_ARN") != target.iam_role_arn:
        problems.append(f"uses role {properties.get('STORAGE_AWS_ROLE_ARN')}, not {target.iam_role_arn}")
    for needed in ("STORAGE_AWS_IAM_USER_ARN", "STORAGE_AWS_EXTERNAL_ID"):
        if not properties.get(needed):
            problems.append(f"DESC INTEGRATION shows no {needed}")
    if problems:
        raise _Stop(ProvisionState.ERROR, f"integration {target.integration} " + "; ".join(problems))


# -- objects at the template version ------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectPlan:
    """What each object needs to reach the current template version, read from their COMMENTs."""

    actions: dict[str, Action]

    @property
    def recreates_existing_pipe(self) -> bool:
        """Re-creating an existing pipe forgets its load history (docs/snowflake-facts.md §5): the caller
        decides whether that is safe now."""
        return self.actions["pipe"] is Action.RECREATED


def plan_objects(session: SnowflakeConnection, target: Target) -> ObjectPlan:
    """What the file format, table, stage and pipe need (SHOW only: no warehouse, nothing changed)."""
    return ObjectPlan(_plan_objects(session, target))


def deferred(connection_id: str, target: Target, plan: ObjectPlan) -> ProvisionOutcome:
    """The outcome when the pipe's re-creation must wait until its files are settled."""
    actions = tuple(_deferred(kind, action) for kind, action in plan.actions.items())
    detail = "the pipe must be re-created; waiting until every file it loaded is settled"
    return ProvisionOutcome(connection_id, ProvisionState.DEFERRED, render.template_version(target), actions, detail)


def apply_objects(
    session: SnowflakeConnection,
    target: Target,
    connection: Connection,
    lease: Lease,
    plan: ObjectPlan,
    *,
    store: ConnectionStore | None = None,
) -> ProvisionOutcome:
    """Create or re-create what `plan` says; the table is created if missing and never replaced. With
    `store`, the version is then recorded on the row under `lease`."""
    version = render.template_version(target)
    done: list[ObjectAction] = []
    for kind, action in plan.actions.items():
        try:
            done.append(_apply(session, target, kind, action))
        except SnowflakeError as error:
            done.append(ObjectAction(kind, Action.FAILED, str(error)))
            detail = f"{kind}: {error}"
            return ProvisionOutcome(connection.connection_id, ProvisionState.ERROR, version, tuple(done), detail)
    if store is not None:
        store.set_template_version(connection.connection_id, version, lease)
    return ProvisionOutcome(connection.connection_id, ProvisionState.READY, version, tuple(done))


def _plan_objects(session: SnowflakeConnection, target: Target) -> dict[str, Action]:
    """What each object needs, from the versions in their COMMENTs (read with SHOW)."""
    plan: dict[str, Action] = {}
    for kind in OBJECT_KINDS:
        row = _shown(session, target, kind, _object_name(target, kind))
        if row is None:
            plan[kind] = Action.CREATED
        elif kind == "table":
            plan[kind] = Action.KEPT
        elif render.version_in_comment(row.get("COMMENT")) != render.object_version(kind, target):
            plan[kind] = Action.RECREATED
        else:
            plan[kind] = Action.UNCHANGED
    dependency_changed = any(plan[kind] is not Action.UNCHANGED for kind in _PIPE_DEPENDENCIES)
    if plan["pipe"] is Action.UNCHANGED and dependency_changed:
        plan["pipe"] = Action.RECREATED  # a pipe does not follow a replaced stage or file format
    return plan


def _object_name(target: Target, kind: str) -> str:
    return {"file_format": target.file_format, "table": target.table, "stage": target.stage, "pipe": target.pipe}[kind]


def _deferred(kind: str, action: Action) -> ObjectAction:
    if action in (Action.CREATED, Action.RECREATED):
        return ObjectAction(kind, Action.DEFERRED, f"would be {action.value}")
    return ObjectAction(kind, action)


def _apply(session: SnowflakeConnection, target: Target, kind: str, action: Action) -> ObjectAction:
    if action in (Action.CREATED, Action.RECREATED):
        query(session, render.render(kind, target))
        _log.info("object %s", action.value, extra={"object": kind, "org_id": target.org_id})
    detail = "holds the customer's data; never replaced" if action is Action.KEPT else ""
    return ObjectAction(kind, action, detail)


def _verify(session: SnowflakeConnection, target: Target) -> None:
    """The stage lists the prefix (integration and IAM role both work) and the pipe is RUNNING."""
    for attempt in range(1, VERIFY_ATTEMPTS + 1):
        try:
            query(session, render.render("list_stage", target))
            break
        except SnowflakeError as error:
            if attempt == VERIFY_ATTEMPTS:  # IAM changes take a few seconds to apply in AWS
                raise _Stop(ProvisionState.ERROR, f"the stage cannot list {target.stage_url}: {error}") from None
            time.sleep(2.0 * attempt)
    status = pipe_status(partial(query, session), target)
    if not status.running:
        raise _Stop(ProvisionState.ERROR, f"pipe {target.pipe} is {status.execution_state}, not RUNNING")


# -- teardown -----------------------------------------------------------------------------------------


def teardown(
    connection_id: str,
    *,
    drop_table: bool = False,
    settings: Settings | None = None,
    store: ConnectionStore | None = None,
    owner: str = "floe-teardown",
) -> TeardownOutcome:
    """Drop the pipe and stage (and the table if asked) and delete the organisation's IAM role.

    The storage integration is account-level and normally the admin's: it is left, and the outcome
    names the statement that removes it. Without the IAM role it can read nothing.
    """
    settings = settings or config.load()
    with store_for(settings, store) as connections:
        connection = connections.get(connection_id)
        target = Target.from_connection(connection, settings, config.aws_account_id(settings))
        lease = connections.acquire_lease(connection_id, owner, timedelta(seconds=settings.lease_seconds))
        if lease is None:
            return TeardownOutcome(connection_id, (), "a run holds the lease; nothing was done")
        try:
            actions = _drop_objects(connection, target, settings, drop_table)
            removed = iam.delete_role(target.org_id)
            actions.append(ObjectAction("iam role", Action.DROPPED if removed else Action.ABSENT))
            _out_of_service(connections, connection_id)
        finally:
            connections.release_lease(lease)
    detail = f"left the storage integration; an admin may run: DROP INTEGRATION IF EXISTS {target.integration};"
    _log.info("torn down", extra={"connection_id": connection_id, "drop_table": drop_table})
    return TeardownOutcome(connection_id, tuple(actions), detail)


def _out_of_service(store: ConnectionStore, connection_id: str) -> None:
    """A torn-down connection has no pipe or role left: inactive, so no tick tries it, and no longer
    ready, so `floe provision` (then `floe connection resume`) is what brings it back."""
    store.set_active(connection_id, False)
    store.set_status(
        connection_id, ConnectionStatus.PENDING_CUSTOMER_SETUP, "torn down: run `floe provision` to set it up again"
    )


def _drop_objects(connection: Connection, target: Target, settings: Settings, drop_table: bool) -> list[ObjectAction]:
    try:
        with _service_session(connection, settings) as session:
            return [_drop(session, target, kind, sql) for kind, sql in render.teardown_statements(target, drop_table)]
    except (_Stop, SnowflakeError, SecretError) as error:
        return [ObjectAction("snowflake objects", Action.FAILED, str(error))]


def _drop(session: SnowflakeConnection, target: Target, kind: str, sql: str) -> ObjectAction:
    if _shown(session, target, kind, _object_name(target, kind)) is None:
        return ObjectAction(kind, Action.ABSENT)
    query(session, sql)
    return ObjectAction(kind, Action.DROPPED)

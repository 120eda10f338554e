"""`floe db migrate` and `floe connection add|list|show|pause|resume|remove`: the connection rows.

A row is validated by `kernel.connections.Connection` itself, whichever way it arrives (flags or a
YAML/JSON file), so the CLI cannot store a row the loader would refuse.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from floe.boundary import UsageError
from floe.cli import Commands

if TYPE_CHECKING:
    from kernel.connections import Connection


# Flag defaults for `connection add`: the names the setup script creates unless the customer wants others.
DEFAULTS = {
    "user": "FLOE_LOADER",
    "role": "FLOE_LOADER",
    "warehouse": "COMPUTE_WH",
    "database": "ANALYTICS",
    "schema": "FLAGSMITH",
    "table": "FLAG_EVALUATIONS",
}
# What a description or the flags may set; state (status, template version) is provision's.
SETTABLE = ("connection_id", "org_id", "account", *DEFAULTS, "file_format", "secret_ref")


def add_db(commands: Commands) -> None:
    db = commands.add_parser("db", help="the connection database")
    actions = db.add_subparsers(required=True, metavar="ACTION")
    migrate = actions.add_parser("migrate", help="create or bring up to date its tables (idempotent)")
    migrate.set_defaults(command=_migrate)


def add_connection(commands: Commands) -> None:
    connection = commands.add_parser("connection", help="add, list, show, pause, resume or remove connections")
    actions = connection.add_subparsers(required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a connection row (from flags or --from FILE)")
    add.add_argument("--from", dest="description", type=Path, help="a YAML or JSON mapping of the fields")
    add.add_argument("--connection-id", help="default: conn-<org>")
    add.add_argument("--org", dest="org_id", help="the organisation id (its S3 prefix)")
    add.add_argument("--account", help="the customer's Snowflake account identifier")
    for name, default in DEFAULTS.items():
        add.add_argument(f"--{name}", help=f"default: {default}")
    add.add_argument("--file-format", help="default: FLOE_EVENTS_JSON")
    add.add_argument("--secret-ref", help="Secrets Manager name of its key; default: FLOE_SECRET_PREFIX<org>")
    add.set_defaults(command=_add)
    listing = actions.add_parser("list", help="every connection: state and whether it is active")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(command=_list)
    for name, handler, text in (
        ("show", _show, "one connection's row"),
        ("pause", _pause, "stop loading it (the tick skips it; files wait in S3)"),
        ("resume", _resume, "load it again from the next tick"),
        ("remove", _remove, "delete a paused or torn-down connection's row"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--connection-id", required=True)
        if name == "show":
            action.add_argument("--json", action="store_true")
        action.set_defaults(command=handler)


def _migrate(_: argparse.Namespace) -> int:
    from kernel import config
    from kernel.dsn import open_configured_store

    settings = config.load()
    with open_configured_store(settings) as store:  # the one command that may create the database
        before = store.applied_version()
        store.migrate()
        after = store.schema_version()
    print(f"connection database at schema version {after}" + (" (unchanged)" if before == after else ""))
    return 0


def _add(args: argparse.Namespace) -> int:
    from floe.cli import connection_store, read_description
    from kernel.connections import Connection

    given = read_description(args.description) if args.description else {}
    unknown = sorted(set(given) - set(SETTABLE))
    if unknown:
        raise UsageError(f"{args.description} names fields a connection does not have: {', '.join(unknown)}")
    flags = {name: getattr(args, name) for name in SETTABLE if getattr(args, name) is not None}
    values = {**DEFAULTS, **given, **flags}
    for needed in ("org_id", "account"):
        if not values.get(needed):
            raise UsageError(f"a connection needs {'--org' if needed == 'org_id' else '--account'} (or it in --from)")
    with connection_store() as (settings, store):
        values.setdefault("connection_id", f"conn-{values['org_id']}")
        values.setdefault("secret_ref", f"{settings.secret_prefix}{values['org_id']}")
        connection = Connection(**values)
        store.add(connection)
    print(f"added {connection.connection_id} (org {connection.org_id}, account {connection.account})")
    print(f"next: floe provision --connection-id {connection.connection_id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from floe.cli import connection_store

    with connection_store() as (_, store):
        connections = store.list()
    if args.json:
        print(json.dumps([_document(c) for c in connections], indent=2))
        return 0
    if not connections:
        print("no connections yet: add one with `floe connection add`")
    for c in connections:
        state = c.status.value if c.active else f"{c.status.value}, paused"
        print(f"{c.connection_id:<24}{c.org_id:<20}{c.account:<24}{state}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from floe.cli import connection_store

    with connection_store() as (_, store):
        document = _document(store.get(args.connection_id))
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(f"{name:<18}{value}" for name, value in document.items()))
    return 0


def _pause(args: argparse.Namespace) -> int:
    return _set_active(args.connection_id, active=False)


def _resume(args: argparse.Namespace) -> int:
    return _set_active(args.connection_id, active=True)


def _set_active(connection_id: str, *, active: bool) -> int:
    from floe.cli import connection_store

    with connection_store() as (_, store):
        store.set_active(connection_id, active)
    if active:
        print(f"resumed {connection_id}: the next tick loads what waited in S3")
    else:
        print(f"paused {connection_id}: ticks skip it; files wait in S3 (`floe connection resume` to load again)")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from floe.cli import connection_store

    with connection_store() as (_, store):
        connection = store.get(args.connection_id)
        if connection.active:
            raise UsageError(
                f"{args.connection_id} is active: `floe teardown` it (or `floe connection pause` it) first"
            )
        store.remove(args.connection_id)
    print(f"removed {args.connection_id}'s row; its secret and S3 prefixes are left as they were")
    return 0


def _document(connection: Connection) -> dict[str, Any]:
    return {**asdict(connection), "status": connection.status.value}

"""`floe`: the command line. Each subcommand is a thin wrapper over a function that tests call directly."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from floe import lambda_package

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    try:
        return command(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        from kernel.config import ConfigError

        if isinstance(error, ConfigError):
            print(f"floe: configuration error: {error}", file=sys.stderr)
            return 2
        raise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="floe", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the whole product on the embedded local stack")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(command=_demo)

    devstack = commands.add_parser("devstack", help="the local stack (moto, Snowflake stand-in, core)")
    devstack.add_argument("action", choices=["up"])
    devstack.add_argument("--postgres", action="store_true", help="also start a throwaway PostgreSQL")
    devstack.set_defaults(command=_devstack_up)

    render = commands.add_parser("render", help="print the exact SQL provision would run; runs nothing")
    source = render.add_mutually_exclusive_group(required=True)
    source.add_argument("--connection-id", help="a connection row")
    source.add_argument("--from", dest="description", type=Path, help="a YAML or JSON connection description")
    render.add_argument("--statement", help="only this statement kind (default: every provision statement)")
    render.set_defaults(command=_render)

    provision = commands.add_parser("provision", help="set up or bring up to date a connection's objects")
    provision.add_argument("--connection-id", required=True)
    provision.add_argument(
        "--mode", choices=("refresh", "rest"), help="the connection's load mode (default: keep it, else FLOE_LOAD_MODE)"
    )
    provision.set_defaults(command=_provision)

    teardown = commands.add_parser("teardown", help="drop pipe and stage (and table) and the IAM role")
    teardown.add_argument("--connection-id", required=True)
    teardown.add_argument("--drop-table", action="store_true", help="also drop the table and its data")
    teardown.set_defaults(command=_teardown)

    status = commands.add_parser("status", help="a connection's row: state, template version, lease")
    status.add_argument("--connection-id", required=True)
    status.set_defaults(command=_status)

    package = commands.add_parser("package", help="build the Lambda zip, reproducibly")
    lambda_package.add_arguments(package)
    package.set_defaults(command=lambda_package.command)

    load = commands.add_parser("load", help="run one tick for one connection, as the Lambda does")
    load.add_argument("--connection-id", required=True)
    load.add_argument("--budget-seconds", type=float, default=120.0, help="time budget of the tick")
    load.add_argument("--json", action="store_true", help="print the run report as JSON")
    load.set_defaults(command=_load)

    dead = commands.add_parser("dead-letters", help="list a connection's dead-lettered files and why")
    dead.add_argument("--connection-id", required=True)
    dead.add_argument("--json", action="store_true")
    dead.set_defaults(command=_dead_letters)

    replay = commands.add_parser("replay", help="move dead-lettered files back under the live prefix, renamed")
    replay.add_argument("--connection-id", required=True)
    replay.add_argument("--batch", metavar="RUN_ID", help="only the files one run dead-lettered")
    replay.set_defaults(command=_replay)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from floe.demo import format_summary, run_demo

    summary = run_demo(progress=None if args.json else _progress)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


def _devstack_up(args: argparse.Namespace) -> int:
    from devstack.stack import LocalStack

    with LocalStack(postgres=args.postgres) as stack:
        print("Local stack is up. In another shell:\n")
        for key, value in stack.environment().items():
            print(f"  export {key}={value}")
        print(f"\nSnowflake stand-in control API: {stack.snowflake.url}/devstack/")
        print(f"Core API receiver:              {stack.core.url}")
        print("\nCtrl-C stops everything.")
        sys.stdout.flush()
        while True:
            time.sleep(3600)


def _render(args: argparse.Namespace) -> int:
    from kernel import config, render
    from kernel.connections import open_store

    if args.description is not None:
        target = render.Target.from_description(_read_description(args.description))
    else:
        settings = config.load()
        with open_store(settings.connections_dsn) as store:
            connection = store.get(args.connection_id)
        target = render.Target.from_connection(connection, settings, config.aws_account_id(settings))
    kinds = [args.statement] if args.statement else list(render.PROVISION_KINDS)
    for kind in kinds:
        if kind not in render.PROVISION_KINDS:
            raise SystemExit(f"floe render: --statement must be one of {', '.join(render.PROVISION_KINDS)}")
        print(f"-- {kind}\n{render.render(kind, target)};\n")
    return 0


def _read_description(path: Path) -> dict[str, Any]:
    import yaml

    document = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    if not isinstance(document, dict):
        raise SystemExit(f"floe render: {path} must hold a mapping of connection fields")
    return document


def _provision(args: argparse.Namespace) -> int:
    from kernel.config import LoadMode
    from provisioner.provision import ProvisionState, provision

    outcome = provision(args.connection_id, mode=LoadMode(args.mode) if args.mode else None)
    print(outcome.summary())
    if outcome.setup_script and outcome.state is ProvisionState.PENDING_CUSTOMER_SETUP:
        print("\nSend this setup script to the customer's Snowflake admin, then run provision again:\n")
        print(outcome.setup_script)
    if outcome.admin_sql:
        print(f"\nAn ACCOUNTADMIN must run:\n\n{outcome.admin_sql}")
    return 0 if outcome.state in (ProvisionState.READY, ProvisionState.DEFERRED) else 1


def _teardown(args: argparse.Namespace) -> int:
    from provisioner.provision import teardown

    print(teardown(args.connection_id, drop_table=args.drop_table).summary())
    return 0


def _status(args: argparse.Namespace) -> int:
    from kernel import config
    from kernel.connections import open_store

    settings = config.load()
    with open_store(settings.connections_dsn) as store:
        connection = store.get(args.connection_id)
    for name, value in vars(connection).items():
        print(f"{name:<18}{value}")
    return 0


def _load(args: argparse.Namespace) -> int:
    from kernel import logs
    from loader.handler import run
    from loader.tick import Deadline

    logs.configure()
    report = run({"connection_id": args.connection_id}, Deadline.after(args.budget_seconds))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 1 if report["status"] == "error" else 0


def _dead_letters(args: argparse.Namespace) -> int:
    from provisioner.dead_letters import list_dead_letters

    entries = list_dead_letters(args.connection_id)
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    if not entries:
        print(f"no dead-lettered files for connection {args.connection_id}")
    for entry in entries:
        print(f"{entry['dead_letter_key']}\n    {entry['status']}: {entry['reason']}  (run {entry['run_id']})")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from provisioner.dead_letters import replay

    moved = replay(args.connection_id, run_id=args.batch)
    for item in moved:
        print(f"{item.dead_letter_key}\n    -> {item.live_key}")
    print(f"replayed {len(moved)} files; the next tick loads them")
    return 0


def format_report(report: dict[str, Any]) -> str:
    lines = [f"connection {report['connection_id']}: {report['status']}"]
    if report.get("reason"):
        lines.append(f"  {report['reason']}")
    if report.get("error"):
        lines.append(f"  error: {report['error']}")
    counts = [
        ("files listed", "files_listed"),
        ("files sent to Snowpipe", "files_sent"),
        ("files loaded", "files_loaded"),
        ("events delivered", "events_delivered"),
        ("files dead-lettered", "files_dead_lettered"),
        ("files still in flight", "files_in_flight"),
    ]
    lines += [f"  {label:<24}{report[key]}" for label, key in counts if report.get(key)]
    lines += [f"  warning: {warning}" for warning in report.get("warnings", [])]
    return "\n".join(lines)


def _progress(message: str) -> None:
    if os.environ.get("FLOE_QUIET") != "1":
        print(f"… {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

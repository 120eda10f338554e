"""`floe`: the command line. Each subcommand is a thin wrapper over a function that tests call directly.

Exit codes (docs/operations.md): 0 done, 1 a bug, 2 usage or configuration, 3 unknown connection,
4 refused by Snowflake, AWS or a check, 5 transient (unreachable or busy), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from floe import lambda_package
from floe.boundary import Exit, Refused, UsageError, failure, line

if TYPE_CHECKING:
    from kernel.config import Settings
    from kernel.connections import ConnectionStore

Command = Callable[[argparse.Namespace], int]
INTERRUPTED_DEFAULT = "nothing after the last step shown was done; run the command again"


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors, as the one-line failure every other error gets."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
        _configure_logs(verbose=args.verbose)
        command: Command = args.command
        return command(args)
    except KeyboardInterrupt:
        print(f"\nfloe: interrupted; {_interrupted(argv)}", file=sys.stderr)
        return Exit.INTERRUPTED
    except Exception as error:
        if debug:
            raise
        code, text = failure(error)
        print(text, file=sys.stderr)
        return code


def _interrupted(argv: Sequence[str] | None) -> str:
    """What is true after Ctrl-C, for the command that was running."""
    try:
        args = _parser().parse_args(argv)
        explain: Callable[[], str] = args.interrupted
        return explain()
    except Exception:  # the explanation must never turn Ctrl-C into a traceback
        return INTERRUPTED_DEFAULT


def _configure_logs(*, verbose: bool) -> None:
    """JSON log lines are for machines: on stderr only with --verbose or when stderr is not a terminal.
    In a terminal, the same records become short progress lines (the steps provision and teardown take)."""
    from kernel import logs

    if verbose or not sys.stderr.isatty():
        logs.configure()
        return
    root = logging.getLogger("floe")
    root.setLevel(logging.INFO)
    if not any(isinstance(handler, _Progress) for handler in root.handlers):  # main() may run twice in a process
        root.addHandler(_Progress())
    root.propagate = False


class _Progress(logging.Handler):
    """A log record as one `… message (field=value)` line; structured fields (the run report) are left
    to --verbose, and log fields never hold a secret (kernel.logs)."""

    SKIPPED = frozenset({"run report"})  # the command prints the report itself

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message in self.SKIPPED:
            return
        fields = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and isinstance(value, str | int | float) and not isinstance(value, bool)
        ]
        say(f"{message} ({', '.join(fields)})" if fields else message)


_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def say(message: str) -> None:
    """Progress, on stderr: stdout stays the command's result."""
    print(f"… {message}", file=sys.stderr, flush=True)


# -- the parser ---------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="floe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected failure")
    parser.add_argument("--verbose", action="store_true", help="also write JSON log lines to stderr")
    parser.set_defaults(interrupted=lambda: INTERRUPTED_DEFAULT)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for add in (_add_demo, _add_devstack, _add_db, _add_connection, _add_render, _add_provision):
        add(commands)
    for add in (_add_teardown, _add_status, _add_package, _add_load, _add_dead_letters, _add_replay, _add_doctor):
        add(commands)
    return parser


Commands = Any  # argparse's private _SubParsersAction


def _add_demo(commands: Commands) -> None:
    demo = commands.add_parser("demo", help="run the whole product on the embedded local stack")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(command=_demo)


def _add_doctor(commands: Commands) -> None:
    from floe.doctor import add_doctor

    add_doctor(commands)


def _add_devstack(commands: Commands) -> None:
    from floe.devstack_cli import add_devstack

    add_devstack(commands)


def _add_db(commands: Commands) -> None:
    from floe.connection_cli import add_db

    add_db(commands)


def _add_connection(commands: Commands) -> None:
    from floe.connection_cli import add_connection

    add_connection(commands)


def _add_render(commands: Commands) -> None:
    render = commands.add_parser("render", help="print the exact SQL provision would run; runs nothing")
    source = render.add_mutually_exclusive_group(required=True)
    source.add_argument("--connection-id", help="a connection row")
    source.add_argument("--from", dest="description", type=Path, help="a YAML or JSON connection description")
    render.add_argument("--statement", help="only this statement kind (default: every provision statement)")
    render.set_defaults(command=_render)


def _add_provision(commands: Commands) -> None:
    provision = commands.add_parser("provision", help="set up or bring up to date a connection's objects")
    provision.add_argument("--connection-id", required=True)
    provision.add_argument("--rotate-key", action="store_true", help="a new key pair, in two runs, with no gap")
    provision.add_argument(
        "--mode", choices=("refresh", "rest"), help="the connection's load mode (default: keep it, else FLOE_LOAD_MODE)"
    )
    provision.set_defaults(command=_provision, interrupted=_lease_released("provision is idempotent: run it again"))


def _add_teardown(commands: Commands) -> None:
    teardown = commands.add_parser("teardown", help="drop pipe and stage (and table) and the IAM role")
    teardown.add_argument("--connection-id", required=True)
    teardown.add_argument("--drop-table", action="store_true", help="also drop the table and its data")
    teardown.set_defaults(command=_teardown, interrupted=_lease_released("run teardown again to finish"))


def _add_status(commands: Commands) -> None:
    status = commands.add_parser("status", help="delivery status of one connection, or of all (a table)")
    status.add_argument("--connection-id", help="one connection (default: every connection)")
    status.add_argument("--json", action="store_true", help="the document a core endpoint would serve")
    status.set_defaults(command=_status)


def _add_package(commands: Commands) -> None:
    package = commands.add_parser("package", help="build the Lambda zip, reproducibly")
    lambda_package.add_arguments(package)
    package.set_defaults(command=_package, interrupted=lambda: "no zip was written; run the command again")


def _add_load(commands: Commands) -> None:
    load = commands.add_parser("load", help="run one tick for one connection, as the Lambda does")
    load.add_argument("--connection-id", required=True)
    load.add_argument("--budget-seconds", type=_positive_seconds, default=120.0, help="time budget of the tick")
    load.add_argument("--json", action="store_true", help="print the run report as JSON")
    load.set_defaults(
        command=_load,
        interrupted=_lease_released("files stay in the live prefix; the next tick reconciles them"),
    )


def _add_dead_letters(commands: Commands) -> None:
    dead = commands.add_parser("dead-letters", help="list a connection's dead-lettered files and why")
    dead.add_argument("--connection-id", required=True)
    dead.add_argument("--json", action="store_true")
    dead.set_defaults(command=_dead_letters)


def _add_replay(commands: Commands) -> None:
    replay = commands.add_parser("replay", help="move dead-lettered files back under the live prefix, renamed")
    replay.add_argument("--connection-id", required=True)
    replay.add_argument("--batch", metavar="RUN_ID", type=_run_id, help="only the files one run dead-lettered")
    replay.set_defaults(
        command=_replay,
        interrupted=lambda: (
            "files already moved are live; run replay again: it writes the same names, so nothing loads twice"
        ),
    )


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def _run_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError("a run id is a UUID, as `floe dead-letters` shows it (run …)") from None


def _lease_released(then: str) -> Callable[[], str]:
    def explain() -> str:
        from kernel import config

        seconds = config.load().lease_seconds
        return (
            f"the connection's lease was released (if not, it expires by itself after "
            f"FLOE_LEASE_SECONDS = {seconds:.0f} s); {then}"
        )

    return explain


# -- the store, for every command that reads a connection ---------------------------------------------


@contextmanager
def connection_store() -> Iterator[tuple[Settings, ConnectionStore]]:
    """Settings and the connection store, which must exist and be migrated: only `floe db migrate`
    creates it, so a mistyped DSN never leaves a new empty database behind."""
    from kernel import config
    from kernel.dsn import open_configured_store

    settings = config.load()
    with open_configured_store(settings, create=False) as store:
        yield settings, store


# -- commands -----------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from floe.demo import format_summary, run_demo
    from kernel import logs

    logs.configure_for_cli()
    summary = run_demo(progress=None if args.json else say)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


def _render(args: argparse.Namespace) -> int:
    from kernel import config, render

    if args.statement and args.statement not in render.PROVISION_KINDS:
        raise UsageError(f"--statement must be one of {', '.join(render.PROVISION_KINDS)}")
    if args.description is not None:
        target = render.Target.from_description(read_description(args.description))
    else:
        with connection_store() as (settings, store):
            connection = store.get(args.connection_id)
        target = render.Target.from_connection(connection, settings, config.aws_account_id(settings))
    for kind in [args.statement] if args.statement else render.PROVISION_KINDS:
        print(f"-- {kind}\n{render.render(kind, target)};\n")
    return 0


def read_description(path: Path) -> dict[str, Any]:
    """A YAML or JSON mapping of connection fields (YAML is a superset of JSON)."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError:
        raise UsageError(f"{path} is neither YAML nor JSON") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path} must hold a mapping of connection fields")
    return document


def _provision(args: argparse.Namespace) -> int:
    from kernel.config import LoadMode
    from provisioner.provision import ProvisionState, provision

    if args.rotate_key:
        return _rotate_key(args.connection_id)
    with connection_store() as (settings, store):
        store.get(args.connection_id)
        say(f"provisioning {args.connection_id}: key pair, IAM role, service login, integration, objects")
        mode = LoadMode(args.mode) if args.mode else None
        outcome = provision(args.connection_id, settings=settings, store=store, mode=mode)
    print(outcome.summary())
    if outcome.state is ProvisionState.PENDING_CUSTOMER_SETUP:
        print("\nwaiting for the customer's admin: they run the setup script below in their Snowflake account,")
        print("then run `floe provision` again.\n")
        print(outcome.setup_script or "")
    if outcome.admin_sql:
        print(f"\nwaiting for an ACCOUNTADMIN to run:\n\n{outcome.admin_sql}\nthen run `floe provision` again.")
    if outcome.state is ProvisionState.BUSY:
        raise Refused(f"provision of {args.connection_id} did nothing: a run holds the lease", transient=True)
    if outcome.state is ProvisionState.ERROR:
        raise Refused(f"provision of {args.connection_id} failed: {outcome.detail}", transient=outcome.transient)
    return 0


def _rotate_key(connection_id: str) -> int:
    from provisioner.rotation import RotationState, rotate_key

    with connection_store() as (settings, store):
        store.get(connection_id)
        say(f"rotating {connection_id}'s key: Snowflake's second key slot keeps every login working")
        outcome = rotate_key(connection_id, settings=settings, store=store)
    print(outcome.summary())
    if outcome.state is RotationState.BUSY:
        raise Refused(f"key rotation of {connection_id} did nothing: a run holds the lease", transient=True)
    if outcome.state is RotationState.WAITING:
        print(f"\nwaiting for the customer's admin: they run\n\n{outcome.customer_sql}\n")
        print(f"then run `floe provision --connection-id {connection_id} --rotate-key` again.")
    elif outcome.customer_sql:
        print(f"\nthe customer's admin may now remove the old key:\n\n{outcome.customer_sql}")
    return 0


def _teardown(args: argparse.Namespace) -> int:
    from provisioner.provision import teardown

    with connection_store() as (settings, store):
        store.get(args.connection_id)
        say(f"tearing down {args.connection_id}: pipe, stage{', table' if args.drop_table else ''}, IAM role")
        print(teardown(args.connection_id, drop_table=args.drop_table, settings=settings, store=store).summary())
    return 0


def _status(args: argparse.Namespace) -> int:
    from floe.status_cli import show_status

    return show_status(args)


def _package(args: argparse.Namespace) -> int:
    say(f"building {args.output} for {args.architecture}: resolving and fetching wheels (about 20 s)")
    return lambda_package.command(args)


def _load(args: argparse.Namespace) -> int:
    from kernel import logs
    from loader.handler import run
    from loader.tick import Deadline

    logs.configure_for_cli()
    # A bad setting (exit 2) or an unknown id is the command's failure here, not a failed run's report.
    with connection_store() as (settings, store):
        mode = store.get(args.connection_id).mode(settings.load_mode)
    say(f"one tick for {args.connection_id} ({mode} mode): list, submit, follow (budget {args.budget_seconds:g} s)")
    report = run({"connection_id": args.connection_id}, Deadline.after(args.budget_seconds))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if report["status"] == "error":
        print(line(f"the tick failed: {report['error']}", "see docs/operations.md (Alarms)"), file=sys.stderr)
        return Exit.REFUSED
    return 0


def _dead_letters(args: argparse.Namespace) -> int:
    from provisioner.dead_letters import list_dead_letters

    with connection_store() as (settings, store):
        entries = list_dead_letters(args.connection_id, settings, store)
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    if not entries:
        print(f"no dead-lettered files for connection {args.connection_id}")
    for entry in entries:
        print(f"{entry['dead_letter_key']}\n    {entry['status']}: {entry['reason']}  (run {entry['run_id']})")
    if entries:
        print(f"\nafter fixing the cause: floe replay --connection-id {args.connection_id} [--batch RUN_ID]")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from provisioner.dead_letters import replay

    with connection_store() as (settings, store):
        store.get(args.connection_id)
        say(f"replaying {'run ' + args.batch if args.batch else 'every dead letter'} of {args.connection_id}")
        moved = replay(args.connection_id, run_id=args.batch, settings=settings, store=store)
    for item in moved:
        print(f"{item.dead_letter_key}\n    -> {item.live_key}")
    if args.batch and not moved:
        raise UsageError(f"run {args.batch} has no dead letters for {args.connection_id} (see `floe dead-letters`)")
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
    if report.get("files_dead_lettered"):
        lines.append(f"  see why: floe dead-letters --connection-id {report['connection_id']}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

"""`floe devstack …`: the local stack, driven by hand (docs/walkthrough.md walks through it).

`up` runs the stack in the foreground until Ctrl-C; `up --detach` starts that same foreground process
in the background, waits until it is ready and returns, and `down` stops it. Either way the running
stack writes a state file (default `.floe/devstack.json`: its pid and environment), which `env` prints
as `export` lines, so a script (or a test) can drive the stack with `eval "$(floe devstack env)"`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from floe.boundary import UsageError
from floe.cli import Commands

STATE_FILE = Path(".floe/devstack.json")
START_TIMEOUT_SECONDS = 60.0


def add_devstack(commands: Commands) -> None:
    devstack = commands.add_parser("devstack", help="the local stack (moto, Snowflake stand-in, core)")
    actions = devstack.add_subparsers(required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the local stack (foreground until Ctrl-C, or --detach)")
    up.add_argument("--postgres", action="store_true", help="keep connections in a throwaway PostgreSQL")
    up.add_argument("--org", action="append", default=[], help="open this organisation's Snowflake account")
    up.add_argument(
        "--load-delay", type=float, default=2.0, metavar="SECONDS", help="Snowpipe loads a file this long after REFRESH"
    )
    up.add_argument("--manual-load", action="store_true", help="files load only when drained (control API)")
    up.add_argument("--detach", action="store_true", help="run in the background; `floe devstack down` stops it")
    _state_file(up)
    up.set_defaults(command=_up, interrupted=lambda: "the local stack is stopped; its state is gone")
    for name, handler, text in (
        ("down", _down, "stop a detached local stack"),
        ("env", _env, "print the running stack's environment as export lines"),
    ):
        _state_file(action := actions.add_parser(name, help=text))
        action.set_defaults(command=handler)
    setup = actions.add_parser(
        "customer-setup", help="play the customer's admin: run the setup script, or install a rotation's new key"
    )
    setup.add_argument("--connection-id", required=True)
    setup.set_defaults(command=_customer_setup)
    sample = actions.add_parser("sample-data", help="write an hour of evaluation files under an org's prefix")
    sample.add_argument("--org", required=True)
    sample.add_argument("--files", type=int, default=12)
    sample.add_argument("--events", type=int, default=100, help="events per file")
    sample.add_argument("--corrupt", type=int, default=0, help="also this many files cut short")
    sample.set_defaults(command=_sample_data)


def _state_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-file", type=Path, default=STATE_FILE, help=f"default: {STATE_FILE}")


# -- up / down / env ----------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    if _running(args.state_file):
        raise UsageError(f"a local stack is already running ({args.state_file}): `floe devstack down` first")
    if args.detach:
        return _detach(args)
    from devstack import manual
    from devstack.stack import LocalStack

    workdir = Path(tempfile.mkdtemp(prefix="floe-devstack-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `down`: leave through the `with`, cleaning up
    # Ctrl-C stops the stack however it was started: a shell script's `floe devstack up &` (or a test
    # runner's worker) starts it with SIGINT ignored, which Python then leaves ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with LocalStack(postgres=args.postgres) as stack:
            env = manual.environment(stack, stack.postgres_dsn or f"sqlite:///{workdir}/connections.db")
            delay = None if args.manual_load else args.load_delay
            accounts = manual.prepare(stack, env, args.org, delay)
            _write_state(args.state_file, {"pid": os.getpid(), "environment": env, "accounts": accounts})
            print(_ready(env, accounts, stack.snowflake.url, stack.core.url, detached=False), flush=True)
            while True:
                time.sleep(3600)
    finally:
        args.state_file.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _detach(args: argparse.Namespace) -> int:
    """The same command in the foreground, in a new session, its output in a log beside the state file."""
    args.state_file.parent.mkdir(parents=True, exist_ok=True)
    log = args.state_file.with_suffix(".log")
    command = [sys.executable, "-m", "floe.cli", "devstack", "up", "--state-file", str(args.state_file)]
    command += [f"--org={org}" for org in args.org] + [f"--load-delay={args.load_delay}"]
    command += ["--postgres"] * args.postgres + ["--manual-load"] * args.manual_load
    with log.open("w") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not args.state_file.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise UsageError(f"the local stack did not start; its log: {log}")
        time.sleep(0.2)
    state = json.loads(args.state_file.read_text())
    print(_ready(state["environment"], state["accounts"], "", "", detached=True))
    return 0


def _down(args: argparse.Namespace) -> int:
    state = _running(args.state_file)
    if state is None:
        print("no local stack is running")
        return 0
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 20
    while args.state_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    print("local stack stopped; its buckets, accounts and connection database are gone")
    return 0


def _env(args: argparse.Namespace) -> int:
    state = _running(args.state_file)
    if state is None:
        raise UsageError(f"no local stack is running ({args.state_file}): start one with `floe devstack up --detach`")
    print("\n".join(f"export {key}={shlex.quote(value)}" for key, value in state["environment"].items()))
    return 0


def _running(state_file: Path) -> dict[str, Any] | None:
    """The state of the stack that wrote `state_file`, if that process still lives."""
    try:
        state: dict[str, Any] = json.loads(state_file.read_text())
        os.kill(state["pid"], 0)
    except (OSError, ValueError, KeyError):
        return None
    return state


def _write_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically, so a reader never sees half a file: the file appearing means the stack is ready."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(state, indent=2))
    partial.replace(path)


def _ready(env: dict[str, str], accounts: dict[str, str], snowflake_url: str, core_url: str, *, detached: bool) -> str:
    lines = ["Local stack is up.", ""]
    if detached:
        lines += ["Point this shell at it:", "", '  eval "$(floe devstack env)"', ""]
    else:
        lines += ["In another shell:", ""] + [f"  export {k}={shlex.quote(v)}" for k, v in env.items()] + [""]
        lines += [f"Snowflake stand-in control API: {snowflake_url}/devstack/", f"Core API receiver: {core_url}", ""]
    for org_id, account in accounts.items():
        lines.append(f"Organisation {org_id}: Snowflake account {account} (its admin: ADMIN / admin-password)")
    first = next(iter(accounts), "acme")
    lines += [
        "",
        "Next:",
        "  floe db migrate",
        f"  floe connection add --org {first} --account {accounts.get(first, first.upper())}",
        f"  floe provision --connection-id conn-{first}",
        "",
        "`floe devstack down` stops it." if detached else "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


# -- the customer's admin, and the ingestion side -----------------------------------------------------


def _customer_setup(args: argparse.Namespace) -> int:
    from devstack.manual import customer_setup
    from floe.cli import connection_store, say

    with connection_store() as (settings, store):
        connection = store.get(args.connection_id)
    say(f"the customer's admin logs in to Snowflake account {connection.account}")
    what = customer_setup(connection, settings)
    print(f"ran {what} in account {connection.account} as its admin (ADMIN, ACCOUNTADMIN)")
    print(f"next: floe provision --connection-id {args.connection_id}" + (" --rotate-key" if "key" in what else ""))
    return 0


def _sample_data(args: argparse.Namespace) -> int:
    from devstack.manual import sample_hour
    from kernel import config

    if min(args.files, args.corrupt) < 0 or args.events < 1 or args.files + args.corrupt < 1:
        raise UsageError("--files and --corrupt must not be negative, --events at least 1, and one file written")
    settings = config.load()
    written = sample_hour(args.org, settings, files=args.files, corrupt=args.corrupt, events=args.events)
    print(
        f"wrote {args.files} files of {args.events} events"
        + (f" and {args.corrupt} corrupt files" if args.corrupt else "")
        + f" under s3://{settings.bucket}/{settings.live_prefix_for(args.org)} ({len(written)} objects)"
    )
    return 0

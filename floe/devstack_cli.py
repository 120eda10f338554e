"""`floe devstack …`: the local stack, driven by hand."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

Commands = Any  # argparse's private _SubParsersAction


def add_devstack(commands: Commands) -> None:
    devstack = commands.add_parser("devstack", help="the local stack (moto, Snowflake stand-in, core)")
    actions = devstack.add_subparsers(required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the local stack in the foreground; Ctrl-C stops it")
    up.add_argument("--postgres", action="store_true", help="also start a throwaway PostgreSQL")
    up.set_defaults(command=_up, interrupted=lambda: "the local stack is stopped; its state is gone")


def _up(args: argparse.Namespace) -> int:
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

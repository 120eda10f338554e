"""`floe status`: a connection's row."""

from __future__ import annotations

import argparse

from floe.boundary import UsageError


def show_status(args: argparse.Namespace) -> int:
    from floe.cli import connection_store

    with connection_store() as (_, store):
        if args.connection_id is None:
            raise UsageError("--connection-id is required")
        connection = store.get(args.connection_id)
    for name, value in vars(connection).items():
        print(f"{name:<18}{value}")
    return 0

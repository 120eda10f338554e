"""``python -m devstack.snowflake --port N --aws-endpoint-url URL``: run the stand-in in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import threading

from .server import StandIn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.snowflake", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--aws-endpoint-url", required=True, help="the moto (or AWS) endpoint stages read from")
    args = parser.parse_args(argv)
    with StandIn(aws_endpoint_url=args.aws_endpoint_url, port=args.port) as server:
        print(f"Snowflake stand-in listening on {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()

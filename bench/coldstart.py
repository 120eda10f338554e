"""Cold start: a fresh interpreter per measurement, in two conditions.

The idle path: `import loader.handler`, then `loader.handler.run` for a connection whose prefix is
empty, timed to the first S3 request (boto3's `before-send`) and to the end of the tick; the baseline is
`import boto3` alone, in its own fresh interpreter. Measured with every module compiled from source (an
empty PYTHONPYCACHEPREFIX: the condition the issue's target was first measured in) and from bytecode (the
cache `bench.cli` warms, as the Lambda zip ships it). From bytecode, creating the S3 client (botocore
loading S3's service model) is timed too: every tick that lists S3 pays it."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from typing import Any

_IDLE = """
import time
started = time.perf_counter()
import loader.handler
imported = time.perf_counter()
import boto3, json, sys
marks = {}
def first_s3(**_):
    marks.setdefault("first_s3", time.perf_counter())
if boto3.DEFAULT_SESSION is None:
    boto3.setup_default_session()
boto3.DEFAULT_SESSION.events.register("before-send.s3", first_s3)
report = loader.handler.run({"connection_id": sys.argv[1]}, loader.handler.Deadline.after(30))
ended = time.perf_counter()
heavy = ("snowflake.connector", "jinja2", "psycopg", "tenacity", "provisioner.provision", "kernel.secrets")
print(json.dumps({
    "status": report["status"],
    "import_s": imported - started,
    "first_s3_s": marks.get("first_s3", ended) - started,
    "idle_tick_s": ended - started,
    "loaded": [m for m in heavy if m in sys.modules],
}))
"""

_BOTO3 = """
import time
started = time.perf_counter()
import boto3
imported = time.perf_counter()
boto3.client("s3")
client = time.perf_counter()
import psycopg
import json
print(json.dumps({
    "import_s": imported - started,
    "s3_client_s": client - imported,
    "psycopg_after_boto3_s": time.perf_counter() - client,
}))
"""


def _fresh(code: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"') and '"import_s"' in line]
    if done.returncode or not lines:
        raise RuntimeError(f"cold-start probe failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(env: dict[str, str], connection_id: str, runs: int) -> dict[str, Any]:
    """From source (the top-level figures, which the target is stated in) and, under "bytecode", from
    the warmed bytecode cache; each alternates the two probes `runs` times and reports medians."""
    with tempfile.TemporaryDirectory(prefix="floe-no-pyc-") as empty:
        from_source = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty}
        result = _measure(from_source, connection_id, runs)
    from_bytecode = {name: value for name, value in env.items() if name != "PYTHONPYCACHEPREFIX"}
    bytecode = _measure(from_bytecode, connection_id, runs)
    bytecode["ratio_to_boto3_and_s3_client"] = bytecode["first_s3_s"] / (
        bytecode["boto3_import_s"] + bytecode["s3_client_s"]
    )
    return {**result, "bytecode": bytecode}


def _measure(env: dict[str, str], connection_id: str, runs: int) -> dict[str, Any]:
    idle, boto3_only = [], []
    for _ in range(runs):
        boto3_only.append(_fresh(_BOTO3, env))
        idle.append(_fresh(_IDLE, env, connection_id))
    boto3_s = statistics.median(r["import_s"] for r in boto3_only)
    first_s3 = statistics.median(r["first_s3_s"] for r in idle)
    return {
        "runs": runs,
        "status": idle[-1]["status"],
        "boto3_import_s": boto3_s,
        "s3_client_s": statistics.median(r["s3_client_s"] for r in boto3_only),
        "handler_import_s": statistics.median(r["import_s"] for r in idle),
        "first_s3_s": first_s3,
        "idle_tick_s": statistics.median(r["idle_tick_s"] for r in idle),
        "ratio_to_boto3": first_s3 / boto3_s,
        # The connection store imports psycopg (PostgreSQL) even when it is SQLite: its share of the path.
        "psycopg_import_s": statistics.median(r["psycopg_after_boto3_s"] for r in boto3_only),
        "heavy_modules_loaded": idle[-1]["loaded"],
    }

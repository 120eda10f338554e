"""Cold start: a fresh interpreter per measurement (no warm `.pyc` effects beyond the machine's cache).

The idle path: `import loader.handler`, then `loader.handler.run` for a connection whose prefix is
empty, timed to the first S3 request (boto3's `before-send`) and to the end of the tick; the baseline is
`import boto3` alone, in its own fresh interpreter."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
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
import psycopg
import json
print(json.dumps({"import_s": imported - started, "psycopg_after_boto3_s": time.perf_counter() - imported}))
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
    """Alternates the two probes `runs` times; medians, and the ratio the target is stated in."""
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
        "handler_import_s": statistics.median(r["import_s"] for r in idle),
        "first_s3_s": first_s3,
        "idle_tick_s": statistics.median(r["idle_tick_s"] for r in idle),
        "ratio_to_boto3": first_s3 / boto3_s,
        # The connection store imports psycopg (PostgreSQL) even when it is SQLite: its share of the path.
        "psycopg_import_s": statistics.median(r["psycopg_after_boto3_s"] for r in boto3_only),
        "heavy_modules_loaded": idle[-1]["loaded"],
    }

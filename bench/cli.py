"""`python -m bench`: run the scenarios, print one table, write it as JSON (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import coldstart
from bench.costs import LatencyModel, busy_pattern, warehouse_day
from bench.harness import BenchFailed, Harness, difference
from bench.steady import run_steady
from bench.table import render_costs, render_steady, render_table, render_targets

# Assumed round trips (the facts give no figures, docs/snowflake-facts.md §7): see docs/benchmarks.md.
DEFAULT_STATEMENT_LATENCY = 0.15
DEFAULT_LOGIN_LATENCY = 0.6
APPROACHES = ("floe", "floor", "floe-rest", "floor-rest", "usual")
# How each approach runs (bench/workers.py) and what its wall time is compared with.
KINDS = {"floe": "tick", "floor": "floor", "floe-rest": "tick", "floor-rest": "floor_rest", "usual": "usual"}
FLOORS = {"floe": "floor", "floe-rest": "floor-rest", "usual": "floor"}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    files: int = 0
    corrupt_percent: float = 0
    file_kb: float = 0
    connections: int = 0  # fan-out
    cold: bool = False
    steady: bool = False  # many ticks at steady load, per load mode (bench/steady.py)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("idle", "idle tick (empty prefix)"),
        Scenario("1", "1 file", files=1),
        Scenario("1k", "1,000 files", files=1000),
        Scenario("10k", "10,000 files", files=10000),
        Scenario("1k-corrupt", "1,000 files, 1% corrupt", files=1000, corrupt_percent=1),
        Scenario("1k-large", "1,000 files of 256 KiB", files=1000, file_kb=256),
        Scenario("fanout", "fan-out: connections in one process pool", files=1, connections=200),
        Scenario("cold", "cold start (idle path)", cold=True),
        Scenario("steady", "steady load: warehouse cost per day, per load mode", steady=True),
    )
}
DEFAULT_SCENARIOS = ("idle", "1", "1k", "1k-corrupt", "fanout", "cold")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: %(default)s)",
    )
    parser.add_argument("--files-scale", type=float, default=1.0, help="multiply every file count (default 1)")
    parser.add_argument(
        "--fanout-connections", type=int, default=50, help="default %(default)s; the issue asks for 200"
    )
    parser.add_argument("--fanout-processes", type=int, default=8)
    parser.add_argument("--statement-latency", type=float, default=DEFAULT_STATEMENT_LATENCY, help="seconds")
    parser.add_argument("--login-latency", type=float, default=DEFAULT_LOGIN_LATENCY, help="seconds")
    parser.add_argument(
        "--usual-max-files",
        type=int,
        default=100,
        help="run the usual COPY loader only on scenarios with at most this many files: the stand-in's "
        "synchronous COPY loads about 10 files a second (default %(default)s)",
    )
    parser.add_argument("--snowpipe", choices=("auto", "engine", "instant"), default="auto")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument(
        "--steady-ticks",
        type=int,
        default=15,
        help="ticks per steady run (default %(default)s: one 900 s settle interval)",
    )
    parser.add_argument("--steady-files", type=int, default=3, help="files per busy steady tick (default %(default)s)")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"), help="default: %(default)s")
    return parser.parse_args(argv)


# What the workers import. The Lambda zip ships bytecode (floe/lambda_package.py): a tick never compiles
# what it imports, so neither may a worker, even where PYTHONDONTWRITEBYTECODE is set.
_WORKER_IMPORTS = "import bench.workers, loader.handler, loader.deliver, loader.snowpipe_rest, snowflake.connector"


def _cache_bytecode() -> None:
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", _WORKER_IMPORTS], env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenarios: {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    latency = LatencyModel(args.statement_latency, args.login_latency)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    cold: dict[str, Any] | None = None
    steady: dict[str, Any] | None = None
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])

    def document() -> dict[str, Any]:
        out: dict[str, Any] = {
            "command": command,
            "latency_model": {"statement_seconds": latency.statement_seconds, "login_seconds": latency.login_seconds},
            "snowpipe": args.snowpipe,
            "rows": rows,
            "cold_start": cold,
            "warehouse_per_day": _costs(rows, latency),
            "steady": steady,
            "elapsed_s": time.perf_counter() - started,
        }
        out["targets"] = _targets(out)
        return out

    _cache_bytecode()
    with Harness(latency, args.snowpipe) as harness:
        for name in names:
            scenario = SCENARIOS[name]
            print(f"[bench] {scenario.title} …", file=sys.stderr, flush=True)
            try:
                if scenario.cold:
                    org = harness.onboard("cold")
                    env = {**os.environ, **harness.env}
                    before = harness.stats(org)
                    cold = coldstart.measure(env, org.connection.connection_id, args.cold_runs)
                    cold["snowflake"] = difference(before, harness.stats(org))
                elif scenario.steady:
                    steady = run_steady(harness, latency, args.steady_ticks, args.steady_files)
                elif scenario.connections:
                    rows.append(_fanout(harness, scenario, args))
                else:
                    rows.extend(_scenario(harness, scenario, args))
            except Exception as error:  # one broken scenario is reported; the others still run
                print(f"[bench] {scenario.name} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            args.json.write_text(json.dumps(document(), indent=2, default=str) + "\n")  # partial results survive
    result = document()
    print(render_table(rows, cold))
    print()
    print(render_costs(result["warehouse_per_day"]))
    print()
    print(render_targets(result["targets"]))
    if steady:
        print()
        print(render_steady(steady))
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.json} ({result['elapsed_s']:.0f} s)", file=sys.stderr)
    return 0


def _scenario(harness: Harness, scenario: Scenario, args: argparse.Namespace) -> list[dict[str, Any]]:
    files = round(scenario.files * args.files_scale) if scenario.files else 0
    results: dict[str, dict[str, Any]] = {}
    for approach in APPROACHES:
        if approach == "usual" and (files > args.usual_max_files or scenario.file_kb):  # file_kb: memory only
            continue
        org = harness.onboard(f"{scenario.name}-{approach}")
        harness.put_files(org, files, corrupt_percent=scenario.corrupt_percent, file_kb=scenario.file_kb)
        env = {"FLOE_LOAD_MODE": "rest"} if approach == "floe-rest" else {}
        try:
            results[approach] = harness.run(KINDS[approach], org, env=env)
        except BenchFailed as error:  # reported, and the run goes on
            print(f"[bench] {scenario.name}/{approach} failed: {error}", file=sys.stderr, flush=True)
    rows = []
    for approach, result in results.items():
        row = {"scenario": scenario.name, "title": scenario.title, "approach": approach, **result}
        row["s3_requests"] = sum(result["s3"].values())
        if approach in FLOORS:
            floor = results.get(FLOORS[approach], {"wall_s": 0.0, "s3": {}})
            row["wall_x_floor"] = _ratio(result["wall_s"], floor["wall_s"])
            row["s3_x_floor"] = _ratio(row["s3_requests"], sum(floor["s3"].values()))
        rows.append(row)
    return rows


def _fanout(harness: Harness, scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    count = args.fanout_connections
    orgs = harness.onboard_many([f"fan-{index:04d}" for index in range(count)])
    for org in orgs:
        harness.put_files(org, scenario.files)
        harness.local.snowflake.control.configure(org.account, load_delay_seconds=0.05)
    env = {"FLOE_POLL_FIRST_SECONDS": "0.2", "FLOE_POLL_MAX_SECONDS": "1", "FLOE_TIME_MARGIN_SECONDS": "5"}
    before = [harness.stats(org) for org in orgs]
    ids = [org.connection.connection_id for org in orgs]
    result = harness.run("fanout", None, env=env, connection_ids=ids, processes=args.fanout_processes)
    after = [harness.stats(org) for org in orgs]
    total: dict[str, Any] = {"logins": 0, "statements": 0, "by_kind": {}, "warehouse_statements": 0}
    total["warehouse_resumes"] = 0
    for old, new in zip(before, after, strict=True):
        total["logins"] += new["logins"] - old["logins"]
        total["statements"] += new["statements"] - old["statements"]
        total["warehouse_statements"] += new["warehouse_statements"] - old["warehouse_statements"]
        total["warehouse_resumes"] += new["warehouse_resumes"] - old["warehouse_resumes"]
        for kind, value in new["statements_by_kind"].items():
            delta = value - old["statements_by_kind"].get(kind, 0)
            if delta:
                total["by_kind"][kind] = total["by_kind"].get(kind, 0) + delta
    title = f"fan-out: {count} connections, {args.fanout_processes} processes"
    row = {"scenario": scenario.name, "title": title, "approach": "floe", **result, "snowflake": total}
    row["s3_requests"] = sum(result["s3"].values())
    return row


def _ratio(value: float, floor: float) -> float | None:
    return value / floor if floor else None


def _costs(rows: list[dict[str, Any]], latency: LatencyModel) -> list[dict[str, Any]]:
    """Warehouse time per day at one tick a minute, for the measured per-tick warehouse use.

    A tick keeps the warehouse busy for its warehouse-using statements times the modelled statement
    time (for COPY INTO this leaves out the load itself, which favours the usual way)."""
    by = {(r["scenario"], r["approach"]): r for r in rows}
    busy_name = next((n for n in ("1k", "1", "10k", "1k-corrupt") if (n, "floe") in by), None)
    if busy_name is None:
        return []
    # The usual loader runs one COPY per tick whatever the file count; its 1-file row is the one whose
    # COPY the stand-in answers well within the connector's timeouts.
    busy = {"floe": by.get((busy_name, "floe")), "usual": by.get(("1", "usual")) or by.get((busy_name, "usual"))}
    idle = {a: by.get(("idle", a)) for a in ("floe", "usual")}
    out = []
    for approach in ("floe", "usual"):
        busy_row = busy[approach] or (by.get(("1", approach)) if approach == "usual" else None)
        idle_row = idle[approach]
        if busy_row is None or idle_row is None:
            continue
        busy_s = busy_row["snowflake"]["warehouse_statements"] * latency.statement_seconds
        idle_s = idle_row["snowflake"]["warehouse_statements"] * latency.statement_seconds
        for every, mix in ((1, "every tick has files"), (10, "1 tick in 10 has files"), (0, "no files all day")):
            for auto_suspend in (60.0, 600.0):
                day = warehouse_day(busy_pattern(busy_s, idle_s, every), auto_suspend=auto_suspend)
                out.append(
                    {
                        "approach": approach,
                        "mix": mix,
                        "auto_suspend_s": auto_suspend,
                        "warehouse_statements_per_busy_tick": busy_row["snowflake"]["warehouse_statements"],
                        "warehouse_statements_per_idle_tick": idle_row["snowflake"]["warehouse_statements"],
                        "resumes_per_day": day.resumes,
                        "billed_hours_per_day": day.billed_seconds / 3600,
                        "credits_per_day_xs": day.credits_xs,
                    }
                )
    return out


def _targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {(r["scenario"], r["approach"]): r for r in document["rows"]}
    targets: list[dict[str, Any]] = []

    def add(name: str, measured: Any, met: bool | None) -> None:
        targets.append({"target": name, "measured": measured, "met": met})

    idle = rows.get(("idle", "floe"))
    if idle:
        sf = idle["snowflake"]
        add(
            "idle: 0 Snowflake statements (and no login)",
            f"{sf['statements']} statements, {sf['logins']} logins",
            sf["statements"] == 0 and sf["logins"] == 0,
        )
        add("idle: 0 secret reads", idle["secret_reads"], idle["secret_reads"] == 0)
    cold = document["cold_start"]
    if cold:
        add(
            "idle cold start < 1.5x import boto3 (from source)",
            f"{cold['first_s3_s']:.3f} s vs {cold['boto3_import_s']:.3f} s = {cold['ratio_to_boto3']:.2f}x",
            cold["ratio_to_boto3"] < 1.5,
        )
    busy = [r for (s, a), r in rows.items() if a in ("floe", "floe-rest") and s not in {"idle", "fanout"}]
    for row in busy:
        polls = row["snowflake"]["by_kind"].get("copy_history", 0)
        wh = row["snowflake"]["warehouse_statements"]
        if row["approach"] == "floe-rest":
            add(f"{row['scenario']} (REST): 0 warehouse statements", f"{wh}", wh == 0)
            if row["scenario"] == "10k" and row.get("wall_x_floor") is not None:
                add("10k (REST): wall <= 1.5x its floor", f"{row['wall_x_floor']:.2f}x", row["wall_x_floor"] <= 1.5)
            continue
        add(
            f"{row['scenario']}: <= 1 warehouse statement per poll, <= 2 polls",
            f"{wh} warehouse statements, {polls} polls",
            polls <= 2 and wh <= max(polls, 1),
        )
        if row.get("s3_x_floor") is not None:
            add(f"{row['scenario']}: S3 requests <= 1.2x floor", f"{row['s3_x_floor']:.2f}x", row["s3_x_floor"] <= 1.2)
        if row["scenario"] == "10k" and row.get("wall_x_floor") is not None:
            add("10k: wall <= 1.5x floor", f"{row['wall_x_floor']:.2f}x", row["wall_x_floor"] <= 1.5)
        if row["scenario"] in ("10k", "1k-large"):
            add(f"{row['scenario']}: peak RSS < 256 MB", f"{row['peak_rss_mb']:.0f} MB", row["peak_rss_mb"] < 256)
    return targets

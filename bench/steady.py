"""The `steady` scenario: warehouse cost at steady load, per approach and mix (docs/benchmarks.md).

Each (approach, mix) runs `ticks` ticks one simulated minute apart in one worker (`workers.steady`),
counting from the stand-in's own counters. The warehouse-using statements of each tick, at the modelled
statement time, repeated over a day of 1,440 ticks, give XS credits/day with AUTO_SUSPEND 60 and 600
(`costs.warehouse_day`); the stand-in's own resume count (its warehouse set to AUTO_SUSPEND 60, its
clock moved 60 s a tick) is reported beside it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from bench.costs import LatencyModel, repeated, warehouse_day

if TYPE_CHECKING:
    from bench.harness import Harness

APPROACHES = ("floe-refresh", "floe-rest", "usual")
MIXES = ((1, "every tick has files"), (10, "1 tick in 10 has files"))
AUTO_SUSPENDS = (60.0, 600.0)
INSERT_FILES_MAX = 5000  # docs/snowflake-facts.md §3


def run_steady(harness: Harness, latency: LatencyModel, ticks: int, files_per_tick: int) -> dict[str, Any]:
    from devstack.scenario import run_as_admin

    # Every pipe is created before the first run moves the stand-in's clock on: a pipe created later
    # would look newer than files S3 stamps with real time, which the tick treats as the rare case.
    orgs = {
        (approach, every): harness.onboard(f"steady-{approach}-{every}")
        for approach in APPROACHES
        for every, _ in MIXES
    }
    runs = []
    for approach in APPROACHES:
        for every, mix in MIXES:
            org = orgs[approach, every]
            run_as_admin(harness.local.snowflake, org.account, "ALTER WAREHOUSE COMPUTE_WH SET AUTO_SUSPEND = 60")
            job = {
                "approach": approach,
                "ticks": ticks,
                "files_every": every,
                "files_per_tick": files_per_tick,
                "control_url": f"http://{harness.local.snowflake.host}:{harness.local.snowflake.port}",
                "bucket": harness.settings.bucket,
                "prefix": harness.settings.live_prefix_for(org.org_id),
            }
            mode = {"floe-refresh": "refresh", "floe-rest": "rest"}.get(approach, "refresh")
            result = harness.run("steady", org, env={"FLOE_LOAD_MODE": mode}, **job)
            runs.append(summarise(approach, mix, result["per_tick"], latency))
    return {
        "ticks": ticks,
        "files_per_tick": files_per_tick,
        "runs": runs,
        "xs_credits_per_day": {r["approach"]: r["xs_credits_per_day"]["60"] for r in runs if r["mix"] == MIXES[0][1]},
        "targets": targets(runs),
    }


def summarise(approach: str, mix: str, per_tick: list[dict[str, Any]], latency: LatencyModel) -> dict[str, Any]:
    """One run's counters, and its day at one tick a minute (pure)."""
    busy = [t for t in per_tick if t["files"]]
    idle = [t for t in per_tick if t.get("status") == "idle"]  # an empty prefix (REFRESH keeps files till settled)
    seconds = [t["warehouse_statements"] * latency.statement_seconds for t in per_tick]
    days = {str(int(a)): warehouse_day(repeated(seconds), auto_suspend=a) for a in AUTO_SUSPENDS}
    rest: dict[str, int] = {}
    for tick in per_tick:
        for kind, count in tick.get("rest_requests", {}).items():
            rest[kind] = rest.get(kind, 0) + count
    return {
        "approach": approach,
        "mix": mix,
        "ticks": len(per_tick),
        "busy_ticks": len(busy),
        "files": sum(t["files"] for t in per_tick),
        "files_loaded": sum(t.get("files_loaded", 0) for t in per_tick),
        "statements": sum(t["statements"] for t in per_tick),
        "warehouse_statements": sum(t["warehouse_statements"] for t in per_tick),
        "warehouse_resumes_standin": sum(t["warehouse_resumes"] for t in per_tick),
        "rest_requests": rest,
        "rest_floor": _rest_floor(busy),
        "resumes_per_day": {a: d.resumes for a, d in days.items()},
        "xs_credits_per_day": {a: round(d.credits_xs, 3) for a, d in days.items()},
        "idle_tick": _idle(idle) if approach != "usual" else None,
    }


def _rest_floor(busy: list[dict[str, Any]]) -> dict[str, int]:
    """The fewest REST requests that follow these files: one insertFiles per 5,000 files and one
    insertReport (a single poll) per busy tick."""
    return {
        "insertFiles": sum(math.ceil(t["files"] / INSERT_FILES_MAX) for t in busy),
        "insertReport": len(busy),
    }


def _idle(idle: list[dict[str, Any]]) -> dict[str, int] | None:
    """The most any idle tick of the run spent."""
    if not idle:
        return None
    return {
        "lists": max(t["s3"].get("ListObjectsV2", 0) for t in idle),
        "statements": max(t["statements"] + t["logins"] for t in idle),
        "rest_requests": max(sum(t["rest_requests"].values()) for t in idle),
        "secret_reads": max(t["secret_reads"] for t in idle),
    }


def targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets for steady load (docs/benchmarks.md)."""
    by = {(r["approach"], r["mix"]): r for r in runs}
    out: list[dict[str, Any]] = []
    rest = [r for r in runs if r["approach"] == "floe-rest"]
    out.append(
        {
            "target": "floe-rest: 0.0 XS credits/day at every mix",
            "measured": {r["mix"]: r["xs_credits_per_day"] for r in rest},
            "met": bool(rest) and all(c == 0 for r in rest for c in r["xs_credits_per_day"].values()),
        }
    )
    refresh, usual = by.get(("floe-refresh", MIXES[0][1])), by.get(("usual", MIXES[0][1]))
    if refresh and usual:
        mine, theirs = refresh["xs_credits_per_day"]["60"], usual["xs_credits_per_day"]["60"]
        out.append(
            {
                "target": "floe-refresh <= 1/10 of usual, every tick has files, AUTO_SUSPEND 60",
                "measured": f"{mine} vs {theirs} credits/day",
                "met": mine <= theirs / 10,
            }
        )
    for r in runs:
        if r["idle_tick"] is not None:
            idle = r["idle_tick"]
            met = idle == {"lists": 1, "statements": 0, "rest_requests": 0, "secret_reads": 0}
            out.append(
                {
                    "target": f"{r['approach']} idle tick: 1 LIST, 0 statements, 0 REST, 0 secrets",
                    "measured": idle,
                    "met": met,
                }
            )
    for r in rest:
        measured, floor = r["rest_requests"], r["rest_floor"]
        met = all(measured.get(kind, 0) <= floor[kind] for kind in floor) and not measured.get("loadHistoryScan")
        out.append(
            {
                "target": f"floe-rest REST requests at their floor ({r['mix']})",
                "measured": {"requests": measured, "floor": floor},
                "met": met,
            }
        )
    return out

"""The benchmark runs its smallest scenarios and prints its table (a smoke test, not a timed one), and
its warehouse model bills as docs/snowflake-facts.md §6 says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.costs import LatencyModel, busy_pattern, warehouse_day
from bench.steady import summarise, targets

ROOT = Path(__file__).resolve().parents[1]


def test_the_smallest_scenarios_run_and_print_one_table(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scenarios", "idle,1,cold", "--cold-runs", "1", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| scenario" in done.stdout
    assert "S3 requests by kind" in done.stdout
    assert "XS credits/day" in done.stdout
    document = json.loads(output.read_text())
    rows = {(r["scenario"], r["approach"]): r for r in document["rows"]}
    approaches = ("floe", "floor", "floe-rest", "floor-rest", "usual")
    assert set(rows) == {(s, a) for s in ("idle", "1") for a in approaches}
    rest = rows[("1", "floe-rest")]
    assert (rest["files"], rest["events"], rest["status"]) == (1, 1, "ok")
    assert rest["snowflake"]["warehouse_statements"] == 0
    assert rest["snowflake"]["rest_requests"] == {"insertFiles": 1, "insertReport": 1}
    idle, one = rows[("idle", "floe")], rows[("1", "floe")]
    assert (idle["snowflake"]["statements"], idle["snowflake"]["logins"], idle["secret_reads"]) == (0, 0, 0)
    assert idle["s3"] == {"ListObjectsV2": 1}
    assert (one["files"], one["events"], one["status"]) == (1, 1, "ok")
    assert one["s3"] == {"DeleteObjects": 1, "ListObjectsV2": 1}
    assert rows[("1", "usual")]["snowflake"]["by_kind"].get("copy_into") == 1
    assert document["cold_start"]["status"] == "idle"
    assert document["cold_start"]["bytecode"]["status"] == "idle"
    assert document["cold_start"]["snowflake"]["statements"] == 0
    assert {t["target"] for t in document["targets"]} >= {"idle: 0 secret reads"}


def test_a_warehouse_used_every_minute_never_suspends_and_bills_all_day() -> None:
    day = warehouse_day(busy_pattern(0.2, 0.2, 1), auto_suspend=600)
    assert day.resumes == 1
    assert day.billed_seconds == pytest.approx(1439 * 60 + 0.2 + 600)


def test_a_resume_bills_at_least_sixty_seconds() -> None:
    day = warehouse_day([0.5] + [0.0] * 9, auto_suspend=0)
    assert (day.resumes, day.billed_seconds) == (1, 60)


def test_sparse_use_resumes_each_time_once_auto_suspend_is_shorter_than_the_gap() -> None:
    day = warehouse_day(busy_pattern(0.2, 0.0, 10), auto_suspend=60)
    assert day.resumes == 144
    assert day.billed_seconds == pytest.approx(144 * 60.2)
    assert warehouse_day(busy_pattern(0.2, 0.0, 0), auto_suspend=60).billed_seconds == 0


def _tick(files: int, warehouse: int, status: str = "ok", **rest: int) -> dict[str, object]:
    return {
        "files": files,
        "status": status,
        "statements": warehouse,
        "logins": 1 if files else 0,
        "warehouse_statements": warehouse,
        "warehouse_resumes": min(warehouse, 1),
        "rest_requests": rest,
        "s3": {"ListObjectsV2": 1},
        "secret_reads": 1 if files else 0,
    }


def test_steady_costs_repeat_the_measured_ticks_over_a_day() -> None:
    latency = LatencyModel(statement_seconds=0.15, login_seconds=0.6)
    # REFRESH: one settle (a COPY_HISTORY) per 15 one-minute ticks; the others only REFRESH.
    refresh = summarise("floe-refresh", "every tick has files", [_tick(3, 1)] + [_tick(3, 0)] * 14, latency)
    assert refresh["resumes_per_day"] == {"60": 96, "600": 96}
    assert refresh["xs_credits_per_day"]["60"] == pytest.approx(96 * 60.15 / 3600, abs=0.01)
    rest = summarise("floe-rest", "every tick has files", [_tick(3, 0, insertFiles=1, insertReport=1)] * 15, latency)
    assert rest["xs_credits_per_day"] == {"60": 0.0, "600": 0.0}
    assert rest["rest_floor"] == {"insertFiles": 15, "insertReport": 15}
    usual = summarise("usual", "every tick has files", [_tick(3, 1)] * 15, latency)
    assert usual["xs_credits_per_day"]["60"] == pytest.approx(24.0, abs=0.01)
    idle = summarise("floe-rest", "1 tick in 10 has files", [_tick(0, 0, status="idle")] * 9, latency)
    assert idle["idle_tick"] == {"lists": 1, "statements": 0, "rest_requests": 0, "secret_reads": 0}
    met = {t["target"]: t["met"] for t in targets([refresh, rest, usual])}
    assert all(met.values()), met

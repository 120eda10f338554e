"""The reliability suite's world: onboarded organisations on the local stack, a ledger of every file
written, child-process ticks (crash_runner.py), ticks until quiet, and the exactly-once check."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import psycopg

from devstack.events import evaluation_events, event_key, gzip_ndjson
from devstack.scenario import onboard, run_as_admin_query
from kernel import config
from kernel.connections import Connection, open_store
from loader.handler import run
from loader.tick import Deadline, Edges, run_tick

if TYPE_CHECKING:
    from devstack.core_api import CoreReceiver
    from devstack.snowflake.server import StandIn

RUNNER = Path(__file__).with_name("crash_runner.py")
TABLE = "ANALYTICS.FLAGSMITH.FLAG_EVALUATIONS"
PIPE = "ANALYTICS.FLAGSMITH.FLOE_EVENTS_PIPE"
TICK_BUDGET_SECONDS = 15.0
LEASE_REASON = "another run holds this connection's lease"

# Fast polling, a small margin, the stranded grace period pinned to its documented default, and REFRESH
# settling every tick (tests/test_load_modes.py covers the settle interval).
BASE_ENVIRONMENT = {
    "FLOE_AWS_ACCOUNT_ID": "123456789012",
    "FLOE_SETTLE_INTERVAL": "0",
    "FLOE_POLL_FIRST_SECONDS": "0.2",
    "FLOE_POLL_MAX_SECONDS": "0.5",
    "FLOE_TIME_MARGIN_SECONDS": "1",
    "FLOE_STRANDED_AFTER_SECONDS": "3600",
    "FLOE_FOLLOW_SECONDS": "3",  # files left in flight are the follow window's, not a race with the budget
}


@dataclass(frozen=True)
class Written:
    org: str
    key: str
    events: int  # rows the file holds; 0 for a corrupt file
    body: bytes
    corrupt: bool = False


@dataclass
class Child:
    returncode: int
    result: dict[str, Any] | None
    journal: list[str]
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -9


@dataclass
class Verdict:
    """What the stack holds for a set of written files, against what exactly-once demands."""

    rows_expected: int = 0
    rows_found: int = 0
    dead_letters_expected: int = 0
    dead_letters_found: int = 0
    live_left: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class World:
    standin: StandIn
    settings: config.Settings
    connections: dict[str, Connection]
    work: Path
    core: CoreReceiver | None = None
    written: list[Written] = field(default_factory=list)

    # -- writing -----------------------------------------------------------------------------------------

    def write(self, org: str, name: str, events: int = 5, corrupt: bool = False) -> Written:
        at = datetime.now(UTC)
        body = gzip_ndjson(evaluation_events(events, "env-rel", seed=len(self.written), at=at))
        if corrupt:
            body, events = body[: len(body) // 2], 0  # a cut gzip stream: the whole file fails to load
        key = event_key(self.settings.live_prefix_for(org), "env-rel", at, name)
        boto3.client("s3").put_object(Bucket=self.settings.bucket, Key=key, Body=body)
        file = Written(org, key, events, body, corrupt)
        self.written.append(file)
        return file

    # -- ticks -------------------------------------------------------------------------------------------

    def tick(self, org: str) -> dict[str, Any]:
        return run({"connection_id": self.connections[org].connection_id}, Deadline.after(TICK_BUDGET_SECONDS))

    def shifted_tick(self, org: str, shift: timedelta) -> dict[str, Any]:
        """A tick whose clock runs `shift` ahead (pair it with the stand-in's advance_clock)."""
        settings = config.load()
        with open_store(settings.connections_dsn) as store:
            edges = Edges(
                settings=settings,
                store=store,
                s3=lambda: boto3.client("s3"),
                secrets=lambda: boto3.client("secretsmanager"),
                now=lambda: datetime.now(UTC) + shift,
            )
            report = run_tick(self.connections[org].connection_id, edges, Deadline.after(TICK_BUDGET_SECONDS))
        document: dict[str, Any] = json.loads(json.dumps(report.as_dict(), default=str))
        return document

    def settle(self, org: str, timeout: float = 30.0, shift: timedelta | None = None) -> list[dict[str, Any]]:
        """Tick until a tick finds nothing to do (idle); a held lease is waited out."""
        reports: list[dict[str, Any]] = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            report = self.tick(org) if shift is None else self.shifted_tick(org, shift)
            reports.append(report)
            if report["status"] == "idle":
                return reports
            time.sleep(0.3)
        summary = [(r["status"], r.get("reason") or r.get("error")) for r in reports[-3:]]
        raise AssertionError(f"{org}: not quiet after {timeout}s: {summary}")

    def child(
        self,
        org: str,
        kill_at: str | None = None,
        *,
        budget: float = 15.0,
        list_page_size: int | None = None,
        environment: dict[str, str] | None = None,
    ) -> Child:
        process, result, journal = self.spawn(
            org, kill_at, budget=budget, list_page_size=list_page_size, env=environment
        )
        _, stderr = process.communicate(timeout=120)
        return collect(process, result, journal, stderr)

    def spawn(
        self,
        org: str,
        kill_at: str | None = None,
        *,
        budget: float = 15.0,
        list_page_size: int | None = None,
        go_file: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> tuple[subprocess.Popen[str], Path, Path]:
        tag = f"{org}-{time.monotonic_ns()}"
        result, journal = self.work / f"{tag}.json", self.work / f"{tag}.journal"
        command = [sys.executable, str(RUNNER), self.connections[org].connection_id, "--budget", str(budget)]
        command += ["--result", str(result), "--journal", str(journal)]
        if kill_at:
            command += ["--kill-at", kill_at]
        if list_page_size:
            command += ["--list-page-size", str(list_page_size)]
        if go_file:
            command += ["--go-file", str(go_file)]
        process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        return process, result, journal

    # -- observing ---------------------------------------------------------------------------------------

    def rows(self, org: str) -> list[tuple[str, int]]:
        sql = f"SELECT SOURCE_FILE_NAME, SOURCE_FILE_ROW_NUMBER FROM {TABLE}"
        return [(str(name), int(row)) for name, row in self.admin_sql(org, sql)]

    def admin_sql(self, org: str, sql: str) -> list[tuple[Any, ...]]:
        return run_as_admin_query(self.standin, self.connections[org].account, sql)

    def keys(self, prefix: str) -> list[str]:
        pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def live_keys(self, org: str) -> list[str]:
        return self.keys(self.settings.live_prefix_for(org))

    def dead_letter_objects(self, org: str) -> list[str]:
        return self.keys(f"{self.settings.dead_letter_prefix_for(org)}objects/")

    def lease_owner(self, org: str) -> str | None:
        sql = "SELECT lease_owner FROM connections WHERE connection_id = "
        connection_id = self.connections[org].connection_id
        dsn = config.load().connections_dsn
        if dsn.startswith("sqlite:///"):
            with sqlite3.connect(dsn.removeprefix("sqlite:///")) as db:
                (owner,) = db.execute(f"{sql}?", (connection_id,)).fetchone()
        else:
            with psycopg.connect(dsn) as db:
                row = db.execute(f"{sql}%s", (connection_id,)).fetchone()
                assert row is not None
                (owner,) = row
        return None if owner is None else str(owner)

    def check(self, org: str, files: list[Written] | None = None) -> Verdict:
        """Every file's events once in the table, or the file once under dead-letter/{org}/objects/, and
        nothing left in the live prefix; rows or dead letters no written file explains are violations."""
        files = [f for f in (files if files is not None else self.written) if f.org == org]
        live_prefix = self.settings.live_prefix_for(org)
        dead_prefix = f"{self.settings.dead_letter_prefix_for(org)}objects/"
        rows = Counter(self.rows(org))
        dead = set(self.dead_letter_objects(org))
        live = set(self.live_keys(org))
        verdict = Verdict()
        for file in files:
            relative = file.key.removeprefix(live_prefix)
            dead_key = f"{dead_prefix}{relative}"
            found = {number: n for (name, number), n in rows.items() if name == relative}
            if file.key in live:
                verdict.live_left += 1
                verdict.violations.append(f"{relative}: still in the live prefix")
            if file.corrupt:
                verdict.dead_letters_expected += 1
            else:
                verdict.rows_expected += file.events
            verdict.rows_found += sum(found.values())
            if dead_key in dead:
                verdict.dead_letters_found += 1
                copied = boto3.client("s3").get_object(Bucket=self.settings.bucket, Key=dead_key)["Body"].read()
                if copied != file.body:
                    verdict.violations.append(f"{relative}: dead-lettered bytes differ from the written ones")
            if found and dead_key in dead:
                verdict.violations.append(f"{relative}: in the table ({sum(found.values())} rows) AND dead-lettered")
            if found and set(found) != set(range(1, file.events + 1)):
                verdict.violations.append(f"{relative}: rows {sorted(found)} != 1..{file.events}")
            if any(n > 1 for n in found.values()):
                verdict.violations.append(f"{relative}: {sum(n - 1 for n in found.values())} duplicated rows")
            if not found and dead_key not in dead and file.key not in live:
                verdict.violations.append(f"{relative}: lost (neither in the table nor dead-lettered)")
            if file.corrupt and found:
                verdict.violations.append(f"{relative}: corrupt file has rows in the table")
        all_files = [f for f in self.written if f.org == org]
        known_rows = {f.key.removeprefix(live_prefix) for f in all_files}
        stray = {name for name, _ in rows if name not in known_rows}
        if stray:
            verdict.violations.append(f"rows from files nobody wrote: {sorted(stray)[:3]}")
        known_dead = {f"{dead_prefix}{f.key.removeprefix(live_prefix)}" for f in all_files}
        if dead - known_dead:
            verdict.violations.append(f"dead letters nobody wrote: {sorted(dead - known_dead)[:3]}")
        return verdict


def collect(process: subprocess.Popen[str], result: Path, journal: Path, stderr: str) -> Child:
    document = json.loads(result.read_text()) if result.exists() else None
    lines = journal.read_text().splitlines() if journal.exists() else []
    return Child(process.returncode, document, lines, stderr[-2000:])


def make_world(
    standin: StandIn,
    monkeypatch: Any,
    work: Path,
    orgs: list[str],
    *,
    dsn: str,
    environment: dict[str, str] | None = None,
    core: CoreReceiver | None = None,
    load_delay_seconds: float | None = 0.05,
) -> World:
    """Onboard each organisation into its own stand-in account; the process environment is the stack's."""
    env = {
        **BASE_ENVIRONMENT,
        "FLOE_CONNECTIONS_DSN": dsn,
        "FLOE_SNOWFLAKE_HOST": standin.host,
        "FLOE_SNOWFLAKE_PORT": str(standin.port),
        "FLOE_SNOWFLAKE_PROTOCOL": "http",
        **(environment or {}),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if core is not None:
        monkeypatch.setenv("FLOE_CORE_API_URL", core.url)
    else:
        monkeypatch.delenv("FLOE_CORE_API_URL", raising=False)
    settings = config.load()
    connections = {}
    with open_store(settings.connections_dsn) as store:
        store.migrate()
        for org in orgs:
            account = f"{org.upper().replace('-', '_')}_ACCOUNT"
            connections[org] = onboard(org, account, standin=standin, settings=settings, store=store)
            standin.control.configure(account, load_delay_seconds=load_delay_seconds)
    return World(standin, settings, connections, work, core)


def recreate_pipe(world: World, org: str) -> None:
    """What a customer's admin may do: CREATE OR REPLACE PIPE with the very same definition and comment."""
    described = world.admin_sql(org, f"DESC PIPE {PIPE}")
    definition, comment = str(described[0][4]), str(described[0][7])
    escaped = comment.replace("\\", "\\\\").replace("'", "''")
    world.admin_sql(org, f"CREATE OR REPLACE PIPE {PIPE} AUTO_INGEST = FALSE COMMENT = '{escaped}' AS {definition}")

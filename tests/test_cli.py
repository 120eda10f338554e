"""The `floe` command as a user runs it: a separate process through the installed entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

FLOE = shutil.which("floe", path=str(Path(sys.executable).parent)) or "floe"


def floe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOE, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}, check=False
    )


def test_demo_delivers_both_organisations_and_explains_the_corrupt_file() -> None:
    result = floe("demo", "--json")
    assert result.returncode == 0, result.stderr
    organisations = json.loads(result.stdout)["organisations"]
    acme, globex = organisations["acme"], organisations["globex"]
    assert (acme["run_status"], acme["events_delivered"], acme["rows_in_table"]) == ("ok", 150, 150)
    assert (globex["run_status"], globex["events_delivered"], globex["rows_in_table"]) == ("ok", 80, 80)
    [dead] = acme["dead_letters"]
    assert dead["file"].endswith("part-corrupt.json.gz")
    assert dead["status"] == "Load failed"
    assert "decompression" in dead["reason"]
    assert globex["dead_letters"] == []
    assert acme["metrics_received_by_core"]["events_delivered"] == 150
    assert globex["metrics_received_by_core"]["files_dead_lettered"] == 0


def test_render_from_a_description_needs_no_database_and_prints_every_statement(tmp_path: Path) -> None:
    description = tmp_path / "acme.yaml"
    description.write_text(
        yaml.safe_dump(
            {
                "org_id": "acme",
                "account": "ACME",
                "user": "FLOE_LOADER",
                "role": "FLOE_LOADER",
                "warehouse": "COMPUTE_WH",
                "database": "ANALYTICS",
                "schema": "FLAGSMITH",
                "table": "FLAG_EVALUATIONS",
                "aws_account_id": "123456789012",
            }
        )
    )
    result = floe("render", "--from", str(description), env={"FLOE_CONNECTIONS_DSN": "postgresql://nowhere/none"})
    assert result.returncode == 0, result.stderr
    headers = [line for line in result.stdout.splitlines() if line.startswith("-- ")]
    assert headers == ["-- integration", "-- file_format", "-- table", "-- stage", "-- pipe"]
    assert "ALTER PIPE" not in result.stdout
    assert "CREATE OR REPLACE PIPE" in result.stdout


def test_a_bad_setting_is_named_and_exits_two() -> None:
    result = floe("load", "--connection-id", "c-1", env={"FLOE_RETRY_ATTEMPTS": "lots"})
    assert result.returncode == 2
    assert "FLOE_RETRY_ATTEMPTS" in result.stderr

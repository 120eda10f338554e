"""`floe db migrate` and `floe connection …`, in process (the subprocess path is tests/test_cli_errors.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from floe.cli import main


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "connections.db"
    monkeypatch.setenv("FLOE_CONNECTIONS_DSN", f"sqlite:///{path}")
    assert main(["db", "migrate"]) == 0
    return path


def listed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["connection", "list", "--json"]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def test_add_from_a_file_then_pause_resume_and_remove(
    database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    description = tmp_path / "acme.yaml"
    description.write_text(yaml.safe_dump({"org_id": "acme", "account": "ACME", "warehouse": "LOAD_WH"}))
    assert main(["connection", "add", "--from", str(description), "--connection-id", "c-acme"]) == 0
    [row] = listed(capsys)
    assert (row["connection_id"], row["warehouse"], row["secret_ref"]) == ("c-acme", "LOAD_WH", "floe/connections/acme")
    assert main(["connection", "remove", "--connection-id", "c-acme"]) == 2  # active: tear down or pause first
    assert main(["connection", "pause", "--connection-id", "c-acme"]) == 0
    assert listed(capsys)[0]["active"] is False
    assert main(["connection", "resume", "--connection-id", "c-acme"]) == 0
    assert listed(capsys)[0]["active"] is True
    assert main(["connection", "pause", "--connection-id", "c-acme"]) == 0
    assert main(["connection", "remove", "--connection-id", "c-acme"]) == 0
    assert listed(capsys) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--org", "Not An Org", "--account", "A", "--connection-id", "c-1"], "org_id"),
        (["--org", "acme", "--account", "A", "--warehouse", ""], "warehouse"),
        (["--org", "acme"], "--account"),
    ],
)
def test_a_row_is_validated_like_the_row_itself(
    database: Path, args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["connection", "add", *args]) == 2
    assert named in capsys.readouterr().err
    assert listed(capsys) == []


def test_a_description_with_unknown_fields_is_refused(database: Path, tmp_path: Path) -> None:
    description = tmp_path / "acme.json"
    description.write_text(json.dumps({"org_id": "acme", "account": "A", "status": "ready"}))
    assert main(["connection", "add", "--from", str(description)]) == 2

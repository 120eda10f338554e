"""What the CLI writes where: progress lines in a terminal, JSON log lines only with --verbose or when
stderr is not a terminal, and a report that says where to look after dead-lettering."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from floe import cli
from kernel import logs


@pytest.fixture(autouse=True)
def fresh_logger() -> Iterator[None]:
    root = logging.getLogger("floe")
    handlers = list(root.handlers)
    root.handlers.clear()
    yield
    root.handlers[:] = handlers


def emit() -> None:
    logs.get("provision").info("object %s", "created", extra={"object": "pipe", "report": {"big": "thing"}})
    logs.get("loader").info("run report", extra={"report": {"status": "ok"}})


def test_a_terminal_gets_short_progress_lines_not_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    cli._configure_logs(verbose=False)
    cli._configure_logs(verbose=False)  # a second main() in the same process: still one line per record
    emit()
    assert capsys.readouterr().err.splitlines() == ["… object created (object=pipe)"]


@pytest.mark.parametrize(("terminal", "verbose"), [(False, False), (True, True)])
def test_json_lines_without_a_terminal_or_with_verbose(
    terminal: bool, verbose: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: terminal)
    cli._configure_logs(verbose=verbose)
    emit()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["msg"] for line in lines] == ["object created", "run report"]


def test_a_report_with_dead_letters_says_how_to_look() -> None:
    report = {"connection_id": "c-1", "status": "ok", "files_loaded": 2, "files_dead_lettered": 1, "warnings": []}
    assert "floe dead-letters --connection-id c-1" in cli.format_report(report)
    assert "dead-letters" not in cli.format_report({**report, "files_dead_lettered": 0})

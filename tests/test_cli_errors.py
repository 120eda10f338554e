"""The CLI's error boundary as a user meets it: the installed `floe` in a subprocess, one line on stderr,
a documented exit code, no traceback, and nothing created by a command that only reads."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FLOE = shutil.which("floe", path=str(Path(sys.executable).parent)) or "floe"
# Every command that takes --connection-id.
BY_ID = (
    ["render"],
    ["provision"],
    ["provision", "--rotate-key"],
    ["teardown"],
    ["status"],
    ["load"],
    ["dead-letters"],
    ["replay"],
    ["connection", "show"],
    ["connection", "pause"],
    ["connection", "resume"],
    ["connection", "remove"],
    ["devstack", "customer-setup"],
)


def floe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # No AWS settings at all: an unknown id must be found out before anything talks to AWS.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOE_"))}
    return subprocess.run([FLOE, *args], capture_output=True, text=True, timeout=60, env={**base, **env}, check=False)


def assert_one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [text for text in result.stderr.splitlines() if text.strip() and not text.startswith("…")]
    assert line.startswith("floe: ")
    assert " — " in line
    return line


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {"FLOE_CONNECTIONS_DSN": f"sqlite:///{tmp_path_factory.mktemp('db')}/connections.db"}
    first, again = floe("db", "migrate", env=env), floe("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout
    return env


@pytest.mark.parametrize("command", BY_ID, ids=" ".join)
def test_an_unknown_connection_is_one_line_and_exit_three(command: list[str], migrated: dict[str, str]) -> None:
    line = assert_one_line(floe(*command, "--connection-id", "nope", env=migrated), 3)
    assert "unknown connection 'nope'" in line
    assert "floe connection list" in line


def test_a_read_only_command_creates_no_database(tmp_path: Path) -> None:
    env = {"FLOE_CONNECTIONS_DSN": f"sqlite:///{tmp_path}/missing/connections.db"}
    for command in (["status"], ["connection", "list"], ["connection", "show", "--connection-id", "c"]):
        assert "floe db migrate" in assert_one_line(floe(*command, env=env), 2)
    assert "floe db migrate" in assert_one_line(floe("dead-letters", "--connection-id", "c", env=env), 2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["replay", "--connection-id", "c", "--batch", "not a run id!"], "UUID"),
        (["load", "--connection-id", "c", "--budget-seconds", "-5"], "positive"),
        (["load", "--connection-id", "c", "--budget-seconds", "nan"], "positive"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_two(args: list[str], named: str, migrated: dict[str, str]) -> None:
    assert named in assert_one_line(floe(*args, env=migrated), 2)


def test_an_unsupported_or_unreachable_database_is_named_without_its_password() -> None:
    mysql = assert_one_line(floe("connection", "list", env={"FLOE_CONNECTIONS_DSN": "mysql://x/y"}), 2)
    assert "FLOE_CONNECTIONS_DSN" in mysql
    refused = floe("connection", "list", env={"FLOE_CONNECTIONS_DSN": "postgresql://u:hunter2@127.0.0.1:1/x"})
    assert "FLOE_CONNECTIONS_DSN" in assert_one_line(refused, 5)
    assert "hunter2" not in refused.stderr + refused.stdout


def test_missing_aws_settings_say_what_to_set(migrated: dict[str, str]) -> None:
    assert floe("connection", "add", "--org", "acme", "--account", "ACME", env=migrated).returncode == 0
    line = assert_one_line(floe("provision", "--connection-id", "conn-acme", env=migrated), 2)
    assert "AWS" in line
    assert "floe devstack up" in line


def test_debug_shows_the_traceback_of_an_expected_failure_too(migrated: dict[str, str]) -> None:
    result = floe("--debug", "status", "--connection-id", "nope", env=migrated)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_ctrl_c_says_what_is_true_and_exits_130(tmp_path: Path) -> None:
    state = tmp_path / "devstack.json"
    stack = subprocess.Popen(
        [FLOE, "devstack", "up", "--state-file", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not state.exists() and stack.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    stack.send_signal(signal.SIGINT)
    _, stderr = stack.communicate(timeout=60)
    assert stack.returncode == 130
    assert "floe: interrupted; the local stack is stopped" in stderr
    assert "Traceback" not in stderr
    assert not state.exists()

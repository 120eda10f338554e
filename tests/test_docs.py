"""The docs cannot drift from the code: the settings table lists every FLOE_* variable the code reads,
and docs/walkthrough.md runs as written against a fresh local stack."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The product's own code (the stand-in and the test tooling read no FLOE_ settings of the product).
SOURCES = ("kernel", "provisioner", "lambda/loader", "floe", "devstack")
SETTING = re.compile(r"FLOE_[A-Z0-9_]+")


def _python_files() -> Iterator[Path]:
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "snowflake" not in path.relative_to(ROOT).parts[1:2]:
                yield path


def settings_read_by_the_code() -> set[str]:
    """Every FLOE_ name passed as a positional argument (env.get("FLOE_X"), _int(env, "FLOE_X", …)) or
    used as a subscript (os.environ["FLOE_X"]): how the code reads a setting. Object names such as
    FLOE_EVENTS_PIPE are assigned, never looked up, so they do not count."""
    names = set()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            candidates = (
                node.args if isinstance(node, ast.Call) else [node.slice] if isinstance(node, ast.Subscript) else []
            )
            names |= {
                c.value
                for c in candidates
                if isinstance(c, ast.Constant) and isinstance(c.value, str) and SETTING.fullmatch(c.value)
            }
    return names


def settings_in_the_table() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("## Configuration (environment variables)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in SETTING.findall(row.split("|")[1])}


def test_the_settings_table_lists_every_setting_the_code_reads() -> None:
    read = settings_read_by_the_code()
    assert "FLOE_LEASE_SECONDS" in read  # the scan sees config.py's reads
    assert "FLOE_LOADER_FUNCTION" in read  # and the dispatcher's
    assert read == settings_in_the_table()


def blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    markdown = (ROOT / "docs" / "walkthrough.md").read_text()
    script = "\n".join(blocks(markdown, "sh"))
    assert "floe devstack up" in script
    assert "floe devstack down" in script
    # A clean environment: only what the page itself sets up (no FLOE_ or AWS_ settings of the caller's).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOE_", "AWS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:  # never leave a stack running, whatever failed
        subprocess.run(["floe", "devstack", "down"], cwd=tmp_path, env=env, capture_output=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    printed = {line.strip() for line in result.stdout.splitlines()}
    expected = [line.strip() for block in blocks(markdown, "text") for line in block.splitlines()]
    missing = [line for line in expected if line and "…" not in line and line not in printed]
    assert missing == [], f"docs/walkthrough.md shows output the commands no longer print: {missing}"

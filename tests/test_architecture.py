"""The layers import one way (docs/architecture.md): read from the source, every import counted, whether
at module level, inside a function or under TYPE_CHECKING."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Package name -> its folder. `devstack.snowflake` is its own room: the stand-in imports nothing of Floe's.
PACKAGES = {
    "kernel": ROOT / "kernel",
    "sql_templates": ROOT / "sql_templates",
    "provisioner": ROOT / "provisioner",
    "loader": ROOT / "lambda" / "loader",
    "devstack.snowflake": ROOT / "devstack" / "snowflake",
    "devstack": ROOT / "devstack",
    "floe": ROOT / "floe",
    "bench": ROOT / "bench",
}
LOWER = {"kernel", "sql_templates", "provisioner", "loader", "devstack", "devstack.snowflake"}
ALLOWED = {
    "kernel": {"sql_templates"},
    "sql_templates": set(),
    "provisioner": {"kernel", "sql_templates"},
    "loader": {"kernel", "provisioner", "sql_templates"},
    "devstack.snowflake": set(),
    "devstack": {"kernel", "provisioner", "devstack.snowflake"},
    # The faces: the `floe` command line and the benchmark may use every layer below them.
    "floe": LOWER,
    "bench": LOWER | {"floe"},
}


def _package_of(module: str) -> str | None:
    if module == "devstack.snowflake" or module.startswith("devstack.snowflake."):
        return "devstack.snowflake"
    top = module.split(".", maxsplit=1)[0]
    return top if top in PACKAGES else None


def _files(package: str) -> Iterator[Path]:
    folder = PACKAGES[package]
    for path in sorted(folder.rglob("*.py")):
        inner = path.relative_to(ROOT / "devstack") if package == "devstack" else None
        if inner is not None and inner.parts[0] == "snowflake":
            continue  # counted as devstack.snowflake
        yield path


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for package in PACKAGES:
        for path in _files(package):
            for module in _imported_modules(path):
                target = _package_of(module)
                if target is not None and target != package:
                    graph[package].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for neighbour in sorted(graph[node]):
            if state.get(neighbour) == "open":
                return [*path, node, neighbour]
            if neighbour not in state and (found := visit(neighbour, [*path, node])):
                return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_every_import_goes_down_a_layer() -> None:
    graph = import_graph()
    wrong = {f"{package} -> {target}" for package, targets in graph.items() for target in targets - ALLOWED[package]}
    assert not wrong, f"imports against the layering: {sorted(wrong)}"


def test_the_package_graph_has_no_cycle() -> None:
    assert _cycle(import_graph()) is None


def test_the_checks_see_a_back_arrow_and_a_cycle() -> None:
    graph = import_graph()
    graph["kernel"] = graph["kernel"] | {"loader"}
    assert _cycle(graph) is not None
    assert "loader" not in ALLOWED["kernel"]


@pytest.mark.parametrize("package", ["kernel", "provisioner", "loader", "devstack"])
def test_nothing_but_the_faces_imports_devstack_internals_or_bench(package: str) -> None:
    assert "bench" not in import_graph()[package]
    assert "floe" not in import_graph()[package]


def test_the_idle_path_imports_no_busy_path_dependency() -> None:
    """The handler and the idle tick leave the connector, jinja2, tenacity, secrets and provisioning to
    the busy path (`loader.deliver`), so an idle cold start pays for none of them."""
    heavy = [
        "snowflake.connector",
        "snowflake.ingest",
        "jinja2",
        "tenacity",
        "kernel.secrets",
        "provisioner",
        "loader.deliver",
        "loader.snowpipe_rest",
    ]
    code = f"import sys, loader.handler; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]"


def test_the_refresh_path_leaves_the_rest_client_to_rest_mode() -> None:
    """REFRESH mode's busy path never imports snowflake-ingest (and its `requests`): only REST mode does."""
    code = "import sys, loader.deliver; print([m for m in ('snowflake.ingest', 'requests') if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]"

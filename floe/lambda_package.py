"""The Lambda artifact: Floe's own packages plus its runtime dependencies as Linux wheels, in one zip.

Reproducible: the same commit gives the same bytes. Dependencies are resolved with uv as of the
commit's time (`--exclude-newer`), so a later PyPI release does not change an old commit's build;
zip entries are sorted, dated 1980-01-01 and given fixed permissions; bytecode (when compiled) is
hash-based and records `/var/task/...` paths, so nothing of the build machine leaks in.

Left out on purpose:
- boto3 / botocore / s3transfer / jmespath: every Lambda Python runtime provides them, and Floe uses
  only long-stable S3 and Secrets Manager calls. Shipping our own would add ~25 MB unzipped and pin
  the SDK to what the build machine resolved instead of what AWS keeps patched.
- everything from the `dev` extra (moto, fakesnow, pytest, …) and `devstack/`, `tests/`, `bench/`.

Bytecode: a .pyc can only be written by the interpreter of the target's minor version. If one is
found (`python3.12` on PATH or under pyenv, or given), every module is compiled with it; otherwise
the zip holds sources only and each cold start compiles what it imports in memory (`/var/task` is
read-only, so nothing is cached between cold starts). The report says which happened.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kernel.errors import FloeError

Architecture = Literal["x86_64", "arm64"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Lambda quotas: 50 MB for a zip uploaded directly (Terraform's `filename`), 250 MB unzipped.
ZIPPED_LIMIT = 50 * 1024 * 1024
UNZIPPED_LIMIT = 250 * 1024 * 1024

RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath"})
# Test-only distributions (top-level import names) that must never reach the zip.
NEVER_SHIPPED = frozenset(
    {"moto", "fakesnow", "duckdb", "sqlglot", "pytest", "_pytest", "hypothesis", "pgserver"}
    | {"starlette", "uvicorn", "ruff", "mypy", "devstack", "tests", "bench"}
    | RUNTIME_PROVIDED
)

# import name -> folder in the repository (mirrors [tool.setuptools] in pyproject.toml; a test checks).
# What the Lambda runs: the kernel, the loader, the provisioning it calls to keep stage and pipe current,
# and the templates. Never the face (this module), the local stack, the benchmark or the tests.
PROJECT_PACKAGES = {
    "kernel": "kernel",
    "provisioner": "provisioner",
    "loader": "lambda/loader",
    "sql_templates": "sql_templates",
}
PACKAGE_DATA = {"sql_templates": ("*.sql",)}
HANDLER_FILE = "loader/handler.py"

# The glibc a runtime's OS offers, as the manylinux level uv may pick wheels for: Python 3.12 and 3.13
# run on Amazon Linux 2023 (glibc 2.34); 3.11 on Amazon Linux 2 (glibc 2.26, so manylinux2014).
_MANYLINUX = {"3.11": "manylinux_2_17", "3.12": "manylinux_2_34", "3.13": "manylinux_2_34"}
_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644  # regular file, rw-r--r--: nothing in /var/task needs to be executable
_TASK_ROOT = "/var/task"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)$")

_COMPILE_SCRIPT = """
import pathlib, py_compile, sys
root, prefix = pathlib.Path(sys.argv[1]), sys.argv[2]
for path in sorted(root.rglob("*.py")):
    relative = path.relative_to(root).as_posix()
    try:
        py_compile.compile(str(path), dfile=f"{prefix}/{relative}", doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        print(relative)
"""


class PackageError(FloeError):
    """The artifact cannot be built, or would not work on Lambda; the message says why."""


@dataclass(frozen=True)
class PackageReport:
    path: Path
    architecture: str
    python_version: str
    platform: str
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    requirements: tuple[str, ...]
    bytecode: str | None
    uncompilable: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        mib = 1024 * 1024
        lines = [
            f"{self.path} ({self.architecture}, Python {self.python_version}, {self.platform})",
            f"  zipped   {self.zipped_bytes / mib:7.1f} MiB of {ZIPPED_LIMIT // mib} MiB direct upload "
            f"({100 * self.zipped_bytes / ZIPPED_LIMIT:.0f}%)",
            f"  unzipped {self.unzipped_bytes / mib:7.1f} MiB of {UNZIPPED_LIMIT // mib} MiB "
            f"({100 * self.unzipped_bytes / UNZIPPED_LIMIT:.0f}%)",
            f"  {self.files} files, {len(self.requirements)} dependencies, "
            + (f"bytecode by {self.bytecode}" if self.bytecode else "sources only (no bytecode)"),
            f"  sha256 {self.sha256}",
        ]
        if self.uncompilable:
            lines.append(
                f"  {len(self.uncompilable)} .py files do not compile (importing them would fail anyway): "
                + ", ".join(self.uncompilable[:5])
            )
        lines.extend(f"  warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)


def runtime_requirements(project_root: Path = PROJECT_ROOT) -> list[str]:
    """`[project].dependencies` of pyproject.toml, without what the Lambda runtime provides."""
    with (project_root / "pyproject.toml").open("rb") as handle:
        dependencies: list[str] = tomllib.load(handle)["project"]["dependencies"]
    return [dep for dep in dependencies if canonicalize_name(Requirement(dep).name) not in RUNTIME_PROVIDED]


def python_platform(python_version: str, architecture: str) -> str:
    """uv's `--python-platform` for a Lambda runtime, e.g. `aarch64-manylinux_2_34`."""
    if python_version not in _MANYLINUX:
        raise PackageError(f"Python {python_version} is not a supported Lambda runtime ({', '.join(_MANYLINUX)})")
    if architecture not in _MACHINE:
        raise PackageError(f"architecture {architecture!r} must be x86_64 or arm64")
    return f"{_MACHINE[architecture]}-{_MANYLINUX[python_version]}"


def commit_time(project_root: Path = PROJECT_ROOT) -> datetime | None:
    """The committer time of HEAD (resolution cut-off), or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(project_root), "log", "-1", "--format=%cI"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return datetime.fromisoformat(out) if out else None


def find_interpreter(python_version: str) -> Path | None:
    """A CPython of exactly `python_version` on this machine (PATH, then pyenv), or None."""
    name = f"python{python_version}"
    candidates = [shutil.which(name)]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{python_version}.*/bin/{name}"), reverse=True)]
    for candidate in candidates:
        if candidate and _interpreter_version(Path(candidate)) == python_version:
            return Path(candidate)
    return None


def build_package(
    output: Path,
    *,
    python_version: str = "3.12",
    architecture: Architecture = "x86_64",
    project_root: Path = PROJECT_ROOT,
    include_dependencies: bool = True,
    compile_bytecode: bool = True,
    bytecode_python: Path | None = None,
    exclude_newer: datetime | Literal["commit"] | None = "commit",
    find_links: Sequence[Path] = (),
    offline: bool = False,
) -> PackageReport:
    """Build the Lambda zip at `output` and return what went into it.

    `find_links` + `offline` install from local wheels only (tests, air-gapped builds);
    `exclude_newer="commit"` resolves as of HEAD's commit time (None: the newest releases).
    """
    platform = python_platform(python_version, architecture)
    interpreter: Path | None = None
    if compile_bytecode:
        interpreter = bytecode_python or find_interpreter(python_version)
        if bytecode_python is not None and _interpreter_version(bytecode_python) != python_version:
            raise PackageError(f"{bytecode_python} is not Python {python_version}; its bytecode would not load")
    cutoff = commit_time(project_root) if exclude_newer == "commit" else exclude_newer

    with tempfile.TemporaryDirectory(prefix="floe-package-") as scratch:
        stage = Path(scratch) / "stage"
        stage.mkdir()
        pins: list[str] = []
        if include_dependencies:
            pins = _resolve(
                runtime_requirements(project_root),
                python_version=python_version,
                platform=platform,
                cutoff=cutoff,
                find_links=find_links,
                offline=offline,
            )
            _install(
                pins,
                stage,
                python_version=python_version,
                platform=platform,
                find_links=find_links,
                offline=offline,
            )
        _copy_project(project_root, stage)
        _check_contents(stage)
        uncompilable: tuple[str, ...] = ()
        if interpreter is not None:
            uncompilable = _compile(interpreter, stage)
        unzipped = sum(path.stat().st_size for path in stage.rglob("*") if path.is_file())
        if unzipped > UNZIPPED_LIMIT:
            raise PackageError(f"{unzipped} bytes unzipped exceeds Lambda's {UNZIPPED_LIMIT}-byte limit")
        files = _write_zip(stage, output)

    data = output.read_bytes()
    warnings: list[str] = []
    if len(data) > ZIPPED_LIMIT:
        warnings.append("over the 50 MB direct-upload limit: upload the zip to S3 and deploy it from there")
    if compile_bytecode and interpreter is None:
        warnings.append(f"no Python {python_version} found: shipped sources only (slower cold starts)")
    return PackageReport(
        path=output,
        architecture=architecture,
        python_version=python_version,
        platform=platform,
        sha256=hashlib.sha256(data).hexdigest(),
        zipped_bytes=len(data),
        unzipped_bytes=unzipped,
        files=files,
        requirements=tuple(pins),
        bytecode=f"{interpreter} ({python_version})" if interpreter else None,
        uncompilable=uncompilable,
        warnings=tuple(warnings),
    )


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise PackageError("uv is needed to build the package (it is installed in the project's .venv)")
    return found


def _index_options(find_links: Sequence[Path], offline: bool) -> list[str]:
    options = ["--no-config"]
    for link in find_links:
        options += ["--find-links", str(link)]
    if offline:
        options += ["--no-index", "--offline"]
    return options


def _run_uv(arguments: list[str], what: str) -> str:
    result = subprocess.run([_uv(), *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageError(f"{what} failed:\n{result.stderr.strip()[-4000:]}")
    return result.stdout


def _resolve(
    requirements: list[str],
    *,
    python_version: str,
    platform: str,
    cutoff: datetime | None,
    find_links: Sequence[Path],
    offline: bool,
) -> list[str]:
    """Pinned `name==version` lines for the target platform, minus what the runtime provides."""
    with tempfile.NamedTemporaryFile("w", suffix=".in", delete=False) as handle:
        handle.write("\n".join(requirements) + "\n")
    try:
        arguments = ["pip", "compile", handle.name, "--quiet", "--no-header", "--no-annotate"]
        arguments += [
            "--python-version",
            python_version,
            "--python-platform",
            platform,
            "--only-binary",
            ":all:",
        ]
        if cutoff is not None:
            arguments += ["--exclude-newer", cutoff.isoformat()]
        out = _run_uv(arguments + _index_options(find_links, offline), "resolving the runtime dependencies")
    finally:
        Path(handle.name).unlink()
    pins = []
    for line in out.splitlines():
        match = _PIN.match(line.strip())
        if match and canonicalize_name(match.group(1)) not in RUNTIME_PROVIDED:
            pins.append(f"{canonicalize_name(match.group(1))}=={match.group(3)}")
    return sorted(pins)


def _install(
    pins: list[str],
    stage: Path,
    *,
    python_version: str,
    platform: str,
    find_links: Sequence[Path],
    offline: bool,
) -> None:
    if not pins:
        return
    arguments = ["pip", "install", "--quiet", "--target", str(stage), "--no-deps", "--link-mode", "copy"]
    arguments += ["--python-version", python_version, "--python-platform", platform, "--only-binary", ":all:"]
    _run_uv(arguments + _index_options(find_links, offline) + pins, "installing the runtime dependencies")
    # Console scripts carry the build machine's interpreter path in their shebang; Lambda runs none.
    shutil.rmtree(stage / "bin", ignore_errors=True)
    (stage / ".lock").unlink(missing_ok=True)  # uv's lock file for the target directory
    for cache in sorted(stage.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)


def _copy_project(project_root: Path, stage: Path) -> None:
    for package, folder in PROJECT_PACKAGES.items():
        source = project_root / folder
        if not (source / "__init__.py").is_file():
            raise PackageError(f"{source} is not a package (no __init__.py)")
        if (stage / package).exists():
            raise PackageError(f"a dependency already installed a top-level {package!r}")
        patterns = ("*.py", *PACKAGE_DATA.get(package, ()))
        for pattern in patterns:
            for path in sorted(source.rglob(pattern)):
                relative = path.relative_to(source)
                if "__pycache__" in relative.parts or not path.is_file():
                    continue
                target = stage / package / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)


def _check_contents(stage: Path) -> None:
    if not (stage / HANDLER_FILE).is_file():
        raise PackageError(f"{HANDLER_FILE} is missing: the Lambda's handler is loader.handler.handler")
    top_level = {canonicalize_name(path.name.split("-")[0]).replace("-", "_") for path in stage.iterdir()}
    shipped = sorted(top_level & {name.replace("-", "_") for name in NEVER_SHIPPED})
    if shipped:
        raise PackageError(f"test-only or runtime-provided packages would be shipped: {', '.join(shipped)}")


def _interpreter_version(interpreter: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(interpreter), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _compile(interpreter: Path, stage: Path) -> tuple[str, ...]:
    """Hash-based .pyc for every module, one process, fixed order (deterministic bytes)."""
    result = subprocess.run(
        [str(interpreter), "-I", "-c", _COMPILE_SCRIPT, str(stage), _TASK_ROOT],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PackageError(f"compiling bytecode with {interpreter} failed:\n{result.stderr.strip()[-2000:]}")
    return tuple(line for line in result.stdout.splitlines() if line)


def _write_zip(stage: Path, output: Path) -> int:
    paths = sorted((path.relative_to(stage).as_posix(), path) for path in stage.rglob("*") if not path.is_dir())
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(partial, "w") as archive:
        for name, path in paths:
            if path.is_symlink():
                raise PackageError(f"{name} is a symbolic link; the zip would not reproduce it")
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.create_system = 3  # Unix, so external_attr is read as a mode
            info.external_attr = _FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    partial.replace(output)
    return len(paths)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `floe package`."""
    parser.add_argument("output", type=Path, help="where to write the zip, e.g. dist/floe-x86_64.zip")
    parser.add_argument("--python-version", default="3.12", choices=["3.12", "3.13"])
    parser.add_argument("--architecture", default="x86_64", choices=["x86_64", "arm64"])
    parser.add_argument("--bytecode-python", type=Path, default=None, help="interpreter of the target version")
    parser.add_argument("--no-bytecode", action="store_true", help="ship sources only")


def command(args: argparse.Namespace) -> int:
    """`floe package`: build the artifact and print its size against Lambda's limits."""
    report = build_package(  # a PackageError reaches the CLI's error boundary (floe/boundary.py)
        args.output,
        python_version=args.python_version,
        architecture=args.architecture,
        compile_bytecode=not args.no_bytecode,
        bytecode_python=args.bytecode_python,
    )
    print(report.summary())
    return 0

"""The Lambda artifact builder.

Most tests build a small fixture project from two local wheels: the same resolve/install/compile/zip
code, offline and fast. The last test builds the real x86_64 artifact twice from PyPI (~20 s each) and
checks the bytes match; arm64 and Python 3.13 are the same code with other wheels
(docs/operations.md, "Build the artifact").
"""

from __future__ import annotations

import base64
import hashlib
import marshal
import os
import sys
import tomllib
import zipfile
from pathlib import Path
from types import CodeType

import pytest

from floe import lambda_package
from floe.lambda_package import UNZIPPED_LIMIT, ZIPPED_LIMIT, PackageError, build_package

ROOT = Path(__file__).resolve().parents[1]
HERE_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def _wheel(directory: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> None:
    """A minimal, valid pure-Python wheel (so the test needs no index and no build backend)."""
    dist_info = f"{name}-{version}.dist-info"
    contents = dict(files)
    contents[f"{dist_info}/METADATA"] = "\n".join(
        ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    )
    contents[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: floe-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    contents[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    directory.mkdir()
    # The fixture dependency pulls in boto3, as snowflake-connector-python does: it must be left out.
    _wheel(directory, "floe_fixture_dep", "1.0", {"floe_fixture_dep/__init__.py": "VALUE = 1\n"}, ("boto3",))
    _wheel(directory, "boto3", "1.40.0", {"boto3/__init__.py": ""})
    return directory


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    files = {
        "pyproject.toml": (
            '[project]\nname = "fixture"\nversion = "0"\ndependencies = ["floe-fixture-dep", "boto3>=1"]\n'
        ),
        "kernel/__init__.py": "",
        "kernel/config.py": "SETTING = 1\n",
        "kernel/notes.txt": "not package data\n",
        "kernel/__pycache__/stale.cpython-311.pyc": "stale",
        "provisioner/__init__.py": "",
        "floe/__init__.py": "",
        "floe/cli.py": "",
        "lambda/loader/__init__.py": "",
        "lambda/loader/handler.py": "def handler(event, context):\n    return {'ok': True}\n",
        "sql_templates/__init__.py": "",
        "sql_templates/pipe.sql": "CREATE PIPE {{ name | ident }};\n",
        "devstack/__init__.py": "",
        "tests/test_x.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _build(project: Path, wheels: Path, output: Path) -> lambda_package.PackageReport:
    return build_package(
        output,
        python_version=HERE_VERSION,
        architecture="x86_64",
        project_root=project,
        bytecode_python=Path(sys.executable),
        exclude_newer=None,
        find_links=[wheels],
        offline=True,
    )


def test_runtime_requirements_come_from_pyproject_without_the_sdk() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        declared = tomllib.load(handle)["project"]["dependencies"]
    requirements = lambda_package.runtime_requirements(ROOT)
    assert [dep for dep in declared if not dep.startswith("boto3")] == requirements
    assert any(dep.startswith("snowflake-connector-python") for dep in requirements)


def test_project_packages_mirror_pyproject() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        setuptools = tomllib.load(handle)["tool"]["setuptools"]
    assert set(lambda_package.PROJECT_PACKAGES) <= set(setuptools["packages"])
    for package, folder in lambda_package.PROJECT_PACKAGES.items():
        assert setuptools.get("package-dir", {}).get(package, package) == folder
    assert {k: list(v) for k, v in lambda_package.PACKAGE_DATA.items()} == setuptools["package-data"]


@pytest.mark.parametrize(
    ("python_version", "architecture", "platform"),
    [
        ("3.12", "x86_64", "x86_64-manylinux_2_34"),
        ("3.13", "arm64", "aarch64-manylinux_2_34"),
        ("3.11", "arm64", "aarch64-manylinux_2_17"),
    ],
)
def test_wheels_are_chosen_for_the_runtimes_glibc(python_version: str, architecture: str, platform: str) -> None:
    assert lambda_package.python_platform(python_version, architecture) == platform


def test_unknown_runtimes_are_refused() -> None:
    with pytest.raises(PackageError, match=r"3\.10"):
        lambda_package.python_platform("3.10", "x86_64")
    with pytest.raises(PackageError, match="i386"):
        lambda_package.python_platform("3.12", "i386")


def test_the_zip_holds_the_handler_templates_and_runtime_dependencies_only(
    project: Path, wheels: Path, tmp_path: Path
) -> None:
    report = _build(project, wheels, tmp_path / "out.zip")
    with zipfile.ZipFile(report.path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert {
        "loader/handler.py",
        f"loader/__pycache__/handler.cpython-{HERE_VERSION.replace('.', '')}.pyc",
        "kernel/config.py",
        "provisioner/__init__.py",
        "sql_templates/pipe.sql",
        "floe_fixture_dep/__init__.py",
        "floe_fixture_dep-1.0.dist-info/METADATA",
    } <= set(names)
    top_level = {name.split("/")[0] for name in names}
    assert not top_level & {"boto3", "boto3-1.40.0.dist-info", "floe", "devstack", "tests", "bin", ".lock"}
    assert not [name for name in names if name.endswith((".txt", "stale.cpython-311.pyc"))]
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    assert report.requirements == ("floe-fixture-dep==1.0",)
    assert report.files == len(names)
    assert report.zipped_bytes == report.path.stat().st_size
    assert "MiB of 50 MiB direct upload" in report.summary()


def test_two_builds_are_byte_identical(project: Path, wheels: Path, tmp_path: Path) -> None:
    first = _build(project, wheels, tmp_path / "first.zip")
    # A later checkout of the same commit: other mtimes, another output path.
    for path in project.rglob("*"):
        os.utime(path, (1_900_000_000, 1_900_000_000))
    second = _build(project, wheels, tmp_path / "second" / "floe.zip")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256


def test_bytecode_is_hash_based_and_names_lambda_paths(project: Path, wheels: Path, tmp_path: Path) -> None:
    report = _build(project, wheels, tmp_path / "out.zip")
    tag = HERE_VERSION.replace(".", "")
    with zipfile.ZipFile(report.path) as archive:
        pyc = archive.read(f"loader/__pycache__/handler.cpython-{tag}.pyc")
    # PEP 552 flags: 0b01 = hash-based, not checked against the source (mtimes are meaningless here).
    assert int.from_bytes(pyc[4:8], "little") == 0b01
    code = marshal.loads(pyc[16:])  # noqa: S302 -- bytes this test just built
    assert isinstance(code, CodeType)
    assert code.co_filename == "/var/task/loader/handler.py"


def test_a_missing_handler_is_refused(project: Path, wheels: Path, tmp_path: Path) -> None:
    (project / "lambda/loader/handler.py").unlink()
    with pytest.raises(PackageError, match=r"loader/handler\.py is missing"):
        _build(project, wheels, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_bytecode_of_another_python_version_is_refused(project: Path, tmp_path: Path) -> None:
    other = "3.13" if HERE_VERSION != "3.13" else "3.12"
    with pytest.raises(PackageError, match=f"is not Python {other}"):
        build_package(
            tmp_path / "out.zip",
            python_version=other,
            project_root=project,
            include_dependencies=False,
            bytecode_python=Path(sys.executable),
        )


def test_the_real_tree_ships_handler_templates_and_no_test_code(tmp_path: Path) -> None:
    """Floe's own part of the artifact (dependencies are covered by the fixture build above)."""
    report = build_package(tmp_path / "floe.zip", project_root=ROOT, include_dependencies=False, compile_bytecode=False)
    with zipfile.ZipFile(report.path) as archive:
        names = set(archive.namelist())
    assert "loader/handler.py" in names
    templates = {f"sql_templates/{path.name}" for path in (ROOT / "sql_templates").glob("*.sql")}
    assert templates <= names
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"kernel", "loader", "provisioner", "sql_templates"}
    assert not top_level & {"floe", "devstack", "bench", "tests"}  # the face, the local stack, the rest


def test_the_real_artifact_builds_twice_to_the_same_bytes_within_lambdas_limits(tmp_path: Path) -> None:
    """The deployable zip itself (x86_64, Python 3.12): its dependencies come from PyPI as of HEAD's commit
    time, so two builds of one commit are byte-identical. Prints the size report (`pytest -s`)."""
    first = build_package(tmp_path / "first.zip", python_version="3.12", architecture="x86_64")
    second = build_package(tmp_path / "second.zip", python_version="3.12", architecture="x86_64")
    print(first.summary())
    assert first.sha256 == second.sha256
    assert (tmp_path / "first.zip").read_bytes() == (tmp_path / "second.zip").read_bytes()
    assert first.zipped_bytes < ZIPPED_LIMIT
    assert first.unzipped_bytes < UNZIPPED_LIMIT
    with zipfile.ZipFile(first.path) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {"kernel", "loader", "provisioner", "sql_templates", "snowflake", "psycopg"} <= tops
    assert not tops & {"boto3", "botocore", "moto", "fakesnow", "pytest", "devstack", "tests"}

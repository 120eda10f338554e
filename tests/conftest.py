"""Fixtures that start the local stack: each server once per session, its state reset per test.

Servers are real (moto over HTTP, a PostgreSQL cluster, the Snowflake stand-in over the connector's
protocol, the core-API receiver); imports are lazy so a unit test of the pure core starts none of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Every test talks to the local stack, whose Snowflake stand-in speaks plain http (kernel.config refuses it
# elsewhere).
os.environ["FLOE_LOCAL_STACK"] = "1"

if TYPE_CHECKING:
    from devstack.aws import MotoServer
    from devstack.core_api import CoreReceiver
    from devstack.snowflake.server import StandIn


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--standin-reading",
        default="today",
        metavar="NAME",
        help="the Snowflake stand-in's reading where the docs are silent (devstack/snowflake/readings.py); "
        "'all' runs every test that uses the stand-in once per reading",
    )


def pytest_configure(config: pytest.Config) -> None:
    from devstack.snowflake.readings import PRESETS

    chosen = config.getoption("--standin-reading")
    if chosen != "all" and chosen not in PRESETS:
        raise pytest.UsageError(f"--standin-reading {chosen}: choose 'all' or one of {', '.join(PRESETS)}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`--standin-reading all`: every test reaching the stand-in server runs once per reading."""
    if "standin_reading" in metafunc.fixturenames and metafunc.config.getoption("--standin-reading") == "all":
        from devstack.snowflake.readings import PRESETS

        names = list(PRESETS)
        metafunc.parametrize("standin_reading", names, ids=names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def standin_reading(request: pytest.FixtureRequest) -> str:
    """The reading new stand-in accounts get: the --standin-reading option, or this test's parameter."""
    return str(getattr(request, "param", None) or request.config.getoption("--standin-reading"))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    from devstack.aws import MotoServer

    with MotoServer() as server:
        previous = {k: os.environ.get(k) for k in server.environment()}
        os.environ.update(server.environment())
        yield server
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def aws(moto_server: MotoServer) -> MotoServer:
    """The moto server, emptied before the test."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def aws_operations(aws: MotoServer) -> Iterator[list[str]]:
    """The AWS operations this test's thread sends through boto3's default session, in order. Observed,
    never changed; the stand-in shares the process and the session, but calls from its own threads."""
    import threading

    import boto3

    sent: list[str] = []
    test_thread = threading.current_thread()

    def record(model: Any, **_: Any) -> None:
        if threading.current_thread() is test_thread:
            sent.append(model.name)

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("before-call", record)
    yield sent
    session.events.unregister("before-call", record)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A real PostgreSQL: FLOE_TEST_PG_DSN if set, else a throwaway cluster (never skipped)."""
    if dsn := os.environ.get("FLOE_TEST_PG_DSN"):
        yield dsn
        return
    from devstack.postgres import TemporaryPostgres

    with TemporaryPostgres() as cluster:
        yield cluster.dsn


@pytest.fixture(params=["postgres", "sqlite"])
def store_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A DSN to an empty connection database: its own PostgreSQL schema, or a new SQLite file."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/connections.db"
        return
    from devstack.postgres import scratch_schema

    with scratch_schema(request.getfixturevalue("pg_dsn"), prefix="test") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def standin_server(moto_server: MotoServer, standin_reading: str) -> Iterator[StandIn]:
    from devstack.snowflake.server import StandIn

    with StandIn(aws_endpoint_url=moto_server.endpoint_url) as server:
        server.control.set_default_reading(standin_reading)
        yield server


@pytest.fixture
def standin(standin_server: StandIn, aws: MotoServer) -> StandIn:
    """The Snowflake stand-in with no accounts, over an empty moto."""
    standin_server.control.reset()
    return standin_server


@pytest.fixture
def edited_pipe_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Render from a copy of the templates whose pipe differs: a new template version, as after a release."""
    import jinja2

    from kernel import render

    copy = tmp_path / "templates"
    copy.mkdir()
    for path in (Path(render.__file__).resolve().parents[1] / "sql_templates").glob("*.sql"):
        (copy / path.name).write_text(path.read_text())
    pipe = copy / "pipe.sql"
    edited = pipe.read_text().replace("$1:sdk_version::VARCHAR,", "TRIM($1:sdk_version::VARCHAR),")
    assert edited != pipe.read_text()
    pipe.write_text(edited)
    environment = render.build_environment(jinja2.FileSystemLoader(copy))
    monkeypatch.setattr(render, "_environment", lambda: environment)


@pytest.fixture
def core_api() -> Iterator[CoreReceiver]:
    from devstack.core_api import CoreReceiver

    with CoreReceiver() as receiver:
        yield receiver

"""A throwaway PostgreSQL cluster for the tests and the local stack.

Prefers the machine's Debian binaries (`/usr/lib/postgresql/<major>/bin`): as root it runs them as the
`postgres` user through `runuser` (pg_ctl refuses root), otherwise directly. Without them it falls back
to `pgserver` (bundled binaries, Unix socket only). Never skips: a cluster that cannot start raises
`PostgresStartError` with the reason and the server log's tail.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
_START_ATTEMPTS = 3  # a free port can be taken between probing it and the server binding it
_COMMAND_TIMEOUT_S = 60
_LOG_TAIL_CHARS = 2000


class PostgresStartError(RuntimeError):
    """The throwaway cluster could not be started."""


def find_debian_bindir(root: Path = DEBIAN_ROOT) -> Path | None:
    """The newest `<root>/<major>/bin` holding initdb and pg_ctl, or None."""
    candidates = [
        path
        for path in root.glob("*/bin")
        if path.parent.name.isdigit() and (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]
    return max(candidates, key=lambda path: int(path.parent.name), default=None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class TemporaryPostgres:
    """`with TemporaryPostgres() as pg: pg.dsn` — started on enter, stopped and deleted on exit."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self._bin_dir = bin_dir
        self._tmp: Path | None = None
        self._dsn: str | None = None
        self._debian_bindir: Path | None = None
        self._pgserver: Any = None  # pgserver.PostgresServer when that fallback runs

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            raise RuntimeError("TemporaryPostgres is not running")
        return self._dsn

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._tmp is not None:
            raise RuntimeError("TemporaryPostgres is already started")
        self._tmp = Path(tempfile.mkdtemp(prefix="floe-pg-"))
        try:
            bindir = self._bin_dir or find_debian_bindir()
            self._dsn = self._start_pgserver() if bindir is None else self._start_debian(bindir)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server and delete its files; safe to call twice."""
        try:
            if self._debian_bindir is not None:
                self._stop_debian(self._debian_bindir)
            if self._pgserver is not None:
                self._pgserver.cleanup()
        finally:
            self._debian_bindir = self._pgserver = self._dsn = None
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    # -- Debian binaries ------------------------------------------------------------------------------

    @property
    def _data_dir(self) -> Path:
        assert self._tmp is not None
        return self._tmp / "data"

    @property
    def _log_file(self) -> Path:
        assert self._tmp is not None
        return self._tmp / "postgres.log"

    def _start_debian(self, bindir: Path) -> str:
        assert self._tmp is not None
        password = secrets.token_urlsafe(24)
        pwfile = self._tmp / "pwfile"
        pwfile.write_text(password)
        if _is_root():
            shutil.chown(self._tmp, SERVICE_USER, SERVICE_USER)
            shutil.chown(pwfile, SERVICE_USER, SERVICE_USER)
        cluster = ["-D", str(self._data_dir), "--no-sync", "-E", "UTF8", "--locale=C"]
        # TCP needs the password (other local users can reach the port); the socket dir is private.
        auth = ["-U", "postgres", "--pwfile", str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256"]
        self._run(bindir / "initdb", [*cluster, *auth])
        pwfile.unlink()
        self._debian_bindir = bindir  # from here on, stop() must look for a running server
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            if self._pg_ctl_start(bindir, port):
                return f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{port}/postgres"
            if "could not bind" not in self._log_tail():
                break
        raise PostgresStartError(f"pg_ctl start failed; server log:\n{self._log_tail()}")

    def _pg_ctl_start(self, bindir: Path, port: int) -> bool:
        assert self._tmp is not None
        server_options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {shlex.quote(str(self._tmp))}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        args = ["-D", str(self._data_dir), "-l", str(self._log_file), "-w", "-t", "30"]
        try:
            self._run(bindir / "pg_ctl", [*args, "-o", server_options, "start"])
        except PostgresStartError:
            return False
        return True

    def _stop_debian(self, bindir: Path) -> None:
        if not (self._data_dir / "postmaster.pid").exists():
            return
        stop = ["-D", str(self._data_dir), "-w", "-t", "30", "stop", "-m"]
        try:
            self._run(bindir / "pg_ctl", [*stop, "fast"])
        except PostgresStartError:
            self._run(bindir / "pg_ctl", [*stop, "immediate"])

    def _run(self, program: Path, args: Sequence[str]) -> None:
        prefix = ["runuser", "-u", SERVICE_USER, "--"] if _is_root() else []
        command = [*prefix, str(program), *args]
        try:
            result = subprocess.run(
                command,
                cwd=self._tmp,
                capture_output=True,
                text=True,
                timeout=_COMMAND_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresStartError(f"{program.name} could not run: {exc}") from exc
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()[-_LOG_TAIL_CHARS:]
            raise PostgresStartError(f"{program.name} exited {result.returncode}: {output}")

    def _log_tail(self) -> str:
        try:
            return self._log_file.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
        except OSError:
            return "(no server log)"

    # -- pgserver fallback ----------------------------------------------------------------------------

    def _start_pgserver(self) -> str:
        assert self._tmp is not None
        try:
            from pgserver.postgres_server import get_server
        except ImportError as exc:
            raise PostgresStartError(
                f"no PostgreSQL binaries under {DEBIAN_ROOT}, and pgserver is not installed"
            ) from exc
        try:
            self._pgserver = get_server(self._tmp / "pgdata", cleanup_mode="delete")
            uri: str = self._pgserver.get_uri()
        except Exception as exc:
            raise PostgresStartError(f"pgserver could not start PostgreSQL: {exc}") from exc
        return uri


def _is_root() -> bool:
    return os.geteuid() == 0


@contextmanager
def scratch_schema(dsn: str, prefix: str = "scratch") -> Iterator[str]:
    """Create an empty schema; yield a DSN whose search_path is it alone; drop it afterwards.

    Lets tests (or several devstack users) share one cluster without seeing each other's tables.
    """
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield with_search_path(dsn, name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def with_search_path(dsn: str, schema: str) -> str:
    """The URL DSN with libpq `options` setting search_path (keeps any other query parameters)."""
    parts = urlsplit(dsn)
    option = "options=" + quote(f"-c search_path={schema}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))

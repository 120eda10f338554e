"""The connection database as configured: the DSN from Secrets Manager (cached, re-read once when the
database refuses the login), and failures that name their kind, never the DSN or the driver's text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest

from devstack.aws import MotoServer
from kernel import dsn as dsn_module
from kernel.config import ConfigError, Settings
from kernel.connections import StoreUnavailable, open_store
from kernel.dsn import open_configured_store
from kernel.errors import FloeError

PASSWORD = "FLOE-CANARY-DB-PASSWORD"


@pytest.fixture(autouse=True)
def fresh_process() -> Iterator[None]:
    dsn_module._dsns.clear()
    yield
    dsn_module._dsns.clear()


@pytest.mark.parametrize(
    ("dsn", "kind"),
    [
        (f"postgresql://floe:{PASSWORD}%zz@127.0.0.1/db", "malformed DSN"),
        (f"postgresql://floe:{PASSWORD}@127.0.0.1:1/db?sslmode=bogus", "malformed DSN"),
        (f"postgresql://floe:{PASSWORD}@[::1/db", "malformed DSN"),
        (f"postgresql://floe:{PASSWORD}@127.0.0.1:1/db", "unreachable"),
    ],
)
def test_a_bad_dsn_names_its_kind_and_never_the_dsn(dsn: str, kind: str) -> None:
    """A malformed DSN is a configuration error (no retry fixes it); an unreachable database is transient."""
    expected: type[FloeError] = ConfigError if kind == "malformed DSN" else StoreUnavailable
    with pytest.raises(expected) as refused:
        open_store(dsn)
    assert refused.value.transient is (kind == "unreachable")
    verb = "check" if kind == "unreachable" else "fix"
    assert str(refused.value) == (
        f"cannot connect to the connections database ({kind}): {verb} FLOE_CONNECTIONS_DSN(_SECRET)"
    )
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def test_the_dsn_is_read_once_and_again_only_when_the_login_is_refused(
    aws: MotoServer, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="floe/dsn", SecretString=pg_dsn)
    reads: list[str] = []
    read = dsn_module._read

    def counted(secret: str) -> str:
        reads.append(secret)
        return read(secret)

    monkeypatch.setattr(dsn_module, "_read", counted)
    settings = Settings(connections_dsn_secret="floe/dsn")
    for _ in range(2):
        open_configured_store(settings).close()
    assert reads == ["floe/dsn"]  # cached for the process

    dsn_module._dsns["floe/dsn"] = with_password(pg_dsn, PASSWORD)  # the password was rotated since
    open_configured_store(settings).close()
    assert reads == ["floe/dsn", "floe/dsn"]  # re-read once, and the login works

    secrets.put_secret_value(SecretId="floe/dsn", SecretString=with_password(pg_dsn, PASSWORD))
    dsn_module._dsns.clear()
    with pytest.raises(StoreUnavailable, match=r"\(authentication failed\)") as refused:
        open_configured_store(settings)
    assert PASSWORD not in str(refused.value)
    assert reads == ["floe/dsn"] * 3  # a fresh read that is refused is not read again


def test_an_unreadable_dsn_secret_is_a_config_error(aws: MotoServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read FLOE_CONNECTIONS_DSN_SECRET \(ResourceNotFoundException\)"):
        open_configured_store(Settings(connections_dsn_secret="floe/missing"))
    boto3.client("secretsmanager").create_secret(Name="floe/dsn", SecretString=f"sqlite:///{tmp_path}/c.db")
    open_configured_store(Settings(connections_dsn_secret="floe/dsn")).close()
    assert (tmp_path / "c.db").is_file()

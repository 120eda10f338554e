"""`floe doctor --live`: without credentials it names the variables and exits 2; its probe, run against
the stand-in under each reading, identifies that reading (provisioner.readings_probe + floe.doctor)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.scenario import onboard
from devstack.snowflake.readings import PRESETS, matching
from devstack.snowflake.server import StandIn
from floe.cli import main
from floe.doctor import probe_connection, table
from kernel import config
from kernel.connections import open_store


def test_without_credentials_it_names_the_variables_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ACCOUNT", "USER", "WAREHOUSE", "PASSWORD", "PRIVATE_KEY_PATH"):
        monkeypatch.delenv(f"FLOE_LIVE_SNOWFLAKE_{name}", raising=False)
    monkeypatch.delenv("FLOE_LIVE_S3_BUCKET", raising=False)
    assert main(["doctor", "--live"]) == 2
    err = capsys.readouterr().err
    for name in ("FLOE_LIVE_SNOWFLAKE_ACCOUNT", "FLOE_LIVE_SNOWFLAKE_USER", "FLOE_LIVE_SNOWFLAKE_WAREHOUSE"):
        assert name in err
    assert "FLOE_LIVE_S3_BUCKET" in err
    assert "FLOE_LIVE_SNOWFLAKE_PASSWORD or FLOE_LIVE_SNOWFLAKE_PRIVATE_KEY_PATH" in err


@pytest.mark.parametrize("reading", list(PRESETS))
def test_the_probe_identifies_the_reading_it_runs_against(
    reading: str, standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "FLOE_CONNECTIONS_DSN": f"sqlite:///{tmp_path}/connections.db",
        "FLOE_SNOWFLAKE_HOST": standin.host,
        "FLOE_SNOWFLAKE_PORT": str(standin.port),
        "FLOE_SNOWFLAKE_PROTOCOL": "http",
        "FLOE_AWS_ACCOUNT_ID": "123456789012",
    }.items():
        monkeypatch.setenv(key, value)
    settings = config.load()
    with open_store(settings.connections_dsn) as store:
        store.migrate()
        connection = onboard("doctor", "DOCTOR_ACCOUNT", standin=standin, settings=settings, store=store)
    standin.control.set_reading("DOCTOR_ACCOUNT", reading)
    standin.control.configure("DOCTOR_ACCOUNT", load_delay_seconds=1.0)  # a queued file stays queued a while
    found = probe_connection(settings, connection, timeout=60, poll_seconds=0.3)
    assert None not in found.axes.values(), found.details
    assert matching(found.axes) == [reading], found.details
    rows = table(found)
    assert rows[-1] == {"question": "every answer together", "observed": "-", "readings": reading}
    # The stand-in has no QUERY_HISTORY: the warehouse questions say so rather than guess.
    assert all(value.startswith("not observable") for value in found.warehouses.values()), found.warehouses

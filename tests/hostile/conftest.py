"""Fixtures of the hostile-input suite (the servers come from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.core_api import CoreReceiver
from devstack.snowflake.server import StandIn

from .stack import Stack, build


@pytest.fixture
def stack(standin: StandIn, core_api: CoreReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """A ready connection for `acme` in its own stand-in account, over an empty moto."""
    return build(standin, core_api, tmp_path, monkeypatch)

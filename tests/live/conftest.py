"""The live suite runs only when FLOE_LIVE_SNOWFLAKE_ACCOUNT is set: otherwise its tests are deselected
(they do not apply), never skipped. docs/live.md says what it needs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in Path(str(item.path)).parents]
    if os.environ.get("FLOE_LIVE_SNOWFLAKE_ACCOUNT"):
        for item in mine:
            item.add_marker(pytest.mark.live)
            item.add_marker(pytest.mark.timeout(1800))
        return
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]

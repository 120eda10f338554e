"""Settings from the environment: defaults, and a clear error naming the variable."""

from __future__ import annotations

import pytest

from kernel.config import ConfigError, Settings, load


def test_defaults_are_the_documented_ones() -> None:
    settings = load({})
    assert settings == Settings()
    assert settings.live_prefix_for("acme") == "live/acme/"
    assert settings.dead_letter_prefix_for("acme") == "dead-letter/acme/"


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"FLOE_BUCKET": "Bad_Bucket"}, "FLOE_BUCKET"),
        ({"FLOE_LIVE_PREFIX": "live/"}, "FLOE_LIVE_PREFIX"),
        ({"FLOE_LIVE_PREFIX": "/live/{org_id}/"}, "FLOE_LIVE_PREFIX"),
        ({"FLOE_DEAD_LETTER_PREFIX": "dl/{org_id}"}, "FLOE_DEAD_LETTER_PREFIX"),
        ({"FLOE_DEAD_LETTER_PREFIX": "live/dl/{org_id}/"}, "FLOE_DEAD_LETTER_PREFIX"),
        ({"FLOE_RETRY_ATTEMPTS": "0"}, "FLOE_RETRY_ATTEMPTS"),
        ({"FLOE_RETRY_ATTEMPTS": "three"}, "FLOE_RETRY_ATTEMPTS"),
        ({"FLOE_SNOWFLAKE_PORT": "70000"}, "FLOE_SNOWFLAKE_PORT"),
        ({"FLOE_SNOWFLAKE_PROTOCOL": "ftp"}, "FLOE_SNOWFLAKE_PROTOCOL"),
        ({"FLOE_CORE_API_URL": "file:///etc/passwd"}, "FLOE_CORE_API_URL"),
        ({"FLOE_LAYOUT": "{name}.json"}, "FLOE_LAYOUT"),
        ({"FLOE_IAM_ROLE_PATH": "floe"}, "FLOE_IAM_ROLE_PATH"),
    ],
)
def test_a_bad_setting_fails_at_start_naming_its_variable(environ: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load(environ)


@pytest.mark.parametrize("org_id", ["../x", "a/b", "ACME", "", "a" * 64, "%2f", "acme/"])
def test_an_organisation_id_cannot_escape_its_prefix(org_id: str) -> None:
    with pytest.raises(ConfigError, match="organisation id"):
        Settings().live_prefix_for(org_id)

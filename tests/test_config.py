"""Settings from the environment: defaults, and a clear error naming the variable."""

from __future__ import annotations

import pytest

from kernel.config import ConfigError, Settings, load

LOCAL = {"FLOE_LOCAL_STACK": "1"}


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
        ({"FLOE_CONNECTIONS_DSN": "sqlite:///x.db", "FLOE_CONNECTIONS_DSN_SECRET": "floe/dsn"}, "not both"),
        ({"FLOE_SNOWFLAKE_PROTOCOL": "http"}, "FLOE_LOCAL_STACK"),
        ({"FLOE_CORE_API_URL": "http://core/runs", "FLOE_CORE_API_TOKEN_SECRET": "t"}, "https"),
        ({"FLOE_LOADER_DATA_ROLE_ARN": "floe-loader-data"}, "FLOE_LOADER_DATA_ROLE_ARN"),
        ({"FLOE_IAM_ROLE_BOUNDARY_ARN": "arn:aws:iam::123456789012:role/not-a-policy"}, "FLOE_IAM_ROLE_BOUNDARY_ARN"),
    ],
)
def test_a_bad_setting_fails_at_start_naming_its_variable(environ: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load(environ)


@pytest.mark.parametrize("org_id", ["../x", "a/b", "ACME", "", "a" * 64, "%2f", "acme/"])
def test_an_organisation_id_cannot_escape_its_prefix(org_id: str) -> None:
    with pytest.raises(ConfigError, match="organisation id"):
        Settings().live_prefix_for(org_id)


def test_the_local_stack_may_use_http_and_aws_may_scope_by_role() -> None:
    role = "arn:aws:iam::123456789012:role/floe-loader-data"
    settings = load({**LOCAL, "FLOE_SNOWFLAKE_PROTOCOL": "http", "FLOE_LOADER_DATA_ROLE_ARN": role})
    assert (settings.snowflake_protocol, settings.loader_data_role_arn) == ("http", role)
    secret = load({"FLOE_CONNECTIONS_DSN_SECRET": "floe/dsn", "FLOE_CORE_API_URL": "https://core/runs"})
    assert (secret.connections_dsn_secret, secret.core_api_url) == ("floe/dsn", "https://core/runs")


def test_a_malformed_setting_is_never_echoed_when_it_may_be_a_dsn() -> None:
    with pytest.raises(ConfigError) as refused:
        load({"FLOE_CONNECTIONS_DSN": "postgresql://u:CANARY@h/db", "FLOE_CONNECTIONS_DSN_SECRET": "floe/dsn"})
    assert "CANARY" not in str(refused.value)

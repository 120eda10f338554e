"""Settings from the environment, checked once at start: a bad value names its variable."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlparse

from kernel.errors import FloeError
from kernel.identifiers import AWS_ACCOUNT_PATTERN, BUCKET_PATTERN, ORG_ID_PATTERN
from kernel.layout import DEFAULT_LAYOUT

S3_MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
ROLE_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
POLICY_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:policy/[\w+=,.@/-]{1,512}")


N = TypeVar("N", int, float)


class ConfigError(FloeError):
    """A setting is missing or malformed; the message names the environment variable."""


class LoadMode(StrEnum):
    """How a connection tells Snowpipe about files and follows their loads (docs/architecture.md)."""

    REFRESH = "refresh"  # ALTER PIPE … REFRESH; COPY_HISTORY (a warehouse) at most once per settle interval
    REST = "rest"  # Snowpipe REST insertFiles / insertReport: no warehouse on the steady path


@dataclass(frozen=True)
class Settings:
    connections_dsn: str = "sqlite:///.floe/connections.db"
    connections_dsn_secret: str | None = None  # a Secrets Manager id; when set, the DSN is read from it
    bucket: str = "floe-events"
    live_prefix: str = "live/{org_id}/"
    dead_letter_prefix: str = "dead-letter/{org_id}/"
    iam_role_path: str = "/floe/snowflake/"
    iam_role_boundary_arn: str | None = None  # the permissions boundary `floe provision` gives each role
    secret_prefix: str = "floe/connections/"  # noqa: S105 - a name prefix, not a secret
    snowflake_host: str | None = None
    snowflake_port: int | None = None
    snowflake_protocol: str = "https"
    aws_account_id: str | None = None
    core_api_url: str | None = None
    core_api_token_secret: str | None = None
    loader_data_role_arn: str | None = None
    retry_attempts: int = 3
    time_margin_seconds: float = 20.0
    lease_seconds: float = 960.0
    poll_first_seconds: float = 15.0
    poll_max_seconds: float = 30.0
    follow_seconds: float = 180.0
    stranded_after_seconds: float = 3600.0
    load_retries: int = 3  # loads of a file whose load failed other than by its data (loader.retries)
    load_retry_backoff_seconds: float = 60.0
    layout: str = DEFAULT_LAYOUT
    load_mode: LoadMode = LoadMode.REFRESH
    settle_interval_seconds: float = 900.0

    def live_prefix_for(self, org_id: str) -> str:
        return _org_prefix(self.live_prefix, org_id)

    def dead_letter_prefix_for(self, org_id: str) -> str:
        return _org_prefix(self.dead_letter_prefix, org_id)


def _org_prefix(template: str, org_id: str) -> str:
    if not ORG_ID_PATTERN.fullmatch(org_id):
        raise ConfigError(f"organisation id {org_id[:80]!r} is not of the form {ORG_ID_PATTERN.pattern}")
    return template.format(org_id=org_id)


_PREFIX_TEMPLATE = re.compile(r"^(?:[a-z0-9=_-]+/)*?(?:[a-z0-9=_-]*\{org_id\}[a-z0-9=_-]*/)(?:[a-z0-9=_-]+/)*$")


def load(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    defaults = Settings()
    settings = Settings(
        connections_dsn=env.get("FLOE_CONNECTIONS_DSN", defaults.connections_dsn),
        connections_dsn_secret=_dsn_secret(env),
        bucket=_bucket(env.get("FLOE_BUCKET", defaults.bucket)),
        live_prefix=_prefix_template("FLOE_LIVE_PREFIX", env.get("FLOE_LIVE_PREFIX", defaults.live_prefix)),
        dead_letter_prefix=_prefix_template(
            "FLOE_DEAD_LETTER_PREFIX", env.get("FLOE_DEAD_LETTER_PREFIX", defaults.dead_letter_prefix)
        ),
        iam_role_path=_iam_path(env.get("FLOE_IAM_ROLE_PATH", defaults.iam_role_path)),
        iam_role_boundary_arn=_policy_arn(env.get("FLOE_IAM_ROLE_BOUNDARY_ARN") or None),
        secret_prefix=env.get("FLOE_SECRET_PREFIX", defaults.secret_prefix),
        snowflake_host=env.get("FLOE_SNOWFLAKE_HOST") or None,
        snowflake_port=_optional_int(env, "FLOE_SNOWFLAKE_PORT", 1, 65535),
        snowflake_protocol=_snowflake_protocol(env),
        aws_account_id=_aws_account(env.get("FLOE_AWS_ACCOUNT_ID") or None),
        core_api_url=_core_api_url(env),
        core_api_token_secret=env.get("FLOE_CORE_API_TOKEN_SECRET") or None,
        loader_data_role_arn=_role_arn(env.get("FLOE_LOADER_DATA_ROLE_ARN") or None),
        retry_attempts=_int(env, "FLOE_RETRY_ATTEMPTS", defaults.retry_attempts, 1, 10),
        time_margin_seconds=_float(env, "FLOE_TIME_MARGIN_SECONDS", defaults.time_margin_seconds, 0, 600),
        lease_seconds=_float(env, "FLOE_LEASE_SECONDS", defaults.lease_seconds, 1, 86400),
        poll_first_seconds=_float(env, "FLOE_POLL_FIRST_SECONDS", defaults.poll_first_seconds, 0, 300),
        poll_max_seconds=_float(env, "FLOE_POLL_MAX_SECONDS", defaults.poll_max_seconds, 0.01, 300),
        follow_seconds=_float(env, "FLOE_FOLLOW_SECONDS", defaults.follow_seconds, 1, 900),
        stranded_after_seconds=_float(
            env, "FLOE_STRANDED_AFTER_SECONDS", defaults.stranded_after_seconds, 60, 6 * 86400
        ),
        load_retries=_int(env, "FLOE_LOAD_RETRIES", defaults.load_retries, 1, 10),
        load_retry_backoff_seconds=_float(
            env, "FLOE_LOAD_RETRY_BACKOFF_SECONDS", defaults.load_retry_backoff_seconds, 0, 3600
        ),
        layout=_layout(env.get("FLOE_LAYOUT", defaults.layout)),
        load_mode=LoadMode(_choice(env, "FLOE_LOAD_MODE", tuple(LoadMode), defaults.load_mode)),
        settle_interval_seconds=_float(env, "FLOE_SETTLE_INTERVAL", defaults.settle_interval_seconds, 0, 86400),
    )
    live_root = settings.live_prefix.split("{org_id}")[0]
    dead_root = settings.dead_letter_prefix.split("{org_id}")[0]
    if not live_root or not dead_root or live_root.startswith(dead_root) or dead_root.startswith(live_root):
        # A dead-lettered object under a stage URL would be loaded again by the next REFRESH.
        raise ConfigError("FLOE_LIVE_PREFIX and FLOE_DEAD_LETTER_PREFIX must start with different top folders")
    return settings


def _dsn_secret(env: Mapping[str, str]) -> str | None:
    """One source of the DSN: a DSN in the environment next to a secret would leave it unclear which is used."""
    secret = env.get("FLOE_CONNECTIONS_DSN_SECRET") or None
    if secret and env.get("FLOE_CONNECTIONS_DSN"):
        raise ConfigError("set FLOE_CONNECTIONS_DSN (local use) or FLOE_CONNECTIONS_DSN_SECRET, not both")
    return secret


def _snowflake_protocol(env: Mapping[str, str]) -> str:
    """Plain http would send the login's JWT and every result in clear: only the local stand-in speaks it."""
    protocol = _choice(env, "FLOE_SNOWFLAKE_PROTOCOL", ("https", "http"), "https")
    if protocol == "http" and env.get("FLOE_LOCAL_STACK") != "1":
        raise ConfigError("FLOE_SNOWFLAKE_PROTOCOL=http is only for the local stack (set FLOE_LOCAL_STACK=1 there)")
    return protocol


def _core_api_url(env: Mapping[str, str]) -> str | None:
    """The bearer token must not cross the network in clear."""
    url = _optional_url(env, "FLOE_CORE_API_URL")
    if url and env.get("FLOE_CORE_API_TOKEN_SECRET") and urlparse(url).scheme != "https":
        raise ConfigError("FLOE_CORE_API_URL must be https:// when FLOE_CORE_API_TOKEN_SECRET is set")
    return url


def _role_arn(value: str | None) -> str | None:
    if value is not None and not ROLE_ARN_PATTERN.fullmatch(value):
        raise ConfigError(f"FLOE_LOADER_DATA_ROLE_ARN={value[:200]!r} must be an IAM role ARN")
    return value


def _policy_arn(value: str | None) -> str | None:
    if value is not None and not POLICY_ARN_PATTERN.fullmatch(value):
        raise ConfigError(f"FLOE_IAM_ROLE_BOUNDARY_ARN={value[:200]!r} must be an IAM policy ARN")
    return value


def _bucket(value: str) -> str:
    if not BUCKET_PATTERN.fullmatch(value):
        raise ConfigError(f"FLOE_BUCKET={value!r} is not an S3 bucket name")
    return value


def _prefix_template(name: str, value: str) -> str:
    if not _PREFIX_TEMPLATE.fullmatch(value) or value.count("{org_id}") != 1:
        raise ConfigError(f"{name}={value!r} must be folders ending in '/', one of them holding {{org_id}}")
    return value


def _aws_account(value: str | None) -> str | None:
    if value is not None and not AWS_ACCOUNT_PATTERN.fullmatch(value):
        raise ConfigError(f"FLOE_AWS_ACCOUNT_ID={value!r} must be the 12-digit AWS account id")
    return value


def aws_account_id(settings: Settings) -> str:
    """Our AWS account (the per-organisation IAM roles live in it): the setting, else STS asks."""
    if settings.aws_account_id:
        return settings.aws_account_id
    import boto3

    account: str = boto3.client("sts").get_caller_identity()["Account"]
    return account


def _layout(value: str) -> str:
    fields = re.findall(r"\{(\w*)\}", value)
    literal = re.sub(r"\{\w+\}", "", value)
    well_formed = value and not value.startswith(("{", "/")) and value.endswith(".json.gz")
    if not well_formed or "name" not in fields or not re.fullmatch(r"[A-Za-z0-9_=./-]*", literal):
        raise ConfigError(
            f"FLOE_LAYOUT={value!r} must start with a folder, hold {{name}}, end in .json.gz and use only "
            "letters, digits and _ = . / - outside its {placeholders}"
        )
    return value


def _iam_path(value: str) -> str:
    if not re.fullmatch(r"/(?:[A-Za-z0-9_+=,.@-]+/)*", value):
        raise ConfigError(f"FLOE_IAM_ROLE_PATH={value!r} must look like /floe/snowflake/")
    return value


def _number(env: Mapping[str, str], name: str, default: N, low: N, high: N, *, parse: Callable[[str], N]) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} must lie between {low} and {high}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, parse=int)


def _optional_int(env: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    return _int(env, name, 0, low, high) if env.get(name) else None


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, parse=float)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def _optional_url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if not value:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL")
    return value

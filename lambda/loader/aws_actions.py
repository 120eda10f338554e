"""Every AWS call the loader, the dispatcher and the operator commands make, as IAM actions and scopes.

This module is the single source of truth for least privilege: `terraform/iam.tf` writes one policy
statement per entry below (its `sid` is the entry's key) and `tests/test_terraform.py` checks that the
statements grant exactly these actions, on exactly the resource each entry's scope names.

Actions alone are not enough: the loader may `s3:PutObject` under the dead-letter prefix and (to
restage) under the live prefix, but nowhere else. `requests_for` turns one botocore call with its
parameters into the (action, scope) pairs AWS will authorise, and `is_allowed` checks them against a
grant table, so a test that records a real tick's calls can check resources too.

Scopes: `prefix:<root>` (s3:ListBucket with s3:prefix under that root folder), `object:<root>` (objects
under it), `secret:connections` (names under FLOE_SECRET_PREFIX), `secret:core-api-token`,
`logs:own` (the function's own log group), `function:loader`, `role:snowflake` (roles under
FLOE_IAM_ROLE_PATH), `role:loader-data` (FLOE_LOADER_DATA_ROLE_ARN), `secret:connections-dsn`
(FLOE_CONNECTIONS_DSN_SECRET). Roots are `live` and `dead-letter` (FLOE_LIVE_PREFIX / FLOE_DEAD_LETTER_PREFIX).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from kernel.config import Settings

# The per-connection loader (Lambda execution role). No IAM, no KMS, no bucket settings: the
# per-organisation roles Snowflake assumes are created by `floe provision`, run by an operator.
LOADER_ACTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        # ListObjectsV2 of an organisation's live prefix.
        "ListLivePrefixes": frozenset({"s3:ListBucket"}),
        # GetObject: CopyObject needs read on its source (the loader never reads bodies itself);
        # DeleteObject: what DeleteObjects checks, once per key.
        "MoveLiveObjects": frozenset({"s3:GetObject", "s3:DeleteObject"}),
        # Restaging copies a live object onto itself (new LastModified, so REFRESH's 7-day window
        # sees it again): a CopyObject whose destination is in the live prefix.
        "RestageLiveObjects": frozenset({"s3:PutObject"}),
        # Dead-letter copies and their manifests.
        "WriteDeadLetters": frozenset({"s3:PutObject"}),
        # Connections' Snowflake credentials, read on every invocation.
        "ReadConnectionSecrets": frozenset({"secretsmanager:GetSecretValue"}),
        # The bearer token for the core API's metrics endpoint (only when one is configured).
        "ReadCoreApiToken": frozenset({"secretsmanager:GetSecretValue"}),
        # The Lambda runtime writes stdout/stderr to the function's own log group with these.
        "WriteOwnLogs": frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}),
    }
)
LOADER_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        "ListLivePrefixes": "prefix:live",
        "MoveLiveObjects": "object:live",
        "RestageLiveObjects": "object:live",
        "WriteDeadLetters": "object:dead-letter",
        "ReadConnectionSecrets": "secret:connections",
        "ReadCoreApiToken": "secret:core-api-token",
        "WriteOwnLogs": "logs:own",
    }
)

# The loader's grants live on two roles (terraform/iam.tf). Its execution role holds only what is needed
# outside a tick; every tick assumes the data-access role (FLOE_LOADER_DATA_ROLE_ARN) with a session
# policy narrowing it to one organisation's prefixes and one connection's secret, and makes its S3 and
# connection-secret calls with those credentials.
LOADER_DATA_SIDS = frozenset(
    {"ListLivePrefixes", "MoveLiveObjects", "RestageLiveObjects", "WriteDeadLetters", "ReadConnectionSecrets"}
)
LOADER_DATA_ACTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {sid: actions for sid, actions in LOADER_ACTIONS.items() if sid in LOADER_DATA_SIDS}
)
LOADER_DATA_SCOPES: Mapping[str, str] = MappingProxyType(
    {sid: scope for sid, scope in LOADER_SCOPES.items() if sid in LOADER_DATA_SIDS}
)
LOADER_EXECUTION_ACTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        **{sid: actions for sid, actions in LOADER_ACTIONS.items() if sid not in LOADER_DATA_SIDS},
        # The per-tick session on the data-access role.
        "AssumeDataRole": frozenset({"sts:AssumeRole"}),
        # FLOE_CONNECTIONS_DSN_SECRET: the connection database's DSN, read before the tick's session.
        "ReadConnectionsDsn": frozenset({"secretsmanager:GetSecretValue"}),
    }
)
LOADER_EXECUTION_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        **{sid: scope for sid, scope in LOADER_SCOPES.items() if sid not in LOADER_DATA_SIDS},
        "AssumeDataRole": "role:loader-data",
        "ReadConnectionsDsn": "secret:connections-dsn",
    }
)

# `loader.dispatch.handler`: invokes the loader once per active connection (optional schedule).
DISPATCHER_ACTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "InvokeLoader": frozenset({"lambda:InvokeFunction"}),
        # FLOE_CONNECTIONS_DSN_SECRET, to list the active connections.
        "ReadConnectionsDsn": frozenset({"secretsmanager:GetSecretValue"}),
        "WriteOwnLogs": frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}),
    }
)
DISPATCHER_SCOPES: Mapping[str, str] = MappingProxyType(
    {"InvokeLoader": "function:loader", "ReadConnectionsDsn": "secret:connections-dsn", "WriteOwnLogs": "logs:own"}
)

# A person running `floe provision` / `floe dead-letters` / `floe replay` (an optional managed policy
# the module outputs; never attached to a Lambda).
OPERATOR_ACTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "ManageSnowflakeRoles": frozenset(
            {
                "iam:CreateRole",
                "iam:GetRole",
                "iam:DeleteRole",
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:ListRolePolicies",
                "iam:UpdateAssumeRolePolicy",
            }
        ),
        # A connection's key pair under FLOE_SECRET_PREFIX only: `floe provision` looks it up, reads
        # its public half, or creates it; rotation overwrites it.
        "ManageConnectionSecrets": frozenset(
            {
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:CreateSecret",
                "secretsmanager:PutSecretValue",
            }
        ),
        # `floe dead-letters` lists objects and reads manifests; `floe replay` heads and copies each
        # dead letter, deletes it, and writes a replay record under the dead-letter prefix.
        "ListDeadLetterPrefixes": frozenset({"s3:ListBucket"}),
        "ManageDeadLetters": frozenset({"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}),
        # `floe replay` writes each dead letter back under a new name in the live prefix.
        "ReplayIntoLive": frozenset({"s3:PutObject"}),
    }
)
OPERATOR_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        "ManageSnowflakeRoles": "role:snowflake",
        "ManageConnectionSecrets": "secret:connections",
        "ListDeadLetterPrefixes": "prefix:dead-letter",
        "ManageDeadLetters": "object:dead-letter",
        "ReplayIntoLive": "object:live",
    }
)

# botocore (service, operation) -> IAM actions. Only operations Floe makes (or plausibly will) are
# listed; an unknown one raises, so a new call cannot pass unnoticed.
_OPERATION_ACTIONS: Mapping[tuple[str, str], frozenset[str]] = MappingProxyType(
    {
        ("s3", "ListObjectsV2"): frozenset({"s3:ListBucket"}),
        ("s3", "ListObjects"): frozenset({"s3:ListBucket"}),
        ("s3", "HeadObject"): frozenset({"s3:GetObject"}),
        ("s3", "GetObject"): frozenset({"s3:GetObject"}),
        # Read on the source, write on the destination.
        ("s3", "CopyObject"): frozenset({"s3:GetObject", "s3:PutObject"}),
        ("s3", "PutObject"): frozenset({"s3:PutObject"}),
        ("s3", "DeleteObject"): frozenset({"s3:DeleteObject"}),
        # No s3:DeleteObjects action exists: AWS checks s3:DeleteObject for every key in the batch.
        ("s3", "DeleteObjects"): frozenset({"s3:DeleteObject"}),
        # Our account id when FLOE_AWS_ACCOUNT_ID is unset: AWS requires no permission for it.
        ("sts", "GetCallerIdentity"): frozenset(),
        ("secretsmanager", "GetSecretValue"): frozenset({"secretsmanager:GetSecretValue"}),
        ("secretsmanager", "DescribeSecret"): frozenset({"secretsmanager:DescribeSecret"}),
        ("secretsmanager", "CreateSecret"): frozenset({"secretsmanager:CreateSecret"}),
        ("secretsmanager", "PutSecretValue"): frozenset({"secretsmanager:PutSecretValue"}),
        ("lambda", "Invoke"): frozenset({"lambda:InvokeFunction"}),
        ("iam", "CreateRole"): frozenset({"iam:CreateRole"}),
        ("iam", "GetRole"): frozenset({"iam:GetRole"}),
        ("iam", "DeleteRole"): frozenset({"iam:DeleteRole"}),
        ("iam", "PutRolePolicy"): frozenset({"iam:PutRolePolicy"}),
        ("iam", "DeleteRolePolicy"): frozenset({"iam:DeleteRolePolicy"}),
        ("iam", "ListRolePolicies"): frozenset({"iam:ListRolePolicies"}),
        ("iam", "UpdateAssumeRolePolicy"): frozenset({"iam:UpdateAssumeRolePolicy"}),
        ("sts", "AssumeRole"): frozenset({"sts:AssumeRole"}),
    }
)

Request = tuple[str, str]  # (IAM action, scope)


def all_actions(grants: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The union of a grant table's actions (e.g. everything the loader's role may do)."""
    return frozenset().union(*grants.values())


def iam_actions_for(service: str, operation: str) -> frozenset[str]:
    """The IAM actions AWS authorises for one botocore operation, e.g. ("s3", "CopyObject").

    `service` is botocore's service name (`client.meta.service_model.service_name`), `operation` the
    operation's model name as botocore's `before-call.<service>.<operation>` events spell it.
    """
    try:
        return _OPERATION_ACTIONS[(service, operation)]
    except KeyError:
        raise KeyError(
            f"no IAM mapping for {service}.{operation}: add it to loader/aws_actions.py, grant it in "
            "terraform/iam.tf if it is really needed, and say why"
        ) from None


def is_granted(service: str, operation: str, grants: Mapping[str, frozenset[str]] = LOADER_ACTIONS) -> bool:
    """Whether every action the operation needs appears in the grant table (actions only)."""
    return iam_actions_for(service, operation) <= all_actions(grants)


def requests_for(service: str, operation: str, params: Mapping[str, Any], settings: Settings) -> frozenset[Request]:
    """The (action, scope) pairs AWS authorises for one call with its botocore parameters."""
    actions = iam_actions_for(service, operation)
    if service == "s3":
        return frozenset(_s3_requests(operation, params, settings))
    if service == "secretsmanager":
        secret = str(params.get("SecretId") or params.get("Name") or "")
        if settings.core_api_token_secret and secret == settings.core_api_token_secret:
            scope = "secret:core-api-token"
        elif settings.connections_dsn_secret and secret == settings.connections_dsn_secret:
            scope = "secret:connections-dsn"
        elif secret.startswith(settings.secret_prefix):
            scope = "secret:connections"
        else:
            scope = f"secret:other:{secret}"
        return frozenset((action, scope) for action in actions)
    scope = {"lambda": "function:loader", "iam": "role:snowflake", "sts": "role:loader-data"}[service]
    return frozenset((action, scope) for action in actions)


def is_allowed(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    settings: Settings,
    *,
    grants: Mapping[str, frozenset[str]] = LOADER_ACTIONS,
    scopes: Mapping[str, str] = LOADER_SCOPES,
) -> bool:
    """Whether the grant table allows this exact call (actions and the resources they touch)."""
    allowed = {(action, scopes[sid]) for sid, actions in grants.items() for action in actions}
    return requests_for(service, operation, params, settings) <= allowed


def _root(key: str, settings: Settings) -> str:
    if key.startswith(settings.live_prefix.split("{org_id}")[0]):
        return "live"
    if key.startswith(settings.dead_letter_prefix.split("{org_id}")[0]):
        return "dead-letter"
    return f"other:{key}"


def _s3_requests(operation: str, params: Mapping[str, Any], settings: Settings) -> list[Request]:
    if operation in {"ListObjectsV2", "ListObjects"}:
        return [("s3:ListBucket", f"prefix:{_root(str(params.get('Prefix', '')), settings)}")]
    if operation in {"GetObject", "HeadObject"}:
        return [("s3:GetObject", f"object:{_root(params['Key'], settings)}")]
    if operation == "PutObject":
        return [("s3:PutObject", f"object:{_root(params['Key'], settings)}")]
    if operation == "CopyObject":
        source = params["CopySource"]
        # CopySource is {"Bucket", "Key"} or the string "bucket/key".
        source_key = source["Key"] if isinstance(source, Mapping) else str(source).lstrip("/").split("/", 1)[1]
        return [
            ("s3:GetObject", f"object:{_root(source_key, settings)}"),
            ("s3:PutObject", f"object:{_root(params['Key'], settings)}"),
        ]
    if operation == "DeleteObject":
        return [("s3:DeleteObject", f"object:{_root(params['Key'], settings)}")]
    # DeleteObjects
    return [("s3:DeleteObject", f"object:{_root(item['Key'], settings)}") for item in params["Delete"]["Objects"]]

"""The Terraform module, read with python-hcl2 (no Terraform CLI needed).

Checks that every .tf file parses, that each role's policy grants exactly what
`loader.aws_actions` lists (no more, no fewer, and on the intended resources), and that the bucket,
environment and alarms match what the loader's code relies on. checkov runs separately
(`make check-terraform`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from kernel import config, logs
from loader import aws_actions

ROOT = Path(__file__).resolve().parents[1]
TERRAFORM = ROOT / "terraform"
TF_FILES = sorted(TERRAFORM.glob("*.tf"))

_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)

Block = dict[str, Any]


def _parse(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = hcl2.load(handle, serialization_options=_OPTIONS)
    return parsed


@cache
def _module() -> dict[str, Any]:
    """All files merged: resource/data as {type: {name: body}}, variable/output as {name: body}."""
    module: dict[str, Any] = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}}
    for path in TF_FILES:
        parsed = _parse(path)
        for kind in ("resource", "data"):
            for entry in parsed.get(kind, []):
                for type_name, named in entry.items():
                    for name, body in named.items():
                        bucket = module[kind].setdefault(type_name, {})
                        assert name not in bucket, f"{kind} {type_name}.{name} defined twice"
                        bucket[name] = body
        for kind in ("variable", "output"):
            for entry in parsed.get(kind, []):
                module[kind].update(entry)
        for entry in parsed.get("locals", []):
            module["locals"].update(entry)
    return module


def _resource(type_name: str, name: str) -> Block:
    body: Block = _module()["resource"][type_name][name]
    return body


def _policy_document(name: str) -> Block:
    body: Block = _module()["data"]["aws_iam_policy_document"][name]
    return body


def _statements(document: Block) -> Iterator[Block]:
    """Static statements and the content of `dynamic "statement"` blocks (conditional ones)."""
    yield from document.get("statement", [])
    for dynamic in document.get("dynamic", []):
        for label, body in dynamic.items():
            if label == "statement":
                yield from body["content"]


def _grants(document: Block) -> dict[str, frozenset[str]]:
    grants: dict[str, frozenset[str]] = {}
    for statement in _statements(document):
        assert statement.get("effect", "Allow") == "Allow", statement
        assert "not_actions" not in statement, statement
        assert "not_resources" not in statement, statement
        sid = statement["sid"]
        assert sid not in grants, f"sid {sid} appears twice"
        grants[sid] = frozenset(statement["actions"])
    return grants


def _by_sid(document: Block) -> dict[str, Block]:
    return {statement["sid"]: statement for statement in _statements(document)}


# ------------------------------------------------------------------ parsing


def test_the_module_has_its_files() -> None:
    names = {path.name for path in TF_FILES}
    assert {
        "versions.tf",
        "variables.tf",
        "iam.tf",
        "lambda.tf",
        "bucket.tf",
        "alarms.tf",
        "outputs.tf",
    } <= names


@pytest.mark.parametrize("path", TF_FILES, ids=lambda path: path.name)
def test_every_tf_file_parses(path: Path) -> None:
    assert _parse(path), f"{path.name} parsed to nothing"


# ------------------------------------------------------------------ least privilege


def test_loader_policy_grants_exactly_the_loader_actions() -> None:
    assert _grants(_policy_document("loader")) == dict(aws_actions.LOADER_ACTIONS)


def test_dispatcher_policy_grants_exactly_the_dispatcher_actions() -> None:
    assert _grants(_policy_document("dispatcher")) == dict(aws_actions.DISPATCHER_ACTIONS)


def test_operator_policy_grants_exactly_the_operator_actions() -> None:
    assert _grants(_policy_document("operator")) == dict(aws_actions.OPERATOR_ACTIONS)


def test_loader_never_touches_iam_kms_or_buckets_settings() -> None:
    actions = aws_actions.all_actions(aws_actions.LOADER_ACTIONS)
    assert not {action for action in actions if action.split(":")[0] in {"iam", "kms", "sts"}}
    assert not {action for action in actions if action.startswith("s3:") and "Bucket" in action} - {"s3:ListBucket"}


def _scope_resources(log_group: str) -> dict[str, tuple[list[str], list[dict[str, Any]] | None]]:
    """What each scope of loader.aws_actions means in HCL: (resources, condition)."""

    def under(root: str) -> list[dict[str, Any]]:
        return [{"test": "StringLike", "variable": "s3:prefix", "values": [f"${{var.{root}}}*"]}]

    return {
        "prefix:live": (["${local.bucket_arn}"], under("live_root")),
        "prefix:dead-letter": (["${local.bucket_arn}"], under("dead_letter_root")),
        "object:live": (["${local.bucket_arn}/${var.live_root}*"], None),
        "object:dead-letter": (["${local.bucket_arn}/${var.dead_letter_root}*"], None),
        "secret:connections": (["${local.connection_secrets_arn}"], None),
        "secret:core-api-token": (["${statement.value}"], None),
        "logs:own": ([f"${{aws_cloudwatch_log_group.{log_group}.arn}}:*"], None),
        "function:loader": (["${aws_lambda_function.loader.arn}"], None),
        "role:snowflake": (["${local.snowflake_roles_arn}"], None),
    }


@pytest.mark.parametrize(
    ("document", "scopes", "log_group"),
    [
        ("loader", aws_actions.LOADER_SCOPES, "loader"),
        ("dispatcher", aws_actions.DISPATCHER_SCOPES, "dispatcher[0]"),
        ("operator", aws_actions.OPERATOR_SCOPES, "unused"),
    ],
)
def test_each_statement_is_scoped_as_aws_actions_says(document: str, scopes: Mapping[str, str], log_group: str) -> None:
    meaning = _scope_resources(log_group)
    statements = _by_sid(_policy_document(document))
    assert set(statements) == set(scopes)
    for sid, statement in statements.items():
        resources, condition = meaning[scopes[sid]]
        assert statement["resources"] == resources, sid
        assert statement.get("condition") == condition, sid


def test_scopes_resolve_to_real_arns() -> None:
    locals_ = _module()["locals"]
    assert locals_["bucket_arn"] == "arn:${local.partition}:s3:::${var.bucket_name}"
    # Secret ARNs end in -XXXXXX, so the name prefix needs the wildcard; nothing before it does.
    assert locals_["connection_secrets_arn"].endswith(":secret:${var.secret_prefix}*")
    assert locals_["snowflake_roles_arn"].endswith(":role${var.iam_role_path}*")


def test_core_api_token_statement_exists_only_with_a_token_secret() -> None:
    (dynamic,) = _policy_document("loader")["dynamic"]
    assert dynamic["statement"]["for_each"] == (
        "${var.core_api_token_secret_arn == null ? [] : [var.core_api_token_secret_arn]}"
    )


def test_the_loader_role_carries_only_its_own_policy() -> None:
    role = _resource("aws_iam_role", "loader")
    assert "inline_policy" not in role
    assert "managed_policy_arns" not in role
    attached: dict[str, str] = {}
    for type_name in ("aws_iam_role_policy", "aws_iam_role_policy_attachment", "aws_iam_policy_attachment"):
        for name, body in _module()["resource"].get(type_name, {}).items():
            if "aws_iam_role.loader." in str(body.get("role", "")) + str(body.get("roles", "")):
                attached[f"{type_name}.{name}"] = body.get("policy") or body.get("policy_arn")
    assert attached == {
        "aws_iam_role_policy.loader": "${data.aws_iam_policy_document.loader.json}",
        # The Lambda service's ENI permissions, only when the function runs in a VPC.
        "aws_iam_role_policy_attachment.loader_vpc": (
            "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
        ),
    }
    assert _resource("aws_iam_role_policy_attachment", "loader_vpc")["count"] == "${local.in_vpc ? 1 : 0}"


def test_the_loader_role_is_assumable_by_lambda_only() -> None:
    (statement,) = _statements(_policy_document("lambda_assume"))
    assert statement["actions"] == ["sts:AssumeRole"]
    assert statement["principals"] == [{"type": "Service", "identifiers": ["lambda.amazonaws.com"]}]


# ------------------------------------------------------------------ the operation map


@pytest.mark.parametrize(
    ("service", "operation", "expected"),
    [
        ("s3", "ListObjectsV2", {"s3:ListBucket"}),
        ("s3", "CopyObject", {"s3:GetObject", "s3:PutObject"}),
        ("s3", "DeleteObjects", {"s3:DeleteObject"}),
        ("s3", "PutObject", {"s3:PutObject"}),
        ("secretsmanager", "GetSecretValue", {"secretsmanager:GetSecretValue"}),
    ],
)
def test_a_ticks_operations_map_to_granted_actions(service: str, operation: str, expected: set[str]) -> None:
    assert aws_actions.iam_actions_for(service, operation) == expected
    assert aws_actions.is_granted(service, operation)


SETTINGS = config.Settings(core_api_token_secret="arn:aws:secretsmanager:eu-west-1:123456789012:secret:core-AbCdEf")
LIVE = {"Bucket": "floe-events", "Key": "live/acme/events/a.json.gz"}
DEAD = {"Bucket": "floe-events", "Key": "dead-letter/acme/objects/events/a.json.gz"}


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        ("s3", "ListObjectsV2", {"Bucket": "floe-events", "Prefix": "live/acme/"}),
        ("s3", "CopyObject", {**DEAD, "CopySource": LIVE}),
        ("s3", "CopyObject", {**LIVE, "CopySource": LIVE, "MetadataDirective": "REPLACE"}),
        ("s3", "PutObject", {"Bucket": "floe-events", "Key": "dead-letter/acme/manifests/r.json"}),
        ("s3", "DeleteObjects", {"Bucket": "floe-events", "Delete": {"Objects": [{"Key": LIVE["Key"]}]}}),
        ("secretsmanager", "GetSecretValue", {"SecretId": "floe/connections/c-1"}),
        ("secretsmanager", "GetSecretValue", {"SecretId": SETTINGS.core_api_token_secret}),
    ],
)
def test_a_ticks_calls_are_allowed_on_their_resources(service: str, operation: str, params: dict[str, Any]) -> None:
    assert aws_actions.is_allowed(service, operation, params, SETTINGS)


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        ("s3", "ListObjectsV2", {"Bucket": "floe-events", "Prefix": "dead-letter/acme/"}),
        ("s3", "ListObjectsV2", {"Bucket": "floe-events"}),
        ("s3", "HeadObject", DEAD),
        ("s3", "CopyObject", {**LIVE, "CopySource": "floe-events/dead-letter/acme/objects/a.json.gz"}),
        ("s3", "DeleteObject", DEAD),
        ("s3", "PutObject", {"Bucket": "floe-events", "Key": "elsewhere/x"}),
        ("secretsmanager", "GetSecretValue", {"SecretId": "prod/database"}),
        ("lambda", "Invoke", {"FunctionName": "floe-loader"}),
    ],
)
def test_calls_outside_the_loaders_scopes_are_refused(service: str, operation: str, params: dict[str, Any]) -> None:
    assert not aws_actions.is_allowed(service, operation, params, SETTINGS)


def test_replay_is_allowed_to_the_operator_only() -> None:
    replay = {**LIVE, "CopySource": DEAD}
    assert not aws_actions.is_allowed("s3", "CopyObject", replay, SETTINGS)
    grants, scopes = aws_actions.OPERATOR_ACTIONS, aws_actions.OPERATOR_SCOPES
    assert aws_actions.is_allowed("s3", "CopyObject", replay, SETTINGS, grants=grants, scopes=scopes)
    role = {"RoleName": "floe-acme", "Path": "/floe/snowflake/"}
    assert aws_actions.is_allowed("iam", "CreateRole", role, SETTINGS, grants=grants, scopes=scopes)


def test_operations_the_loader_must_not_make_are_refused() -> None:
    assert not aws_actions.is_granted("iam", "CreateRole")
    assert not aws_actions.is_granted("lambda", "Invoke")
    assert aws_actions.is_granted("lambda", "Invoke", aws_actions.DISPATCHER_ACTIONS)
    with pytest.raises(KeyError, match=r"s3\.PutBucketPolicy"):
        aws_actions.iam_actions_for("s3", "PutBucketPolicy")


# ------------------------------------------------------------------ what the code relies on


def test_variable_defaults_mirror_the_loaders_defaults() -> None:
    variables = _module()["variable"]
    settings = config.Settings()
    assert variables["live_root"]["default"] + "{org_id}/" == settings.live_prefix
    assert variables["dead_letter_root"]["default"] + "{org_id}/" == settings.dead_letter_prefix
    assert variables["secret_prefix"]["default"] == settings.secret_prefix
    assert variables["iam_role_path"]["default"] == settings.iam_role_path


def test_the_loader_environment_names_only_variables_the_code_reads() -> None:
    expression = _module()["locals"]["loader_environment"]
    names = set(re.findall(r"\b(FLOE_[A-Z_]+) =", expression))
    read = set(re.findall(r'"(FLOE_[A-Z_]+)"', (ROOT / "kernel" / "config.py").read_text()))
    assert names == {
        "FLOE_BUCKET",
        "FLOE_LIVE_PREFIX",
        "FLOE_DEAD_LETTER_PREFIX",
        "FLOE_SECRET_PREFIX",
        "FLOE_IAM_ROLE_PATH",
        "FLOE_CONNECTIONS_DSN",
        "FLOE_LEASE_SECONDS",
        "FLOE_CORE_API_URL",
        "FLOE_CORE_API_TOKEN_SECRET",
    }
    assert names <= read, f"set by Terraform but never read: {sorted(names - read)}"
    # The generated environment must be valid for the loader's own configuration check.
    env = {"FLOE_LIVE_PREFIX": "live/{org_id}/", "FLOE_DEAD_LETTER_PREFIX": "dead-letter/{org_id}/"}
    assert config.load(env).live_prefix_for("acme") == "live/acme/"


def test_the_dispatcher_environment_names_only_variables_the_code_reads() -> None:
    (environment,) = _resource("aws_lambda_function", "dispatcher")["environment"]
    sources = [ROOT / "kernel" / "config.py", ROOT / "lambda" / "loader" / "dispatch.py"]
    read = {name for path in sources for name in re.findall(r'"(FLOE_[A-Z_]+)"', path.read_text())}
    assert set(environment["variables"]) == {"FLOE_CONNECTIONS_DSN", "FLOE_LOADER_FUNCTION"}
    assert set(environment["variables"]) <= read


def test_the_lease_outlives_the_function() -> None:
    assert _module()["locals"]["lease_seconds"] == "${var.timeout_seconds + 60}"
    assert "FLOE_LEASE_SECONDS = tostring(local.lease_seconds)" in _module()["locals"]["loader_environment"]


def test_handlers_name_the_loader_package() -> None:
    assert _resource("aws_lambda_function", "loader")["handler"] == "loader.handler.handler"
    assert _resource("aws_lambda_function", "dispatcher")["handler"] == "loader.dispatch.handler"


def test_async_invocations_are_not_retried() -> None:
    assert _resource("aws_lambda_function_event_invoke_config", "loader")["maximum_retry_attempts"] == 0


def test_dead_letter_alarm_counts_the_run_reports_field() -> None:
    metric_filter = _resource("aws_cloudwatch_log_metric_filter", "dead_lettered_batches")
    assert metric_filter["pattern"] == "{ $.dead_lettered_batches > 0 }"
    assert metric_filter["log_group_name"] == "${aws_cloudwatch_log_group.loader.name}"
    (transformation,) = metric_filter["metric_transformation"]
    assert transformation["value"] == "$.dead_lettered_batches"
    alarm = _resource("aws_cloudwatch_metric_alarm", "dead_lettered")
    assert alarm["namespace"] == "${local.metrics_namespace}"
    assert alarm["threshold"] == 1


def test_failed_runs_are_counted_from_the_report_line() -> None:
    """The handler returns (does not raise) for a failed tick, so AWS/Lambda Errors would miss it."""
    metric_filter = _resource("aws_cloudwatch_log_metric_filter", "failed_runs")
    assert metric_filter["pattern"] == '{ $.report.status = "error" }'
    assert metric_filter["log_group_name"] == "${aws_cloudwatch_log_group.loader.name}"


def test_the_report_line_carries_the_fields_the_metric_filters_read() -> None:
    """A real (failed) run's log line, as CloudWatch will see it: the JSON paths both filters use."""
    from loader.handler import run
    from loader.tick import Deadline

    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    capture = Capture()
    logger = logging.getLogger("floe")
    logger.addHandler(capture)
    try:
        run({"not": "an event"}, Deadline.after(5))
    finally:
        logger.removeHandler(capture)
    lines = [json.loads(logs.JsonFormatter().format(r)) for r in records if r.getMessage() == "run report"]
    assert len(lines) == 1
    assert lines[0]["report"]["status"] == "error"
    assert lines[0]["dead_lettered_batches"] == 0


def test_bucket_settings_the_design_relies_on() -> None:
    (versioning,) = _resource("aws_s3_bucket_versioning", "events")["versioning_configuration"]
    assert versioning["status"] == "Enabled"
    lifecycle = _resource("aws_s3_bucket_lifecycle_configuration", "events")
    (expire_versions,) = lifecycle["rule"]
    assert expire_versions["noncurrent_version_expiration"] == [
        {"noncurrent_days": "${var.noncurrent_version_expiration_days}"}
    ]
    (dead_letters,) = lifecycle["dynamic"]
    assert dead_letters["rule"]["content"][0]["filter"] == [{"prefix": "${var.dead_letter_root}"}]
    (encryption,) = _resource("aws_s3_bucket_server_side_encryption_configuration", "events")["rule"]
    assert encryption["apply_server_side_encryption_by_default"] == [{"sse_algorithm": "AES256"}]
    public = _resource("aws_s3_bucket_public_access_block", "events")
    assert all(
        public[key] is True
        for key in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )
    tls = _by_sid(_policy_document("events_bucket"))["DenyInsecureTransport"]
    assert tls["effect"] == "Deny"
    assert tls["condition"] == [{"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}]


# ------------------------------------------------------------------ documentation


@pytest.mark.parametrize("kind", ["variable", "output"])
def test_every_variable_and_output_is_described(kind: str) -> None:
    entries: Mapping[str, Block] = _module()[kind]
    assert entries
    assert not [name for name, body in entries.items() if len(body.get("description", "")) < 10]


def test_every_checkov_skip_gives_a_reason() -> None:
    skips = [
        (path.name, line.strip())
        for path in TF_FILES
        for line in path.read_text(encoding="utf-8").splitlines()
        if "checkov:skip" in line
    ]
    assert skips
    bad = [skip for skip in skips if not re.fullmatch(r"#checkov:skip=CKV2?_AWS_\d+:.{20,}", skip[1])]
    assert not bad

"""The Terraform module, read with python-hcl2 (no Terraform CLI needed).

Checks that every .tf file parses, uses only argument names the AWS provider documents
(tests/data/aws_provider_arguments.json) and is laid out as `terraform fmt` leaves it; that each role's
policy grants exactly what `loader.aws_actions` lists (no more, no fewer, and on the intended
resources); and that the bucket, environment, alarms and dashboard match what the loader's code relies
on. checkov runs separately (`make checkov`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from kernel import config, logs
from loader import aws_actions
from tests.contracts import EMF_DIMENSIONS, EMF_METRICS, EMF_NAMESPACE

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


def _allows(document: Block) -> Iterator[Block]:
    """The Allow statements (Deny ones only narrow; tests check them by name)."""
    return (statement for statement in _statements(document) if statement.get("effect", "Allow") == "Allow")


def _grants(document: Block) -> dict[str, frozenset[str]]:
    grants: dict[str, frozenset[str]] = {}
    for statement in _allows(document):
        assert statement.get("effect", "Allow") == "Allow", statement
        assert "not_actions" not in statement, statement
        assert "not_resources" not in statement, statement
        sid = statement["sid"]
        assert sid not in grants, f"sid {sid} appears twice"
        grants[sid] = frozenset(statement["actions"])
    return grants


def _by_sid(document: Block, *, allows_only: bool = False) -> dict[str, Block]:
    statements = _allows(document) if allows_only else _statements(document)
    return {statement["sid"]: statement for statement in statements}


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
        "secrets.tf",
        "outputs.tf",
    } <= names


@pytest.mark.parametrize("path", TF_FILES, ids=lambda path: path.name)
def test_every_tf_file_parses(path: Path) -> None:
    assert _parse(path), f"{path.name} parsed to nothing"


# ------------------------------------------------------------------ provider arguments

_ARGUMENTS_FILE = ROOT / "tests" / "data" / "aws_provider_arguments.json"
_EXPLICIT = SerializationOptions(with_comments=False, explicit_blocks=True, strip_string_quotes=True)


@cache
def _provider_arguments() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_ARGUMENTS_FILE.read_text(encoding="utf-8"))
    return loaded


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def _check_body(body: Block, schema: Block, where: str, *, meta: Block | None = None) -> list[str]:
    """Unknown argument or block names in one block body (recursing into nested and dynamic blocks)."""
    problems: list[str] = []
    arguments = set(schema["arguments"]) | set(meta["arguments"] if meta else ())
    blocks: dict[str, Block] = {**schema["blocks"], **(meta["blocks"] if meta else {})}
    for key, value in body.items():
        if key == "__is_block__":
            continue
        # dynamic "label" { for_each = …, content { … } } parses to [{label: {for_each, content}}].
        if key == "dynamic" and isinstance(value, list):
            for entry in value:
                for label, dynamic in entry.items():
                    if label == "__is_block__":
                        continue
                    if label not in schema["blocks"]:
                        problems.append(f"{where}: dynamic block {label!r} is not a block of this type")
                        continue
                    for content in dynamic.get("content", []):
                        problems += _check_body(content, schema["blocks"][label], f"{where}.{label}")
            continue
        if _is_block(value):
            if key not in blocks:
                problems.append(f"{where}: unknown block {key!r}")
                continue
            for nested in value:
                problems += _check_body(nested, blocks[key], f"{where}.{key}")
        elif key not in arguments:
            problems.append(f"{where}: unknown argument {key!r}")
    return problems


def _argument_problems(parsed: dict[str, Any], filename: str) -> list[str]:
    known = _provider_arguments()
    problems: list[str] = []
    for kind in ("resource", "data"):
        for entry in parsed.get(kind, []):
            for type_name, named in entry.items():
                for name, body in named.items():
                    where = f"{filename}: {kind} {type_name}.{name}"
                    if type_name not in known[kind]:
                        problems.append(f"{where}: type not in {_ARGUMENTS_FILE.name}")
                        continue
                    problems += _check_body(body, known[kind][type_name], where, meta=known["meta"])
    return problems


def test_the_argument_list_names_its_sources() -> None:
    known = _provider_arguments()
    for kind in ("resource", "data"):
        for type_name, schema in known[kind].items():
            folder = "resources" if kind == "resource" else "data-sources"
            assert schema["url"] == (
                f"https://registry.terraform.io/providers/hashicorp/aws/latest/docs/{folder}/{type_name.removeprefix('aws_')}"
            )


@pytest.mark.parametrize("path", TF_FILES, ids=lambda path: path.name)
def test_every_argument_is_one_the_provider_documents(path: Path) -> None:
    parsed = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_EXPLICIT)
    assert _argument_problems(parsed, path.name) == []


@pytest.mark.parametrize(
    ("original", "misspelt", "expected"),
    [
        # top level
        (
            "  reserved_concurrent_executions = var",
            "  reserved_concurrency_executions = var",
            "reserved_concurrency_executions",
        ),
        # a nested block's argument
        ("      sse_algorithm = ", "      sse_algorythm = ", "sse_algorythm"),
        # a nested block's name
        (
            "    noncurrent_version_expiration {",
            "    noncurrent_versions_expiration {",
            "noncurrent_versions_expiration",
        ),
        # inside a dynamic block's content
        ("      subnet_ids         = var.vpc_subnet_ids", "      subnet_id          = var.vpc_subnet_ids", "subnet_id"),
        # a metric_query argument
        ("    return_data = true", "    returns_data = true", "returns_data"),
        # a data source's nested block
        ("      identifiers = [aws_iam_role.loader.arn]", "      identifier = [aws_iam_role.loader.arn]", "identifier"),
        # a meta-argument block
        ('      error_message = "live_root', '      error_msg = "live_root', "error_msg"),
    ],
)
def test_a_misspelt_argument_fails(original: str, misspelt: str, expected: str) -> None:
    """Feeds a mutated copy of the module to the check above: each misspelling must be reported."""
    texts = {path.name: path.read_text(encoding="utf-8") for path in TF_FILES}
    (filename,) = [name for name, text in texts.items() if original in text]
    mutated = texts[filename].replace(original, misspelt, 1)
    assert _argument_problems(hcl2.loads(texts[filename], serialization_options=_EXPLICIT), filename) == []
    problems = _argument_problems(hcl2.loads(mutated, serialization_options=_EXPLICIT), filename)
    assert len(problems) == 1, problems
    assert repr(expected) in problems[0]


def test_an_unlisted_resource_type_fails() -> None:
    parsed = hcl2.loads('resource "aws_s3_bucket_acl" "x" {\n  bucket = "b"\n}\n', serialization_options=_EXPLICIT)
    assert _argument_problems(parsed, "x.tf") == [
        "x.tf: resource aws_s3_bucket_acl.x: type not in aws_provider_arguments.json"
    ]


# ------------------------------------------------------------------ terraform fmt

_ASSIGN = re.compile(r'^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*|"[^"]*") *=(?!=)(?P<rest>.*)$')
_OPEN, _CLOSE = "([{", ")]}"


def _net_brackets(text: str) -> int:
    """Opening minus closing brackets outside string literals (and heredocs count as opening)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "#":
            break
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
    return depth + (1 if "<<" in text and not in_string else 0)


def fmt_problems(text: str) -> list[str]:
    """What `terraform fmt` would change in `=` alignment, indentation and whitespace.

    hclwrite aligns the `=` of consecutive one-line attributes (a blank line, a comment line, a block
    or a multi-line value ends the run) one space after the longest name; a line opening a multi-line
    value is not part of a run. Indentation is two spaces per nesting level.
    """
    problems: list[str] = []
    run: list[tuple[int, re.Match[str]]] = []

    def close() -> None:
        if run:
            width = max(len(m["indent"]) + len(m["key"]) for _, m in run)
            for number, m in run:
                equals_at = len(m.string) - len(m.string[m.string.index("=", len(m["indent"]) + len(m["key"])) :])
                if equals_at != width + 1:
                    problems.append(
                        f"line {number}: '=' at column {equals_at + 1}, terraform fmt puts it at {width + 2}"
                    )
        run.clear()

    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line != line.rstrip():
            problems.append(f"line {number}: trailing whitespace")
        stripped = line.strip()
        closes_first = stripped[:1] in _CLOSE
        expected_indent = 2 * (depth - 1 if closes_first else depth)
        if stripped and not stripped.startswith("<<") and len(line) - len(line.lstrip(" ")) != expected_indent:
            problems.append(f"line {number}: indented {len(line) - len(line.lstrip(' '))}, expected {expected_indent}")
        match = _ASSIGN.match(line)
        if match and _net_brackets(match["rest"]) == 0:
            if not match["rest"].startswith(" ") or match["rest"].startswith("  "):
                problems.append(f"line {number}: one space after '='")
            run.append((number, match))
        else:
            close()
        depth += _net_brackets(line)
    close()
    return problems


@pytest.mark.parametrize("path", TF_FILES, ids=lambda path: path.name)
def test_files_are_laid_out_as_terraform_fmt_leaves_them(path: Path) -> None:
    assert fmt_problems(path.read_text(encoding="utf-8")) == []


def test_the_fmt_check_sees_a_misaligned_run() -> None:
    good = "x {\n  a   = 1\n  bcd = 2\n  # c\n  e = 3\n  f = [\n    1,\n  ]\n}\n"
    assert fmt_problems(good) == []
    assert fmt_problems(good.replace("  a   = 1", "  a = 1")) == ["line 2: '=' at column 5, terraform fmt puts it at 7"]
    assert fmt_problems(good.replace("  e = 3", "  e  = 3"))
    assert fmt_problems(good.replace("  e = 3", "   e = 3"))


# ------------------------------------------------------------------ least privilege


def test_loader_execution_role_grants_exactly_the_execution_actions() -> None:
    assert _grants(_policy_document("loader")) == dict(aws_actions.LOADER_EXECUTION_ACTIONS)


def test_loader_data_role_grants_exactly_the_data_actions() -> None:
    assert _grants(_policy_document("loader_data")) == dict(aws_actions.LOADER_DATA_ACTIONS)


def test_the_two_loader_roles_together_hold_every_loader_grant() -> None:
    """The split moved grants between roles; it dropped none and added only the session and the DSN."""
    split = {**aws_actions.LOADER_EXECUTION_ACTIONS, **aws_actions.LOADER_DATA_ACTIONS}
    assert set(aws_actions.LOADER_EXECUTION_ACTIONS).isdisjoint(aws_actions.LOADER_DATA_ACTIONS)
    assert {sid: split[sid] for sid in aws_actions.LOADER_ACTIONS} == dict(aws_actions.LOADER_ACTIONS)
    assert set(split) - set(aws_actions.LOADER_ACTIONS) == {"AssumeDataRole", "ReadConnectionsDsn"}


def test_dispatcher_policy_grants_exactly_the_dispatcher_actions() -> None:
    assert _grants(_policy_document("dispatcher")) == dict(aws_actions.DISPATCHER_ACTIONS)


def test_operator_policy_grants_exactly_the_operator_actions() -> None:
    assert _grants(_policy_document("operator")) == dict(aws_actions.OPERATOR_ACTIONS)


def test_loader_never_touches_iam_kms_or_buckets_settings() -> None:
    actions = aws_actions.all_actions(aws_actions.LOADER_ACTIONS)
    assert not {action for action in actions if action.split(":")[0] in {"iam", "kms", "sts"}}
    assert not {action for action in actions if action.startswith("s3:") and "Bucket" in action} - {"s3:ListBucket"}
    data = aws_actions.all_actions(aws_actions.LOADER_DATA_ACTIONS)
    assert not {action for action in data if action.split(":")[0] in {"iam", "kms", "sts", "logs"}}
    # The execution role reaches the bucket and the connections' secrets only through the data role.
    execution = aws_actions.all_actions(aws_actions.LOADER_EXECUTION_ACTIONS)
    assert {action.split(":")[0] for action in execution} == {"sts", "secretsmanager", "logs"}
    assert {action for action in execution if action.startswith("sts:")} == {"sts:AssumeRole"}


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
        "secret:connections-dsn": (["${local.connections_dsn_secret_arn}"], None),
        "logs:own": ([f"${{aws_cloudwatch_log_group.{log_group}.arn}}:*"], None),
        "role:loader-data": (["${aws_iam_role.loader_data.arn}"], None),
        "function:loader": (["${aws_lambda_function.loader.arn}"], None),
        "role:snowflake": (["${local.snowflake_roles_arn}"], None),
    }


@pytest.mark.parametrize(
    ("document", "scopes", "log_group"),
    [
        ("loader", aws_actions.LOADER_EXECUTION_SCOPES, "loader"),
        ("loader_data", aws_actions.LOADER_DATA_SCOPES, "unused"),
        ("dispatcher", aws_actions.DISPATCHER_SCOPES, "dispatcher[0]"),
        ("operator", aws_actions.OPERATOR_SCOPES, "unused"),
    ],
)
def test_each_statement_is_scoped_as_aws_actions_says(document: str, scopes: Mapping[str, str], log_group: str) -> None:
    meaning = _scope_resources(log_group)
    statements = _by_sid(_policy_document(document), allows_only=True)
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


def test_the_data_role_is_assumable_by_the_loaders_execution_role_only() -> None:
    role = _resource("aws_iam_role", "loader_data")
    assert role["name"] == "${local.loader_name}-data"  # floe-loader-data with the default name_prefix
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.loader_data_trust.json}"
    (statement,) = _statements(_policy_document("loader_data_trust"))
    assert statement.get("effect", "Allow") == "Allow"
    assert statement["actions"] == ["sts:AssumeRole"]  # no session tags: the session policy scopes it
    assert statement["principals"] == [{"type": "AWS", "identifiers": ["${aws_iam_role.loader.arn}"]}]
    assert "condition" not in statement


def test_the_data_role_carries_only_its_own_policy() -> None:
    role = _resource("aws_iam_role", "loader_data")
    assert "inline_policy" not in role
    assert "managed_policy_arns" not in role
    assert "permissions_boundary" not in role
    attached = {
        f"{type_name}.{name}": body.get("policy") or body.get("policy_arn")
        for type_name in ("aws_iam_role_policy", "aws_iam_role_policy_attachment", "aws_iam_policy_attachment")
        for name, body in _module()["resource"].get(type_name, {}).items()
        if "aws_iam_role.loader_data." in str(body.get("role", "")) + str(body.get("roles", ""))
    }
    assert attached == {"aws_iam_role_policy.loader_data": "${data.aws_iam_policy_document.loader_data.json}"}


# The contract with the loader's code (docs/operations.md, "Per-organisation sessions"): each tick calls
# sts:AssumeRole on FLOE_LOADER_DATA_ROLE_ARN, RoleSessionName floe-<org_id>, with this session policy.
def _session_policy(bucket: str, org: str, connection_secret_arn_prefix: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"live/{org}/*"]}},
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": f"arn:aws:s3:::{bucket}/live/{org}/*",
            },
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject"],
                "Resource": f"arn:aws:s3:::{bucket}/dead-letter/{org}/*",
            },
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                # Secret ARNs end in -XXXXXX: "*" would let connection c-1's session read c-10's.
                "Resource": f"{connection_secret_arn_prefix}-??????",
            },
        ],
    }


def test_the_session_policy_contract_fits_the_sts_limit_and_stays_inside_the_data_role() -> None:
    """A session policy may only narrow; every action it names must be one the data role holds (or is
    harmless without it), and it must fit AWS's 2,048-character packed limit for a long org id."""
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:floe/connections/" + "c" * 64
    policy = _session_policy("b" * 63, "o" * 64, secret)
    assert len(json.dumps(policy, separators=(",", ":"))) < 2048
    role_actions = aws_actions.all_actions(aws_actions.LOADER_DATA_ACTIONS)
    named = set()
    for statement in policy["Statement"]:
        actions = statement["Action"]
        named |= {actions} if isinstance(actions, str) else set(actions)
    # s3:GetObject on dead letters is in the contract but not in the role: the session cannot use it
    # (intersection), and today's loader never reads a dead letter back.
    assert named == role_actions


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


def _config_reads() -> set[str]:
    sources = [ROOT / "kernel" / "config.py", ROOT / "lambda" / "loader" / "dispatch.py"]
    return {name for path in sources for name in re.findall(r'"(FLOE_[A-Z_]+)"', path.read_text())}


def test_the_loader_environment_names_only_variables_the_code_reads() -> None:
    expression = _module()["locals"]["loader_environment"]
    names = set(re.findall(r"\b(FLOE_[A-Z_]+) +=", expression))
    assert names == {
        "FLOE_BUCKET",
        "FLOE_LIVE_PREFIX",
        "FLOE_DEAD_LETTER_PREFIX",
        "FLOE_SECRET_PREFIX",
        "FLOE_IAM_ROLE_PATH",
        "FLOE_CONNECTIONS_DSN_SECRET",
        "FLOE_LOADER_DATA_ROLE_ARN",
        "FLOE_AWS_ACCOUNT_ID",
        "FLOE_LEASE_SECONDS",
        "FLOE_CORE_API_URL",
        "FLOE_CORE_API_TOKEN_SECRET",
    }
    assert names <= _config_reads(), f"set by Terraform but never read: {sorted(names - _config_reads())}"
    # The generated environment must be valid for the loader's own configuration check.
    env = {"FLOE_LIVE_PREFIX": "live/{org_id}/", "FLOE_DEAD_LETTER_PREFIX": "dead-letter/{org_id}/"}
    assert config.load(env).live_prefix_for("acme") == "live/acme/"


def test_the_loader_environment_values() -> None:
    expression = _module()["locals"]["loader_environment"]
    # The account id spares every busy tick an STS GetCallerIdentity.
    assert re.search(r"FLOE_AWS_ACCOUNT_ID += local\.account_id\b", expression)
    assert _module()["locals"]["account_id"] == "${data.aws_caller_identity.current.account_id}"
    assert re.search(r"FLOE_LOADER_DATA_ROLE_ARN += aws_iam_role\.loader_data\.arn\b", expression)
    assert re.search(r"FLOE_CONNECTIONS_DSN_SECRET += local\.connections_dsn_secret_arn\b", expression)


def test_no_secret_value_reaches_terraform() -> None:
    """The DSN is neither a variable nor in any environment nor a secret version in state."""
    assert "connections_dsn" not in _module()["variable"]
    assert "aws_secretsmanager_secret_version" not in _module()["resource"]
    text = "\n".join(path.read_text(encoding="utf-8") for path in TF_FILES)
    assert not re.search(r"\bFLOE_CONNECTIONS_DSN\b(?!_SECRET)", text)
    assert "secret_string" not in text
    secret = _resource("aws_secretsmanager_secret", "connections_dsn")
    assert secret["count"] == "${var.connections_dsn_secret_arn == null ? 1 : 0}"
    assert _module()["locals"]["connections_dsn_secret_arn"] == (
        "${coalesce(var.connections_dsn_secret_arn, one(aws_secretsmanager_secret.connections_dsn[*].arn))}"
    )


def test_the_dispatcher_environment_names_only_variables_the_code_reads() -> None:
    (environment,) = _resource("aws_lambda_function", "dispatcher")["environment"]
    assert set(environment["variables"]) == {"FLOE_CONNECTIONS_DSN_SECRET", "FLOE_LOADER_FUNCTION"}
    assert set(environment["variables"]) <= _config_reads()
    assert environment["variables"]["FLOE_CONNECTIONS_DSN_SECRET"] == "${local.connections_dsn_secret_arn}"


def test_the_lease_outlives_the_function() -> None:
    assert _module()["locals"]["lease_seconds"] == "${var.timeout_seconds + 60}"
    assert re.search(
        r"FLOE_LEASE_SECONDS += tostring\(local\.lease_seconds\)", _module()["locals"]["loader_environment"]
    )


def test_handlers_name_the_loader_package() -> None:
    assert _resource("aws_lambda_function", "loader")["handler"] == "loader.handler.handler"
    assert _resource("aws_lambda_function", "dispatcher")["handler"] == "loader.dispatch.handler"


def test_async_invocations_are_not_retried() -> None:
    assert _resource("aws_lambda_function_event_invoke_config", "loader")["maximum_retry_attempts"] == 0


def test_concurrency_is_unreserved_by_default() -> None:
    """New and low-quota accounts refuse any reservation; -1 is the provider's "unreserved"."""
    variable = _module()["variable"]["reserved_concurrency"]
    assert variable["default"] is None
    (validation,) = variable["validation"]
    assert validation["condition"] == "${coalesce(var.reserved_concurrency, 1) >= 1}"
    loader = _resource("aws_lambda_function", "loader")
    assert loader["reserved_concurrent_executions"] == (
        "${var.reserved_concurrency == null ? -1 : var.reserved_concurrency}"
    )
    dispatcher = _resource("aws_lambda_function", "dispatcher")
    assert dispatcher["reserved_concurrent_executions"] == "${var.reserved_concurrency == null ? -1 : 1}"


def _validations() -> Iterator[tuple[str, str]]:
    for name, body in _module()["variable"].items():
        for validation in body.get("validation", []):
            yield name, validation["condition"]


def test_validations_of_nullable_variables_work_before_terraform_1_12() -> None:
    """Before 1.12, `a || b` evaluates b even when a is true, so `x == null || x >= 7` fails on null."""
    assert _module()["variable"]["dead_letter_expiration_days"]["default"] == 90
    conditions = dict(_validations())
    assert conditions["dead_letter_expiration_days"] == "${coalesce(var.dead_letter_expiration_days, 7) >= 7}"
    for name, condition in conditions.items():
        assert not re.search(r"== null *(\|\||&&)", condition), name


# ------------------------------------------------------------------ permissions boundary


def test_the_boundary_allows_no_more_than_the_per_organisation_read_policy() -> None:
    from provisioner import iam

    boundary = _policy_document("snowflake_role_boundary")
    read = iam.read_policy("bucket", "live/acme/")
    assert aws_actions.all_actions(_grants(boundary)) == {
        action for statement in read["Statement"] for action in statement["Action"]
    }
    statements = _by_sid(boundary)
    assert statements["ReadLiveObjects"]["resources"] == ["${local.bucket_arn}/${var.live_root}*"]
    assert statements["ListBucket"]["resources"] == ["${local.bucket_arn}"]
    policy = _resource("aws_iam_policy", "snowflake_role_boundary")
    assert policy["name"] == "${var.name_prefix}-snowflake-role-boundary"
    assert "count" not in policy


def test_the_operator_cannot_create_a_snowflake_role_without_the_boundary() -> None:
    deny = _by_sid(_policy_document("operator"))["RequireSnowflakeRoleBoundary"]
    assert deny["effect"] == "Deny"
    assert set(deny["actions"]) == {"iam:CreateRole", "iam:PutRolePolicy"}
    assert deny["resources"] == ["${local.snowflake_roles_arn}"]
    # StringNotEquals also matches when CreateRole names no boundary (the key is then absent).
    assert deny["condition"] == [
        {
            "test": "StringNotEquals",
            "variable": "iam:PermissionsBoundary",
            "values": ["${aws_iam_policy.snowflake_role_boundary.arn}"],
        }
    ]
    # Nobody here may lift a boundary.
    operator = aws_actions.all_actions(aws_actions.OPERATOR_ACTIONS)
    assert not {"iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary"} & operator


# ------------------------------------------------------------------ metrics, alarms, dashboard


def test_metrics_come_from_the_loaders_emf_line_not_metric_filters() -> None:
    assert _module()["locals"]["metrics_namespace"] == EMF_NAMESPACE
    assert "aws_cloudwatch_log_metric_filter" not in _module()["resource"]


def test_lag_alarm_is_one_metrics_insights_series_per_connection() -> None:
    alarm = _resource("aws_cloudwatch_metric_alarm", "lag")
    assert not {"metric_name", "namespace", "period", "statistic"} & set(alarm)
    (query,) = alarm["metric_query"]
    assert query["expression"] == "${local.lag_query}"
    assert query["return_data"] is True
    assert query["period"] == 300
    assert alarm["threshold"] == "${var.lag_alarm_threshold_seconds}"
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    lag_query = _module()["locals"]["lag_query"]
    assert lag_query.startswith('SELECT MAX(LagSeconds) FROM SCHEMA("${local.metrics_namespace}", connection_id)')
    assert "GROUP BY connection_id" in lag_query


def test_dead_letter_and_failed_run_alarms_read_the_roll_up() -> None:
    dead = _resource("aws_cloudwatch_metric_alarm", "dead_lettered")
    assert (dead["namespace"], dead["metric_name"], dead["statistic"]) == (
        "${local.metrics_namespace}",
        "FilesDeadLettered",
        "Sum",
    )
    assert (dead["comparison_operator"], dead["threshold"]) == ("GreaterThanThreshold", 0)
    failed = _resource("aws_cloudwatch_metric_alarm", "failed_runs")
    assert (failed["namespace"], failed["metric_name"], failed["statistic"]) == (
        "${local.metrics_namespace}",
        "RunFailed",
        "Sum",
    )
    assert failed["period"] == "${300 * var.failed_runs_alarm_periods}"
    assert failed["threshold"] == "${var.error_alarm_threshold}"
    for alarm in (dead, failed):
        assert "dimensions" not in alarm  # the [] dimension set: every connection
    # Crashes and timeouts still come from Lambda itself.
    errors = _resource("aws_cloudwatch_metric_alarm", "loader_errors")
    assert (errors["namespace"], errors["metric_name"]) == ("AWS/Lambda", "Errors")


def test_every_alarm_points_at_its_runbook_and_is_listed() -> None:
    alarms = _module()["resource"]["aws_cloudwatch_metric_alarm"]
    runbook = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    outputs = str(_module()["output"]["alarm_names"]["value"])
    for name, alarm in alarms.items():
        assert "Runbook: docs/operations.md" in alarm["alarm_description"], name
        suffix = alarm["alarm_name"].removeprefix("${var.name_prefix}")
        assert f"`<prefix>{suffix}`" in runbook, name
        assert f"aws_cloudwatch_metric_alarm.{name}" in outputs, name


def test_the_dashboard_shows_every_metric() -> None:
    dashboard = _resource("aws_cloudwatch_dashboard", "floe")
    assert dashboard["dashboard_body"] == "${jsonencode({widgets = local.dashboard_widgets})}"
    text = (TERRAFORM / "alarms.tf").read_text(encoding="utf-8")
    widgets = text[text.index("dashboard_widgets = [") :]
    rollup = _module()["locals"]["dashboard_rollup"]
    for metric in EMF_METRICS:
        assert metric in widgets or metric in rollup, metric
    assert 'type = "alarm"' in widgets


def test_the_report_line_carries_the_emf_contract() -> None:
    """A real (failed) run's log line. Until the loader emits EMF this skips; then it holds it to the
    contract the alarms read."""
    from loader.handler import run
    from loader.metrics import embedded_metrics
    from loader.report import RunReport
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
    line = lines[0]
    assert line["report"]["status"] == "error"
    if "_aws" not in line:
        pytest.skip("the loader does not emit Embedded Metric Format yet")
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == EMF_NAMESPACE
    assert {metric["Name"] for metric in directive["Metrics"]} == EMF_METRICS
    # A malformed event names no connection: the run counts in the roll-up only.
    assert directive["Dimensions"] == [[]]
    assert line["RunFailed"] == 1
    report = RunReport(run_id="r", connection_id="c-1", started_at=datetime.now(UTC))
    assert embedded_metrics(report)["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == EMF_DIMENSIONS


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

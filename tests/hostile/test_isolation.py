"""AWS keeps one organisation's tick out of another's files and secret, even when Floe's own key checks fail.

With FLOE_LOADER_DATA_ROLE_ARN set, every tick works through a session of the data role narrowed by a
session policy (loader.data_access). moto 5.2.5 evaluates a role's own policies when its IAM checks are on,
but ignores the session policy passed to AssumeRole (checked by hand: an assumed session limited to
live/acme/ listed and read live/globex/). So the local AWS here is moto plus an enforcer on boto3's
default session: every S3 or Secrets Manager call signed with a data-role session is evaluated, with the
stand-in's IAM evaluator (devstack/snowflake/iam.py), against the role's policy AND the session policy the
loader really sent, and refused with AccessDenied as AWS would, before it leaves the process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.aws import ACCOUNT_ID
from devstack.snowflake.iam import is_allowed
from kernel import config
from loader import data_access
from loader.storage import OrgStorage

from .stack import Stack, gz

OTHER = "live/globex/events/env_key=env-demo/year=2026/month=01/day=01/hour=00/theirs.json.gz"
OTHER_SECRET = "floe/connections/globex"
# The data role's own grants (terraform/iam.tf): every organisation's prefixes and every connection secret.
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::floe-events",
            "Condition": {"StringLike": {"s3:prefix": ["live/*"]}},
        },
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": "arn:aws:s3:::floe-events/live/*",
        },
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::floe-events/dead-letter/*"},
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:*:*:secret:floe/connections/*",
        },
    ],
}


@dataclass
class Enforcer:
    """AWS's evaluation of data-role sessions: the role's policy and the session's, both must allow."""

    session_policies: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # access key -> policy
    refused: list[tuple[str, str]] = field(default_factory=list)
    allowed: list[tuple[str, str]] = field(default_factory=list)

    def capture_session(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """The session policy the loader sent, by the access key STS gave it (the stand-in's own
        AssumeRole calls, for integrations, carry none)."""
        params = context.get("floe_params", {})
        if params.get("RoleSessionName", "").startswith("floe-") and "Credentials" in parsed:
            policy = params.get("Policy")
            self.session_policies[parsed["Credentials"]["AccessKeyId"]] = json.loads(policy) if policy else None

    def keep_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["floe_params"] = dict(params)

    def check(self, model: Any, request_signer: Any, context: dict[str, Any], **_: Any) -> Any:
        key = request_signer._credentials.access_key
        if key not in self.session_policies:
            return None  # the test's own set-up, or a call outside a data-role session
        # A session can do what its role allows AND its session policy (if any) allows.
        policies = [ROLE_POLICY] + ([session] if (session := self.session_policies[key]) else [])
        for action, resource, conditions in _requests(model.name, context["floe_params"]):
            if not all(is_allowed([policy], action, resource, conditions) for policy in policies):
                self.refused.append((model.name, resource))
                error = {"Code": "AccessDenied", "Message": f"not authorized to perform: {action} on {resource}"}
                return SimpleNamespace(status_code=403, headers={}), {"Error": error, "ResponseMetadata": {}}
        self.allowed.append((model.name, context["floe_params"].get("Prefix") or context["floe_params"].get("Key", "")))
        return None


def _object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _requests(operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(action, resource, condition keys) AWS authorises for the calls a tick makes."""
    if operation == "GetSecretValue":
        arn = boto3.client("secretsmanager").describe_secret(SecretId=params["SecretId"])["ARN"]
        return [("secretsmanager:GetSecretValue", arn, {})]
    bucket = params["Bucket"]
    if operation == "ListObjectsV2":
        return [("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": params.get("Prefix", "")})]
    if operation == "DeleteObjects":
        return [("s3:DeleteObject", _object(bucket, item["Key"]), {}) for item in params["Delete"]["Objects"]]
    if operation == "CopyObject":
        source = params["CopySource"]  # botocore may already have quoted it into "bucket/key"
        source_bucket, source_key = (
            (source["Bucket"], source["Key"]) if isinstance(source, dict) else unquote(source).split("/", 1)
        )
        return [
            ("s3:GetObject", _object(source_bucket, source_key), {}),
            ("s3:PutObject", _object(bucket, params["Key"]), {}),
        ]
    action = {
        "GetObject": "s3:GetObject",
        "HeadObject": "s3:GetObject",
        "PutObject": "s3:PutObject",
        "DeleteObject": "s3:DeleteObject",
    }
    return [(action[operation], _object(bucket, params["Key"]), {})]


@pytest.fixture
def enforcer(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Enforcer]:
    iam = boto3.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="floe-loader-data", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="floe-loader-data", PolicyName="data", PolicyDocument=json.dumps(ROLE_POLICY))
    monkeypatch.setenv("FLOE_LOADER_DATA_ROLE_ARN", role)
    monkeypatch.setattr(data_access, "_sessions", {})  # a fresh process: no session cached yet
    boto3.client("secretsmanager").create_secret(Name=OTHER_SECRET, SecretString='{"password": "theirs"}')
    stack.put(OTHER, gz('{"theirs": 1}\n'))
    enforcer = Enforcer()
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    hooks: list[tuple[str, Callable[..., Any]]] = [
        ("after-call.sts.AssumeRole", enforcer.capture_session),
        ("before-parameter-build", enforcer.keep_params),
        ("before-call.s3", enforcer.check),
        ("before-call.secrets-manager", enforcer.check),
    ]
    for event, hook in hooks:
        events.register(event, hook)
    yield enforcer
    for event, hook in hooks:
        events.unregister(event, hook)


def test_a_tick_pointed_at_another_organisations_prefix_is_refused_by_aws(
    stack: Stack, enforcer: Enforcer, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = stack.put_events(stack.key("ours"))
    assert stack.tick()["files_loaded"] == 1  # the session works for its own organisation
    assert ("ListObjectsV2", "live/acme/") in enforcer.allowed
    assert stack.live_keys() == []
    assert enforcer.refused == []
    assert own not in stack.live_keys()

    # A deliberate bug: the tick builds its storage on globex's prefix (storage.py's own check then
    # passes, since every key it sees is under the prefix it was given).
    def wrong_storage(s3: Any, bucket: str, live_prefix: str, dead_letter_prefix: str) -> OrgStorage:
        return OrgStorage(s3, bucket, "live/globex/", dead_letter_prefix)

    monkeypatch.setattr("loader.tick.OrgStorage", wrong_storage)
    report = stack.tick()
    assert report["status"] == "error"
    assert enforcer.refused == [("ListObjectsV2", "arn:aws:s3:::floe-events")]
    assert boto3.client("s3").head_object(Bucket="floe-events", Key=OTHER)  # untouched


def test_a_session_reaches_only_its_own_organisations_objects_and_its_connections_secret(
    stack: Stack, enforcer: Enforcer, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, secrets_client = data_access.scoped_clients(config.load(), stack.connection, 60)
    secrets = secrets_client()
    ours = stack.put_events(stack.key("ours"))
    assert secrets.get_secret_value(SecretId=stack.connection.secret_ref)["SecretString"]
    s3.copy_object(
        Bucket="floe-events", Key=ours, CopySource={"Bucket": "floe-events", "Key": ours}, MetadataDirective="REPLACE"
    )

    # storage.py's key check removed: only AWS stands between this session and globex.
    monkeypatch.setattr(OrgStorage, "_owned", lambda _self, key: key)
    storage = OrgStorage(s3, "floe-events", stack.live_prefix, "dead-letter/acme/")
    attempts: dict[str, Callable[[], object]] = {
        "delete": lambda: storage.delete([OTHER]),
        "restage": lambda: storage.restage(OTHER),
        "read": lambda: s3.get_object(Bucket="floe-events", Key=OTHER),
        "overwrite": lambda: s3.put_object(Bucket="floe-events", Key=OTHER, Body=b"x"),
        "list": lambda: s3.list_objects_v2(Bucket="floe-events", Prefix="live/"),
        "dead-letter into globex": lambda: s3.put_object(Bucket="floe-events", Key="dead-letter/globex/x", Body=b"x"),
        "secret": lambda: secrets.get_secret_value(SecretId=OTHER_SECRET),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ClientError, match="AccessDenied"):
            attempt()
        assert enforcer.refused, name
    assert len(enforcer.refused) == len(attempts)
    assert boto3.client("s3").get_object(Bucket="floe-events", Key=OTHER)["Body"].read() == gz('{"theirs": 1}\n')


def test_an_idle_tick_assumes_the_role_once_then_only_lists(
    stack: Stack, enforcer: Enforcer, aws_operations: list[str]
) -> None:
    made: list[str] = []

    def record(event_name: str, **_: object) -> None:
        made.append(event_name)

    session = boto3.DEFAULT_SESSION
    assert session is not None  # made by the aws_operations fixture
    session.events.register("creating-client-class", record)
    aws_operations.clear()
    try:
        assert stack.tick()["status"] == "idle"
        assert stack.tick()["status"] == "idle"
    finally:
        session.events.unregister("creating-client-class", record)
    assert aws_operations == ["AssumeRole", "ListObjectsV2", "ListObjectsV2"]
    # Each tick makes only its session's S3 client: none for the execution role, no Secrets Manager client.
    assert [name.rsplit(".", 1)[-1] for name in made] == ["sts", "s3", "s3"]


def test_the_session_policy_fits_sts_limit_and_names_the_connections_own_secret(stack: Stack) -> None:
    policy = data_access.session_policy(stack.settings, stack.connection)
    assert len(json.dumps(policy, separators=(",", ":"))) <= 2048  # STS's limit on a packed inline policy
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert (
        statements["ReadConnectionSecrets"]["Resource"]
        == "arn:aws:secretsmanager:*:*:secret:floe/connections/acme-??????"
    )
    assert statements["ListLivePrefixes"]["Condition"] == {"StringLike": {"s3:prefix": ["live/acme/", "live/acme/*"]}}
    assert statements["WriteDeadLetters"] == {
        "Sid": "WriteDeadLetters",
        "Effect": "Allow",
        "Action": ["s3:PutObject"],
        "Resource": "arn:aws:s3:::floe-events/dead-letter/acme/*",
    }


def test_a_cached_session_serves_listings_and_is_renewed_only_when_the_busy_path_would_outlive_it(
    stack: Stack, enforcer: Enforcer, aws_operations: list[str]
) -> None:
    """With a 900 s session and a Lambda timeout up to 900 s, requiring every tick's whole budget would
    renew the session on every tick; the idle path needs it only for its listing."""
    assert stack.tick()["status"] == "idle"
    ((key, session),) = data_access._sessions.items()
    data_access._sessions[key] = replace(session, expires=datetime.now(UTC) + timedelta(seconds=200))
    aws_operations.clear()
    assert stack.tick(budget=300)["status"] == "idle"
    assert aws_operations == ["ListObjectsV2"]
    stack.put_events(stack.key("busy"))
    aws_operations.clear()
    assert stack.tick(budget=300)["files_loaded"] == 1
    assert aws_operations[:2] == ["ListObjectsV2", "AssumeRole"]  # 200 s left < the busy path's 300 s
    assert aws_operations.count("AssumeRole") == 1

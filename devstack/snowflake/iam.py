"""How a stage reaches S3: through its integration's IAM role, as Snowflake would.

moto does not enforce IAM, so the stand-in evaluates the policies itself (docs/snowflake-facts.md §4):
the role's trust policy must let the account's IAM user assume it with the integration's external
ID, and the role's own policies decide which prefixes the stage may list and read. The actual S3
calls then run with STS AssumeRole credentials.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.exceptions import ClientError

from .errors import SnowflakeError, StageAccessError, stage_access_denied, stage_failure
from .model import Integration, StagedFile

ACCESS_DENIED = "Access Denied (Status Code: 403; Error Code: AccessDenied)"
# data-load-s3-config-storage-integration: Snowflake caches the role's temporary credentials for up to
# 60 minutes; the stand-in keeps an assumed role's S3 client no longer (nor past the credentials' expiry).
CREDENTIAL_CACHE_SECONDS = 3600.0


class AwsClients:
    """The stand-in's boto3 clients, built once (a client costs ~20 ms) and shared by its threads, plus
    one S3 client per assumed role and external ID until its credentials expire on the stand-in's clock.

    Its own boto3 session: the tests watch the default session's calls."""

    def __init__(self, endpoint_url: str, now: Callable[[], float]) -> None:
        self.endpoint_url = endpoint_url
        self._now = now
        self._lock = threading.Lock()
        self._session = boto3.session.Session()
        self._plain: dict[str, Any] = {}
        self._assumed: dict[tuple[str, str], tuple[Any, float]] = {}

    def _make(self, service: str, **credentials: str) -> Any:
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        make_client: Any = self._session.client
        with self._lock:  # a boto3 session is not thread-safe; its clients are
            return make_client(service, endpoint_url=self.endpoint_url, region_name=region, **credentials)

    def client(self, service: str) -> Any:
        if service not in self._plain:
            self._plain[service] = self._make(service)
        return self._plain[service]

    def forget_roles(self) -> None:
        """A reset: credentials of a previous test's roles are not reused."""
        self._assumed.clear()

    def assumed_s3(self, role_arn: str, external_id: str) -> Any:
        """S3 with the role's STS credentials (facts §4: assumed with the integration's external ID)."""
        now = self._now()
        cached = self._assumed.get((role_arn, external_id))
        if cached is not None and cached[1] > now:
            return cached[0]
        credentials = self.client("sts").assume_role(
            RoleArn=role_arn, RoleSessionName="snowflake", ExternalId=external_id
        )["Credentials"]
        lifetime = min(credentials["Expiration"].timestamp() - time.time(), CREDENTIAL_CACHE_SECONDS)
        s3 = self._make(
            "s3",
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        self._assumed[(role_arn, external_id)] = (s3, now + lifetime)
        return s3


def assume_role_error() -> StageAccessError:
    return StageAccessError(
        91003,
        "Failure using stage area. Cause: [Error assuming AWS_ROLE. Please verify the role and "
        "externalId are configured correctly in your AWS policy.]",
        "XX000",
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    """The subset used here: StringEquals / StringLike (and their IfExists forms)."""
    for operator, tests in conditions.items():
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        for key, expected in tests.items():
            actual = next((v for k, v in context.items() if k.lower() == key.lower()), None)
            if actual is None:
                if if_exists:
                    continue
                return False
            if base == "StringEquals":
                matched = actual in _as_list(expected)
            elif base == "StringLike":
                matched = any(_glob(str(p), actual) for p in _as_list(expected))
            else:
                return False  # an operator this model does not know never grants
            if not matched:
                return False
    return True


def _statement_matches(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    actions = _as_list(statement.get("Action"))
    if not any(_glob(str(a), action, ignore_case=True) for a in actions):
        return False
    resources = _as_list(statement.get("Resource", "*"))
    if not any(_glob(str(r), resource) for r in resources):
        return False
    return _conditions_hold(statement.get("Condition", {}), context)


def is_allowed(documents: list[dict[str, Any]], action: str, resource: str, context: dict[str, str]) -> bool:
    """IAM evaluation: an explicit Deny wins, otherwise some Allow must match."""
    statements = [s for doc in documents for s in _as_list(doc.get("Statement"))]
    matching = [s for s in statements if _statement_matches(s, action, resource, context)]
    if any(s.get("Effect") == "Deny" for s in matching):
        return False
    return any(s.get("Effect") == "Allow" for s in matching)


def trust_allows(trust: dict[str, Any], principal_arn: str, external_id: str) -> bool:
    context = {"sts:ExternalId": external_id}
    allowed = False
    for statement in _as_list(trust.get("Statement")):
        principals = statement.get("Principal", {})
        aws = _as_list(principals.get("AWS")) if isinstance(principals, dict) else _as_list(principals)
        if not any(p in ("*", principal_arn) for p in aws):
            continue
        if not any(_glob(str(a), "sts:AssumeRole", True) for a in _as_list(statement.get("Action"))):
            continue
        if not _conditions_hold(statement.get("Condition", {}), context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _document(value: Any) -> dict[str, Any]:
    """boto3 returns policy documents decoded; moto sometimes returns URL-encoded JSON text."""
    if isinstance(value, dict):
        return value
    return dict(json.loads(unquote(str(value))))


def split_s3_url(url: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", url)
    if not match:
        raise SnowflakeError(1003, f"SQL compilation error:\ninvalid URL '{url}'")
    return match.group(1), match.group(2)


@dataclass
class StageStorage:
    """An S3 location read with an integration's role, for one statement or one drain.

    The role's trust and policies are read once per StageStorage, so a revoked trust or permission takes
    effect at the next statement or drain (Snowflake may take up to the 60-minute credential cache)."""

    aws: AwsClients
    iam_user_arn: str
    integration: Integration
    _checked: tuple[Any, list[dict[str, Any]]] | None = field(default=None, init=False, repr=False)

    def _client(self, service: str) -> Any:
        return self.aws.client(service)

    def _role_name(self) -> str:
        return self.integration.role_arn.rsplit("/", 1)[-1]

    def _role_policies(self) -> list[dict[str, Any]]:
        iam = self._client("iam")
        role = self._role_name()
        documents = [
            _document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
            for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
        ]
        for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
            documents.append(_document(version["PolicyVersion"]["Document"]))
        return documents

    def _session(self) -> tuple[Any, list[dict[str, Any]]]:
        """An S3 client with the role's credentials, and the role's policies (checked once)."""
        if self._checked is None:
            self._checked = self._check_role()
        return self._checked

    def _check_role(self) -> tuple[Any, list[dict[str, Any]]]:
        iam = self._client("iam")
        try:
            trust = _document(iam.get_role(RoleName=self._role_name())["Role"]["AssumeRolePolicyDocument"])
        except ClientError:
            raise assume_role_error() from None
        if not trust_allows(trust, self.iam_user_arn, self.integration.external_id):
            raise assume_role_error()
        s3 = self.aws.assumed_s3(self.integration.role_arn, self.integration.external_id)
        return s3, self._role_policies()

    def list(self, url: str, base_url: str) -> list[StagedFile]:
        """Every object under url (recursively), named relative to base_url (the stage URL)."""
        bucket, prefix = split_s3_url(url)
        s3, policies = self._session()
        context = {"s3:prefix": prefix}
        if not is_allowed(policies, "s3:ListBucket", f"arn:aws:s3:::{bucket}", context):
            raise stage_access_denied(ACCESS_DENIED)
        _, base_prefix = split_s3_url(base_url)
        files: list[StagedFile] = []
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if item["Key"].endswith("/"):
                        continue
                    files.append(
                        StagedFile(
                            key=item["Key"],
                            relative_path=item["Key"][len(base_prefix) :],
                            size=int(item["Size"]),
                            etag=str(item["ETag"]).strip('"'),
                            last_modified=item["LastModified"].timestamp(),
                        )
                    )
        except ClientError as error:
            raise stage_failure(str(error)) from None
        return files

    def read(self, bucket: str, key: str) -> bytes:
        s3, policies = self._session()
        if not is_allowed(policies, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", {}):
            raise stage_access_denied(ACCESS_DENIED)
        try:
            return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError as error:
            raise stage_failure(str(error)) from None

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
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.exceptions import ClientError

from .errors import SnowflakeError, stage_failure
from .model import Integration, StagedFile

ACCESS_DENIED = "Access Denied (Status Code: 403; Error Code: AccessDenied)"


def assume_role_error() -> SnowflakeError:
    return SnowflakeError(
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
    """An S3 location read with an integration's role."""

    endpoint_url: str
    iam_user_arn: str
    integration: Integration

    def _client(self, service: str, **credentials: str) -> Any:
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        make_client: Any = boto3.client
        return make_client(service, endpoint_url=self.endpoint_url, region_name=region, **credentials)

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
        """An S3 client with the role's credentials, and the role's policies."""
        iam = self._client("iam")
        try:
            trust = _document(iam.get_role(RoleName=self._role_name())["Role"]["AssumeRolePolicyDocument"])
        except ClientError:
            raise assume_role_error() from None
        if not trust_allows(trust, self.iam_user_arn, self.integration.external_id):
            raise assume_role_error()
        credentials = self._client("sts").assume_role(
            RoleArn=self.integration.role_arn,
            RoleSessionName="snowflake",
            ExternalId=self.integration.external_id,
        )["Credentials"]
        s3 = self._client(
            "s3",
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        return s3, self._role_policies()

    def list(self, url: str, base_url: str) -> list[StagedFile]:
        """Every object under url (recursively), named relative to base_url (the stage URL)."""
        bucket, prefix = split_s3_url(url)
        s3, policies = self._session()
        context = {"s3:prefix": prefix}
        if not is_allowed(policies, "s3:ListBucket", f"arn:aws:s3:::{bucket}", context):
            raise stage_failure(ACCESS_DENIED)
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
            raise stage_failure(ACCESS_DENIED)
        try:
            return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError as error:
            raise stage_failure(str(error)) from None

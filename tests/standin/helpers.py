"""Helpers for the stand-in tests: keys, connections, and an S3 prefix with an IAM role."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import boto3
import snowflake.connector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.snowflake.server import StandIn

BUCKET = "floe-events"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_key_text(key: rsa.RSAPrivateKey) -> str:
    """The 'MIIB…' form CREATE/ALTER USER take (no PEM delimiters)."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def connect(server: StandIn, account: str, user: str = "ADMIN", **kwargs: Any) -> Any:
    kwargs.setdefault("password", "admin-password") if "private_key" not in kwargs else None
    if "private_key" in kwargs:
        kwargs["authenticator"] = "SNOWFLAKE_JWT"
    return snowflake.connector.connect(
        account=account,
        user=user,
        host=server.host,
        port=server.port,
        protocol="http",
        login_timeout=10,
        network_timeout=10,
        **kwargs,
    )


def run(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def gz_lines(*records: Any) -> bytes:
    return gzip.compress("\n".join(json.dumps(r) for r in records).encode())


def s3() -> Any:
    return boto3.client("s3")


def make_role(name: str, trusted_arn: str, external_id: str | None, prefix: str) -> str:
    """A role whose trust names trusted_arn (with the external id), allowed to read only prefix."""
    iam = boto3.client("iam")
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": trusted_arn}, "Action": "sts:AssumeRole"}
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    role = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )["Role"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": f"arn:aws:s3:::{BUCKET}/{prefix}*",
            },
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{BUCKET}",
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
        ],
    }
    iam.put_role_policy(RoleName=name, PolicyName="read", PolicyDocument=json.dumps(policy))
    return str(role["Arn"])


PREFIX = "live/acme/"
HISTORY = (
    "SELECT FILE_NAME, STATUS, ROW_COUNT, ROW_PARSED, ERROR_COUNT, FIRST_ERROR_MESSAGE, FIRST_ERROR_LINE_NUMBER "
    "FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => 'EVENTS', "
    "START_TIME => DATEADD(hour, -1, CURRENT_TIMESTAMP()))) ORDER BY FILE_NAME"
)
PIPE = (
    "CREATE OR REPLACE PIPE P AUTO_INGEST = FALSE COMMENT = 'v1' AS COPY INTO EVENTS (ID, FLAG, TS, FILE, ROW_NO) "
    "FROM (SELECT $1:id::NUMBER, $1:flag::VARCHAR, TO_TIMESTAMP_NTZ($1:ts::NUMBER, 3), METADATA$FILENAME, "
    "METADATA$FILE_ROW_NUMBER FROM @S) FILE_FORMAT = (FORMAT_NAME = 'JSON_GZ')"
)


def integration_identity(conn: Any) -> tuple[str, str]:
    props = {row[0]: row[2] for row in run(conn, "DESC INTEGRATION I")}
    return props["STORAGE_AWS_IAM_USER_ARN"], props["STORAGE_AWS_EXTERNAL_ID"]


def setup_acme(server: StandIn, trust_ok: bool = True) -> Any:
    server.control.create_account("acme")
    s3().create_bucket(Bucket=BUCKET)
    conn = connect(server, "acme", database="DB", schema="PUBLIC", warehouse="COMPUTE_WH")
    run(conn, "CREATE ROLE LOADER")  # an integration needs a role ARN first; the trust comes after DESC
    run(
        conn,
        "CREATE STORAGE INTEGRATION I TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' "
        "STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/floe/snowflake/acme' ENABLED = TRUE "
        f"STORAGE_ALLOWED_LOCATIONS = ('s3://{BUCKET}/{PREFIX}')",
    )
    user_arn, external_id = integration_identity(conn)
    # A trust without the integration's external id is the "missing trust" case (facts §4).
    make_role("acme", user_arn, external_id if trust_ok else "another-external-id", PREFIX)
    run(conn, "CREATE FILE FORMAT JSON_GZ TYPE = JSON COMPRESSION = GZIP")
    run(
        conn,
        f"CREATE STAGE S URL = 's3://{BUCKET}/{PREFIX}' STORAGE_INTEGRATION = I "
        "FILE_FORMAT = (FORMAT_NAME = 'JSON_GZ')",
    )
    run(
        conn,
        "CREATE TABLE IF NOT EXISTS EVENTS (ID NUMBER, FLAG VARCHAR, TS TIMESTAMP_NTZ, FILE VARCHAR, ROW_NO NUMBER) "
        "COMMENT = 'v1'",
    )
    run(conn, PIPE)
    return conn


def put_event(key: str, body: bytes) -> None:
    s3().put_object(Bucket=BUCKET, Key=PREFIX + key, Body=body)

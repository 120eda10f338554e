"""Secrets never leak: every failure path this suite can reach, run with a recognisable private key and
password, and searched for them afterwards.

The canaries: a freshly generated RSA key (its PKCS#8 DER base64, which is also its PEM body, its DER in
hex and as a Python bytes repr, its private exponent in decimal; only the private part, since the public
modulus legitimately appears in setup scripts), a password `FLOE-CANARY-PASSWORD-…` and a passphrase
`FLOE-CANARY-PASSPHRASE-…`. The places searched: every log record (the `floe` logger's JSON lines and
any other logger, tracebacks included), stdout and stderr at the file-descriptor level, exception texts
and tracebacks, run reports, CLI output, provision outcomes and the connection row's status detail,
dead-letter manifests, and every request the core receiver accepted (bodies and headers).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from floe import cli
from kernel import config, logs
from kernel.connections import ConnectionStatus, open_store
from kernel.secrets import read_credentials, store_private_key
from kernel.snowflake_session import open_session
from loader.handler import handler
from provisioner.keys import generate_private_key, private_key_pem, public_key_b64
from provisioner.provision import provision

from .stack import ACCOUNT, Stack, gz, keys

USER = "FLOE_LOADER"
PIPE = "ANALYTICS.FLAGSMITH.FLOE_EVENTS_PIPE"


@dataclass
class Canaries:
    key: rsa.RSAPrivateKey
    password: str = field(default_factory=lambda: f"FLOE-CANARY-PASSWORD-{uuid.uuid4().hex}")
    passphrase: str = field(default_factory=lambda: f"FLOE-CANARY-PASSPHRASE-{uuid.uuid4().hex}")

    @property
    def pem(self) -> str:
        return private_key_pem(self.key)

    def encrypted_pem(self, passphrase: str) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        ).decode()

    def needles(self) -> dict[str, str]:
        der = self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        b64 = base64.b64encode(der).decode()
        assert b64 == "".join(self.pem.splitlines()[1:-1])  # the PEM body is the DER's base64
        found = {"password": self.password, "passphrase": self.passphrase}
        # Private part only: the modulus (bytes ~26-290) is public and sits in every setup script.
        for start in range(400, len(b64) - 24, 24):
            found[f"der-base64[{start}:]"] = b64[start : start + 24]
        hexed = der.hex()
        for start in range(800, len(hexed) - 32, 160):
            found[f"der-hex[{start}:]"] = hexed[start : start + 32]
        for start in range(400, len(der) - 12, 97):
            chunk = der[start : start + 12]
            if b"'" not in chunk and b'"' not in chunk:
                found[f"der-repr[{start}:]"] = repr(chunk)[2:-1]
        found["private-exponent"] = str(self.key.private_numbers().d)[:40]
        return found


class Records(logging.Handler):
    """Every record, formatted twice: as Floe's JSON line and as text with the full traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._json = logs.JsonFormatter()
        self._text = logging.Formatter("%(levelname)s %(name)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self._json.format(record))
        self.lines.append(self._text.format(record))


@contextmanager
def recording() -> Iterator[Records]:
    records = Records()
    floe, root = logging.getLogger("floe"), logging.getLogger()
    saved = (floe.level, floe.propagate, list(floe.handlers), root.level)
    floe.setLevel(logging.DEBUG)
    root.setLevel(logging.INFO)
    floe.addHandler(records)
    root.addHandler(records)
    try:
        yield records
    finally:
        root.removeHandler(records)
        floe.handlers[:] = saved[2]
        floe.setLevel(saved[0])
        floe.propagate = saved[1]
        root.setLevel(saved[3])


class _Context:
    """A Lambda context with an 8-second budget from its creation."""

    def __init__(self) -> None:
        self._end = time.monotonic() + 8

    def get_remaining_time_in_millis(self) -> int:
        return int((self._end - time.monotonic()) * 1000)


@dataclass
class Evidence:
    texts: dict[str, list[str]] = field(default_factory=dict)

    def add(self, where: str, text: object) -> None:
        self.texts.setdefault(where, []).append(text if isinstance(text, str) else json.dumps(text, default=str))

    def collect(self, records: Records, capfd: pytest.CaptureFixture[str], stack: Stack) -> None:
        """What a reader of the run could see: every log line, stdout and stderr, what core received."""
        for line in records.lines:
            self.add("log", line)
        captured = capfd.readouterr()
        self.add("stdout", captured.out)
        self.add("stderr", captured.err)
        for received in stack.core.received:
            self.add("core", {"body": received.body, "headers": received.headers, "path": received.path})

    def exception(self, where: str, call: Callable[[], object]) -> None:
        """Run `call`; its result, or its exception's text and formatted traceback, is evidence."""
        try:
            self.add(where, repr(call()))
        except Exception as error:
            self.add(where, str(error))
            self.add(where, "".join(traceback.format_exception(error)))


def _leaks(evidence: Evidence, needles: dict[str, str]) -> list[tuple[str, str]]:
    found = []
    for where, texts in evidence.texts.items():
        for text in texts:
            compact = re.sub(r"\s|\\n|\\r", "", text)  # a key re-wrapped or JSON-escaped
            for name, needle in needles.items():
                if needle in text or needle in compact or json.dumps(needle)[1:-1] in text:
                    found.append((where, name))
    return sorted(set(found))


def test_no_failure_path_leaks_the_key_or_the_password(stack: Stack, capfd: pytest.CaptureFixture[str]) -> None:
    canaries = Canaries(generate_private_key())
    secret_ref = stack.connection.secret_ref
    connection_id = stack.connection.connection_id
    secrets = boto3.client("secretsmanager")
    evidence = Evidence()
    paths: list[str] = []
    counter = iter(range(1000))

    def set_secret(document: dict[str, Any] | str) -> None:
        value = document if isinstance(document, str) else json.dumps(document)
        secrets.put_secret_value(SecretId=secret_ref, SecretString=value)

    def tick(path: str) -> dict[str, Any]:
        """One Lambda invocation (the real entry point, which configures the JSON log handler)."""
        paths.append(path)
        stack.put_events(stack.key(f"{path}-{next(counter)}"))
        report = handler({"connection_id": connection_id}, _Context())
        evidence.add(f"report:{path}", report)
        return report

    def set_key(public_key: str | None) -> None:
        if public_key is None:
            stack.admin_sql(f"ALTER USER {USER} UNSET RSA_PUBLIC_KEY")
        else:
            stack.admin_sql(f"ALTER USER {USER} SET RSA_PUBLIC_KEY = '{public_key}'")

    def ready_again() -> None:
        with open_store(stack.settings.connections_dsn) as store:
            evidence.add("status_detail", store.get(connection_id).status_detail or "")
            store.set_status(connection_id, ConnectionStatus.READY)

    def provision_path(path: str) -> None:
        paths.append(path)
        with open_store(stack.settings.connections_dsn) as store:
            outcome = provision(connection_id, settings=stack.settings, store=store)
        evidence.add(f"provision:{path}", outcome.summary())
        evidence.add(f"provision:{path}", repr(outcome))
        ready_again()

    with recording() as records:
        # The canary key becomes the connection's real key: every path below really uses it.
        set_key(public_key_b64(canaries.key))
        store_private_key(secret_ref, canaries.pem)
        stack.put(stack.key("corrupt"), gz(b"x" * 100)[:20])
        assert tick("loads-and-dead-letters")["files_dead_lettered"] == 1

        stack.admin_sql(f"ALTER PIPE {PIPE} SET PIPE_EXECUTION_PAUSED = TRUE")
        assert tick("paused-pipe")["status"] == "error"
        stack.admin_sql(f"ALTER PIPE {PIPE} SET PIPE_EXECUTION_PAUSED = FALSE")

        stack.admin_sql("ALTER WAREHOUSE COMPUTE_WH SET AUTO_RESUME = FALSE")
        stack.admin_sql("ALTER WAREHOUSE COMPUTE_WH SUSPEND")
        assert tick("suspended-warehouse")["status"] == "error"
        stack.admin_sql("ALTER WAREHOUSE COMPUTE_WH RESUME")
        stack.admin_sql("ALTER WAREHOUSE COMPUTE_WH SET AUTO_RESUME = TRUE")

        set_key(public_key_b64(generate_private_key()))
        assert tick("wrong-key")["status"] == "error"
        provision_path("provision-wrong-key")
        evidence.exception(
            "open_session:wrong-key",
            lambda: open_session(stack.connection, read_credentials(secret_ref), stack.settings, query_tag="t"),
        )
        set_key(None)
        assert tick("revoked-key")["status"] == "error"
        set_key(public_key_b64(canaries.key))

        bad_secrets: dict[str, dict[str, Any] | str] = {
            "not-json": f"not json {canaries.password} {canaries.pem}",
            "key-and-garbage": {"private_key": canaries.pem[:300] + canaries.password},
            "key-missing-footer": {"private_key": canaries.pem.rsplit("-----END", 1)[0]},
            "key-as-der-base64": {"private_key": "".join(canaries.pem.splitlines()[1:-1])},
            "wrong-passphrase": {
                "private_key": canaries.encrypted_pem("the-right-one"),
                "private_key_passphrase": canaries.passphrase,
            },
            "passphrase-not-a-string": {"private_key": canaries.pem, "private_key_passphrase": [canaries.password]},
            "password-as-key": {"private_key": canaries.password},
            "password": {"password": canaries.password},  # a password login Snowflake refuses
        }
        for name, document in bad_secrets.items():
            set_secret(document)
            assert tick(f"secret-{name}")["status"] == "error", name
            evidence.exception(f"read_credentials:{name}", lambda: read_credentials(secret_ref))
        set_secret({"password": canaries.password})
        provision_path("provision-password-secret")
        set_secret({"private_key": canaries.pem[:300] + canaries.password})
        provision_path("provision-bad-secret")

        set_secret(
            {"private_key": canaries.encrypted_pem(canaries.passphrase), "private_key_passphrase": canaries.passphrase}
        )
        assert tick("encrypted-key")["status"] == "ok"
        evidence.exception("credentials-repr", lambda: read_credentials(secret_ref))
        evidence.add("credentials-str", str(read_credentials(secret_ref)))

        stack.core.fail_next(10)
        assert tick("core-outage")["metrics_posted"] is False

        # Injected request failures last: no admin statement runs after them.
        for failures in (1, 2, 3):  # at login, then later (more make the connector retry for minutes)
            stack.standin.control.inject_faults(ACCOUNT, fail_requests=failures)
            tick(f"network-fault-{failures}")
        stack.standin.control.inject_faults(ACCOUNT, fail_requests=2)
        provision_path("provision-network-fault")
        paths.append("cli-load")
        set_secret({"password": canaries.password})
        stack.put_events(stack.key("cli"))
        assert cli.main(["load", "--connection-id", connection_id, "--json", "--budget-seconds", "8"]) == 4  # refused
        assert cli.main(["status", "--connection-id", connection_id]) == 0

    evidence.collect(records, capfd, stack)
    for key in keys(stack.settings.bucket, "dead-letter/"):
        evidence.add(
            "dead-letter", stack.s3.get_object(Bucket=stack.settings.bucket, Key=key)["Body"].read().decode("latin-1")
        )

    # The search can find what it looks for: the secret really held the canaries.
    planted = Evidence()
    planted.add("secret", secrets.get_secret_value(SecretId=secret_ref)["SecretString"])
    planted.add("pem", canaries.pem)
    planted.add("password", json.dumps({"password": canaries.password, "passphrase": canaries.passphrase}))
    der = serialization.load_pem_private_key(canaries.pem.encode(), None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    planted.add("der", f"{der.hex()} {der!r} {canaries.key.private_numbers().d}")
    assert {name for _, name in _leaks(planted, canaries.needles())} == set(canaries.needles())

    # Every path was really exercised, and the evidence is not empty.
    assert len(paths) >= 20
    assert any('"level": "WARNING"' in line or '"level": "ERROR"' in line for line in records.lines)
    assert any("run report" in line for line in records.lines)
    assert stack.core.received
    assert config.load().core_api_url == stack.core.url

    assert _leaks(evidence, canaries.needles()) == []


def test_no_store_token_or_aws_failure_leaks_the_database_password_the_token_or_the_aws_key(
    stack: Stack, pg_dsn: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other secrets a tick holds: the connection database's password (in FLOE_CONNECTIONS_DSN or its
    secret), the core API's bearer token, and the AWS secret access keys (the function's and a data-role
    session's), over every way reading or using them can fail."""
    from kernel import dsn as dsn_module
    from loader import data_access, dispatch

    db_password = f"FLOE-CANARY-DBPW-{uuid.uuid4().hex}"
    token = f"FLOE-CANARY-TOKEN-{uuid.uuid4().hex}"
    aws_key = f"FLOE-CANARY-AWSKEY-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_key)  # moto accepts any key; every request is signed with it
    boto3.setup_default_session()  # so boto3's default session picks the key up
    secrets = boto3.client("secretsmanager")
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="floe-loader-data", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    evidence = Evidence()
    paths: list[str] = []
    host = urlsplit(pg_dsn)
    bad_dsns = {
        "bad-escape": f"postgresql://floe:{db_password}%zz@127.0.0.1/db",
        "bad-sslmode": f"postgresql://floe:{db_password}@127.0.0.1:1/db?sslmode=bogus",
        "unclosed-ipv6": f"postgresql://floe:{db_password}@[::1/db",
        "db-down": f"postgresql://floe:{db_password}@127.0.0.1:1/db",
        "auth-failure": f"postgresql://{host.username}:{db_password}@{host.hostname}:{host.port}/postgres",
    }
    secrets.create_secret(Name="floe/core-token", SecretString=token)

    def tick(path: str) -> None:
        paths.append(path)
        dsn_module._dsns.clear()  # a fresh process: the DSN secret is read again
        evidence.add(f"report:{path}", handler({"connection_id": stack.connection.connection_id}, _Context()))
        evidence.exception(f"dispatch:{path}", lambda: dispatch.handler({}, None))

    monkeypatch.setenv("FLOE_LOADER_FUNCTION", "floe-loader")
    with recording() as records:
        for name, dsn in bad_dsns.items():
            with monkeypatch.context() as env:
                env.setenv("FLOE_CONNECTIONS_DSN", dsn)
                tick(f"dsn-{name}")
            with monkeypatch.context() as env:
                secrets.create_secret(Name=f"floe/dsn-{name}", SecretString=dsn)
                env.delenv("FLOE_CONNECTIONS_DSN")
                env.setenv("FLOE_CONNECTIONS_DSN_SECRET", f"floe/dsn-{name}")
                tick(f"dsn-secret-{name}")
            evidence.exception(f"open_store:{name}", partial(open_store, dsn))
        with monkeypatch.context() as env:
            env.setenv("FLOE_CORE_API_URL", "https://127.0.0.1:9/runs")
            env.setenv("FLOE_CORE_API_TOKEN_SECRET", "floe/missing-token")
            stack.put_events(stack.key("token-unreadable"))
            tick("token-unreadable")
            env.setenv("FLOE_CORE_API_TOKEN_SECRET", "floe/core-token")
            stack.put_events(stack.key("core-unreachable"))
            tick("token-read-core-unreachable")
        with monkeypatch.context() as env:
            env.setenv("FLOE_LOADER_DATA_ROLE_ARN", role)
            stack.put_events(stack.key("data-role"))
            tick("data-role-session")
        sessions = list(data_access._sessions.values())
        paths.append("cli-load")
        with monkeypatch.context() as env:
            env.setenv("FLOE_CONNECTIONS_DSN", bad_dsns["bad-escape"])
            assert cli.main(["load", "--connection-id", stack.connection.connection_id, "--json"]) == 2  # config
            status = ["status", "--connection-id", stack.connection.connection_id]
            evidence.exception("cli-status", lambda: cli.main(status))

    evidence.collect(records, capfd, stack)

    needles = {"db-password": db_password, "token": token, "aws-key": aws_key}
    needles |= {f"session-key-{i}": session.secret_access_key for i, session in enumerate(sessions)}
    assert sessions, "the data-role path really assumed a session"
    assert len(paths) >= 14
    assert sum('"status": "error"' in text for text in evidence.texts["report:dsn-bad-escape"]) == 1
    assert any("(authentication failed)" in text for text in evidence.texts["report:dsn-auth-failure"])
    assert any("metrics not sent" in text for text in evidence.texts["report:token-unreadable"])
    assert _leaks(evidence, needles) == []

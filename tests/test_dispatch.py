"""The scheduled dispatcher invokes the loader once per active connection, over moto's Lambda API."""

from __future__ import annotations

import io
import json
import traceback
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.aws import MotoServer
from kernel.config import Settings
from kernel.connections import Connection, open_store
from loader.dispatch import DispatchFailed, dispatch, handler


def connection(connection_id: str, org_id: str, active: bool) -> Connection:
    return Connection(
        connection_id=connection_id,
        org_id=org_id,
        account="ACME",
        user="LOADER",
        role="LOADER_ROLE",
        warehouse="WH",
        database="DB",
        schema="S",
        table="T",
        secret_ref=f"floe/connections/{connection_id}",
        active=active,
    )


def test_one_asynchronous_invocation_per_active_connection(aws: MotoServer, tmp_path: Path) -> None:
    settings = Settings(connections_dsn=f"sqlite:///{tmp_path}/c.db")
    with open_store(settings.connections_dsn) as store:
        store.migrate()
        for cid, org, active in [("c-1", "acme", True), ("c-2", "globex", True), ("c-3", "initech", False)]:
            store.add(connection(cid, org, active))
    role = boto3.client("iam").create_role(RoleName="loader", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("h.py", "def handler(event, context):\n    return event\n")
    client = boto3.client("lambda")
    client.create_function(
        FunctionName="floe-loader",
        Runtime="python3.12",
        Role=role,
        Handler="h.handler",
        Code={"ZipFile": archive.getvalue()},
    )
    sent: list[dict[str, Any]] = []

    def record(request: Any, **_: Any) -> None:  # observes the real HTTP request, changes nothing
        sent.append({"type": request.headers["X-Amz-Invocation-Type"], "body": request.body})

    client.meta.events.register("before-send.lambda.Invoke", record)
    report = dispatch("floe-loader", settings, client)
    assert report == {"invoked": 2, "failed": []}
    assert sorted(json.loads(s["body"])["connection_id"] for s in sent) == ["c-1", "c-2"]
    assert [s["type"] for s in sent] == [b"Event", b"Event"]


def test_a_refused_invocation_does_not_stop_the_others(aws: MotoServer, tmp_path: Path) -> None:
    settings = Settings(connections_dsn=f"sqlite:///{tmp_path}/c.db")
    with open_store(settings.connections_dsn) as store:
        store.migrate()
        store.add(connection("c-1", "acme", True))
    report = dispatch("no-such-function", settings, boto3.client("lambda"))
    assert report == {"invoked": 0, "failed": ["c-1"]}


def test_a_bad_dsn_fails_the_dispatch_with_its_kind_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raised, so the dispatcher-errors alarm (the Lambda's Errors) fires; never with the driver's text,
    which the runtime would log as it is."""
    monkeypatch.setenv("FLOE_LOADER_FUNCTION", "floe-loader")
    monkeypatch.setenv("FLOE_CONNECTIONS_DSN", "postgresql://floe:FLOE-CANARY%zz@127.0.0.1/db")
    with pytest.raises(DispatchFailed) as failed:
        handler({}, None)
    assert "(malformed DSN)" in str(failed.value)
    assert "FLOE-CANARY" not in "".join(traceback.format_exception(failed.value))

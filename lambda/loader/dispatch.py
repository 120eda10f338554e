"""The optional scheduled dispatcher: one asynchronous loader invocation per active connection.

For deployments without a task processor (terraform `enable_schedule`). It only reads connection ids and
invokes; it never sees credentials or files, so one organisation's failure cannot reach another's run.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import boto3

from kernel import config, logs
from kernel.dsn import open_configured_store
from kernel.errors import FloeError, describe

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

log = logs.get("dispatch")


class DispatchFailed(FloeError):
    """The dispatch could not start (a setting, the DSN, the connection database): raised so the Lambda's
    Errors metric (the dispatcher-errors alarm) counts it, with a message that is `describe`d, never raw."""


def handler(event: Any, context: Any) -> dict[str, Any]:  # noqa: ARG001 - the Lambda signature
    logs.configure()
    try:
        function = os.environ.get("FLOE_LOADER_FUNCTION", "")
        if not function:
            raise config.ConfigError("FLOE_LOADER_FUNCTION must name the loader Lambda")
        return dispatch(function, config.load(), boto3.client("lambda"))
    except Exception as error:  # the runtime would log a foreign exception's text (a DSN?) as it is
        log.error("dispatch failed", extra={"error": describe(error)})
        raise DispatchFailed(describe(error)) from None


def dispatch(function: str, settings: config.Settings, client: LambdaClient) -> dict[str, Any]:
    with open_configured_store(settings) as store:
        connection_ids = [c.connection_id for c in store.list(active_only=True)]
    failed: list[str] = []
    for connection_id in connection_ids:
        payload = json.dumps({"connection_id": connection_id}).encode()
        try:
            client.invoke(FunctionName=function, InvocationType="Event", Payload=payload)
        except Exception:  # one refused invocation must not keep the others from theirs
            log.warning("invoke failed", extra={"connection_id": connection_id}, exc_info=True)
            failed.append(connection_id)
    report = {"invoked": len(connection_ids) - len(failed), "failed": failed}
    log.info("dispatched", extra=report)
    return report

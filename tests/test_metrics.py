"""Posting run metrics to core, against the core receiver over HTTP."""

from __future__ import annotations

from devstack.core_api import CoreReceiver
from loader.metrics import CoreMetrics

PAYLOAD = {"run_id": "run-1", "events_delivered": 3}


def test_metrics_are_posted_with_the_run_id_as_idempotency_key(core_api: CoreReceiver) -> None:
    assert CoreMetrics(core_api.url, token=lambda: "t0ken").post(PAYLOAD) is None
    [received] = core_api.received
    assert received.body == PAYLOAD
    assert received.headers["idempotency-key"] == "run-1"
    assert received.headers["authorization"] == "Bearer t0ken"


def test_a_core_outage_is_retried_then_reported_without_raising(core_api: CoreReceiver) -> None:
    core_api.fail_next(2)
    assert CoreMetrics(core_api.url, attempts=3, backoff=0.01).post(PAYLOAD) is None
    assert core_api.runs() == [PAYLOAD]
    core_api.fail_next(5)
    assert CoreMetrics(core_api.url, attempts=3, backoff=0.01).post({"run_id": "run-2"}) == "core answered HTTP 503"
    assert [r["run_id"] for r in core_api.runs()] == ["run-1"]


def test_a_refusal_is_not_retried(core_api: CoreReceiver) -> None:
    core_api.fail_next(1, status=400)
    refused = CoreMetrics(core_api.url, attempts=3, backoff=0.01).post(PAYLOAD)
    assert refused == "core refused the run report with HTTP 400"
    assert core_api.received == []


def test_an_unreachable_core_is_reported_not_raised() -> None:
    assert CoreMetrics("http://127.0.0.1:9/runs", attempts=2, backoff=0.01).post(PAYLOAD) == (
        "core unreachable: ConnectionRefusedError"
    )

"""The run-report log line is the run's CloudWatch metrics, in the Embedded Metric Format:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
Each line is parsed as CloudWatch would and validated against the specification's required fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from kernel import logs
from loader.handler import _logged
from loader.report import RunReport, RunStatus
from tests.contracts import EMF_DIMENSIONS, EMF_METRICS, EMF_NAMESPACE

# The specification's StandardUnit values that Floe uses.
UNITS = {"Count", "Seconds", "Milliseconds"}


def validate(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The specification's rules for a root node; returns its metric directives."""
    metadata = document["_aws"]
    assert isinstance(metadata["Timestamp"], int)
    assert metadata["Timestamp"] > 1_600_000_000_000  # milliseconds since the epoch
    directives: list[dict[str, Any]] = metadata["CloudWatchMetrics"]
    assert directives
    for directive in directives:
        assert 1 <= len(directive["Namespace"]) <= 255
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30
            for name in dimension_set:  # every dimension is a top-level member holding a string
                assert isinstance(document[name], str)
                assert document[name]  # CloudWatch refuses empty dimension values
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert 1 <= len(metric["Name"]) <= 255
            assert metric.get("Unit", "None") in UNITS
            value = document[metric["Name"]]  # every metric is a top-level member holding a number
            assert isinstance(value, int | float)
            assert not isinstance(value, bool)
    return directives


@contextmanager
def report_lines() -> Iterator[list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "run report":
                lines.append(json.loads(logs.JsonFormatter().format(record)))

    capture, logger = Capture(), logging.getLogger("floe")
    level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)


def test_a_busy_runs_line_is_a_valid_emf_document_with_every_metric_and_dimension_set() -> None:
    started = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    report = RunReport(run_id="r-1", connection_id="c-1", started_at=started, org_id="acme")
    report.status, report.completed_at = RunStatus.PARTIAL, started + timedelta(seconds=12.5)
    report.events_delivered, report.files_loaded, report.files_dead_lettered, report.files_in_flight = 30, 3, 1, 2
    report.snowflake_statements, report.warehouse_statements, report.lag_seconds = 7, 2, 95.5
    with report_lines() as lines:
        _logged(report, tick_id=None)
    (line,) = lines
    (directive,) = validate(line)
    assert directive["Namespace"] == EMF_NAMESPACE
    assert directive["Dimensions"] == EMF_DIMENSIONS
    assert {metric["Name"] for metric in directive["Metrics"]} == EMF_METRICS
    assert (line["connection_id"], line["status"]) == ("c-1", "partial")
    assert {name: line[name] for name in EMF_METRICS} == {
        "EventsDelivered": 30,
        "FilesLoaded": 3,
        "FilesDeadLettered": 1,
        "FilesInFlight": 2,
        "LagSeconds": 95.5,
        "RunDurationMs": 12500,
        "SnowflakeStatements": 7,
        "WarehouseStatements": 2,
        "RunFailed": 0,
    }
    assert line["_aws"]["Timestamp"] == int((started + timedelta(seconds=12.5)).timestamp() * 1000)
    assert line["report"]["status"] == "partial"  # the report itself is still in the line


def test_a_refused_event_counts_as_a_failed_run_in_the_roll_up_only() -> None:
    from loader.handler import run
    from loader.tick import Deadline

    with report_lines() as lines:
        run({"not": "an event"}, Deadline.after(5))
    (line,) = lines
    (directive,) = validate(line)
    assert directive["Dimensions"] == [[]]  # no connection known: an empty dimension value is refused
    assert line["RunFailed"] == 1

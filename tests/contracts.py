"""What docs/metrics.md promises, written once for the tests that hold the code and the Terraform to it."""

from __future__ import annotations

# The loader's Embedded Metric Format contract (docs/metrics.md, docs/operations.md "Metrics").
EMF_NAMESPACE = "Floe"
EMF_METRICS = {
    "EventsDelivered",
    "FilesLoaded",
    "FilesDeadLettered",
    "FilesInFlight",
    "LagSeconds",
    "RunDurationMs",
    "SnowflakeStatements",
    "WarehouseStatements",
    "RunFailed",
}
EMF_DIMENSIONS = [["connection_id", "status"], ["connection_id"], []]

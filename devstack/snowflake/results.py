"""JSON rowset responses for the statements the stand-in answers itself."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

# The connector's statement type ids: SELECT makes it read the rowset as a query result.
SELECT_STATEMENT_TYPE = 0x1000


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "text"  # text | fixed | boolean | timestamp_ltz | variant


def _rowtype(column: Column) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": column.name,
        "database": "",
        "schema": "",
        "table": "",
        "nullable": True,
        "type": column.type,
        "byteLength": None,
        "length": None,
        "scale": None,
        "precision": None,
        "collation": None,
    }
    if column.type == "fixed":
        info.update(precision=38, scale=0)
    elif column.type == "text":
        info.update(byteLength=16777216, length=16777216)
    elif column.type.startswith("timestamp"):
        info.update(precision=0, scale=9)
    return info


def _encode(column: Column, value: Any) -> str | None:
    """Values as the connector's JSON converters expect them (timestamps as epoch seconds)."""
    if value is None:
        return None
    if column.type == "boolean":
        return "1" if value else "0"
    if column.type.startswith("timestamp"):
        return f"{float(value):.9f}"
    if column.type == "variant" and not isinstance(value, str):
        return json.dumps(value)
    return str(value)


@dataclass
class Result:
    columns: list[Column]
    rows: list[list[Any]]

    def data(self, database: str | None, schema: str | None) -> dict[str, Any]:
        return {
            "parameters": [{"name": "TIMEZONE", "value": "Etc/UTC"}],
            "rowtype": [_rowtype(c) for c in self.columns],
            "rowset": [[_encode(c, v) for c, v in zip(self.columns, row, strict=True)] for row in self.rows],
            "total": len(self.rows),
            "returned": len(self.rows),
            "queryId": str(uuid.uuid4()),
            "statementTypeId": SELECT_STATEMENT_TYPE,
            "queryResultFormat": "json",
            "finalDatabaseName": database,
            "finalSchemaName": schema,
        }


def status(message: str) -> Result:
    return Result([Column("status")], [[message]])


def columns(*specs: str) -> list[Column]:
    """``columns("name", "rows:fixed")`` -> Column list."""
    out: list[Column] = []
    for spec in specs:
        name, _, kind = spec.partition(":")
        out.append(Column(name, kind or "text"))
    return out

"""`floe status`: each connection's delivery status from its run history (rules: docs/metrics.md).

`--json` prints what a core endpoint would serve for the organisation's integration page.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kernel.run_history import RETENTION, derive

if TYPE_CHECKING:
    from kernel.connections import Connection, ConnectionStore


def show_status(args: argparse.Namespace) -> int:
    from floe.cli import connection_store

    with connection_store() as (_, store):
        chosen = [store.get(args.connection_id)] if args.connection_id else store.list()
        documents = [status_document(store, connection, datetime.now(UTC)) for connection in chosen]
    if args.json:
        print(json.dumps(documents[0] if args.connection_id else documents, indent=2))
    elif args.connection_id:
        print(_details(documents[0]))
    else:
        print(_table(documents))
    return 0


def status_document(store: ConnectionStore, connection: Connection, now: datetime) -> dict[str, Any]:
    """The connection's setup state beside its delivery status."""
    delivery = derive(store.runs(connection.connection_id, since=now - RETENTION), now)
    return {
        "connection_id": connection.connection_id,
        "organisation_id": connection.org_id,
        "setup": connection.status.value,
        "setup_detail": connection.status_detail,
        "active": connection.active,
        **delivery.as_dict(),
    }


def _details(document: dict[str, Any]) -> str:
    lines = [
        f"{document['connection_id']} (org {document['organisation_id']}): {document['status']}",
        f"  {document['reason']}",
        f"  setup              {document['setup']}{'' if document['active'] else ', paused'}",
        f"  last delivery      {document['last_delivery_at'] or 'none in the last 8 days'}",
        f"  events delivered   {document['events_delivered_24h']} in 24 h, {document['events_delivered_7d']} in 7 d",
        f"  failed deliveries  {document['failed_deliveries_24h']} in 24 h",
    ]
    if document["setup_detail"]:
        lines.insert(3, f"                     {document['setup_detail']}")
    lines += [f"  error {error['at']}: {error['error']}" for error in document["recent_errors"]]
    return "\n".join(lines)


def _table(documents: list[dict[str, Any]]) -> str:
    if not documents:
        return "no connections yet: add one with `floe connection add`"
    head = f"{'CONNECTION':<22}{'SETUP':<24}{'STATUS':<10}{'EVENTS 24H':>11}{'FAILED 24H':>11}  LAST DELIVERY"
    rows = [
        f"{d['connection_id']:<22}{d['setup'] + ('' if d['active'] else ', paused'):<24}{d['status']:<10}"
        f"{d['events_delivered_24h']:>11}{d['failed_deliveries_24h']:>11}  {d['last_delivery_at'] or '-'}"
        for d in documents
    ]
    return "\n".join([head, *rows])

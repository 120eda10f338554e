"""Plain-text (Markdown) rendering of the results."""

from __future__ import annotations

from typing import Any

_S3_SHORT = {
    "ListObjectsV2": "List",
    "DeleteObjects": "Delete",
    "CopyObject": "Copy",
    "PutObject": "Put",
    "GetObject": "Get",
    "HeadObject": "Head",
}
_SF_SHORT = {"refresh_pipe": "refresh", "copy_history": "copy_history", "pipe_status": "pipe_status"}


def _kinds(counts: dict[str, int], short: dict[str, str]) -> str:
    return ", ".join(f"{short.get(k, k)} {v}" for k, v in counts.items()) or "-"


def _x(value: float | None) -> str:
    return "" if value is None else f" ({value:.2f}x)"


def markdown(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *body, strict=True)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    lines.extend("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in body)
    return "\n".join(lines)


def render_table(rows: list[dict[str, Any]], cold: dict[str, Any] | None) -> str:
    header = [
        "scenario",
        "loader",
        "files",
        "events",
        "wall s (x floor)",
        "S3 requests by kind (x floor)",
        "Snowflake statements by kind",
        "warehouse stmts",
        "warehouse resumes",
        "peak RSS MB",
    ]
    body = []
    for row in rows:
        sf = row["snowflake"]
        kinds = dict(sf["by_kind"])
        body.append(
            [
                row["title"],
                row["approach"],
                str(row["files"]),
                str(row["events"]),
                f"{row['wall_s']:.2f}{_x(row.get('wall_x_floor'))}",
                f"{_kinds(row['s3'], _S3_SHORT)}{_x(row.get('s3_x_floor'))}",
                _kinds(kinds, _SF_SHORT),
                str(sf["warehouse_statements"]),
                str(sf["warehouse_resumes"]),
                f"{row.get('children_peak_rss_mb', row['peak_rss_mb']):.0f}",
            ]
        )
    if cold:
        bytecode = cold["bytecode"]
        cold_rows = [
            (
                "cold start (idle path), from source",
                f"{cold['first_s3_s']:.3f} to 1st S3 call ({cold['ratio_to_boto3']:.2f}x import boto3 "
                f"{cold['boto3_import_s']:.3f})",
            ),
            (
                "cold start (idle path), from bytecode",
                f"{bytecode['first_s3_s']:.3f} to 1st S3 call ({bytecode['ratio_to_boto3']:.2f}x import boto3 "
                f"{bytecode['boto3_import_s']:.3f}; {bytecode['ratio_to_boto3_and_s3_client']:.2f}x it and an S3 "
                f"client {bytecode['s3_client_s']:.3f})",
            ),
        ]
        snowflake = cold["snowflake"]
        for title, wall in cold_rows:
            body.append(
                [
                    title,
                    "floe",
                    "0",
                    "0",
                    wall,
                    "List 1",
                    "-" if not snowflake["statements"] else f"{snowflake['statements']} statements",
                    str(snowflake["warehouse_statements"]),
                    str(snowflake["warehouse_resumes"]),
                    "",
                ]
            )
    return markdown(header, body)


def render_costs(costs: list[dict[str, Any]]) -> str:
    if not costs:
        return "(no warehouse model: run idle and a busy scenario)"
    header = ["loader", "tick mix", "AUTO_SUSPEND s", "resumes/day", "warehouse h/day", "XS credits/day"]
    body = [
        [
            c["approach"],
            c["mix"],
            f"{c['auto_suspend_s']:.0f}",
            str(c["resumes_per_day"]),
            f"{c['billed_hours_per_day']:.2f}",
            f"{c['credits_per_day_xs']:.2f}",
        ]
        for c in costs
    ]
    return markdown(header, body)


def render_targets(targets: list[dict[str, Any]]) -> str:
    header = ["target", "measured", "met"]
    body = [[t["target"], str(t["measured"]), {True: "yes", False: "NO", None: "?"}[t["met"]]] for t in targets]
    return markdown(header, body)


def render_steady(steady: dict[str, Any]) -> str:
    """The steady scenario: per approach and mix, its counters and its XS credits per day."""
    header = [
        "approach",
        "mix",
        "ticks (busy)",
        "wh stmts",
        "resumes (stand-in, 60 s)",
        "REST requests",
        "XS credits/day (60 s)",
        "XS credits/day (600 s)",
    ]
    body = [
        [
            r["approach"],
            r["mix"],
            f"{r['ticks']} ({r['busy_ticks']})",
            str(r["warehouse_statements"]),
            str(r["warehouse_resumes_standin"]),
            _kinds(r["rest_requests"], {}) or "-",
            f"{r['xs_credits_per_day']['60']:.2f}",
            f"{r['xs_credits_per_day']['600']:.2f}",
        ]
        for r in steady["runs"]
    ]
    return markdown(header, body) + "\n\n" + render_targets(steady["targets"])

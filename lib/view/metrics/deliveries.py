"""The delivery inspector (Sync page): every kept delivery, and for one of them what ingest made
of it (its report, written by lib/store/ingest in the delivery's own transaction), plus its raw
body for operators with the apiKey and the callback secret taken out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import duckdb
import pandas as pd

from lib.view.metrics.relation import fetch_frame

REDACTED = "***"
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024  # larger bodies are read on the server's disk instead


def recent_deliveries(cursor: duckdb.DuckDBPyConnection, limit: int = 200) -> pd.DataFrame:
    """The newest deliveries, whatever their state (the inspector's chooser)."""
    return fetch_frame(
        cursor,
        """
        SELECT id, received_at, campaign_name AS campaign,
               CASE WHEN state = 'ingested' AND coalesce(warnings, 0) > 0
                    THEN 'ingested with warnings'
                    WHEN state = 'received' AND error IS NOT NULL THEN 'retrying'
                    ELSE state END AS state,
               rows, coalesce(warnings, 0) AS warnings, size_bytes
        FROM raw_deliveries ORDER BY id DESC LIMIT $limit
        """,
        {"limit": int(limit)},
    )


@dataclass(frozen=True)
class DeliveryDetail:
    id: int
    received_at: object
    content_type: str | None
    size_bytes: int
    source_addr: str | None
    state: str
    campaign: str | None
    unique_id: str | None
    rows: int | None
    warnings: int
    error: str | None
    pruned: bool
    report: dict

    def fields(self) -> pd.DataFrame:
        """Every field found and how it was mapped (to which column, or kept as extra)."""
        rows = [
            {
                "delivered field": f.get("field"),
                "dashboard column": f.get("column") or "(kept as extra)",
                "mapped by": f.get("how"),
            }
            for f in self.report.get("fields") or []
        ]
        return pd.DataFrame(rows, columns=["delivered field", "dashboard column", "mapped by"])

    def failures(self) -> pd.DataFrame:
        """Per column, the values that did not parse: how many, and up to 3 masked examples."""
        rows = [
            {
                "column": column,
                "values not read": int(item.get("count") or 0),
                "examples": ", ".join(str(e) for e in (item.get("examples") or [])[:3]),
            }
            for column, item in (self.report.get("failures") or {}).items()
        ]
        return pd.DataFrame(rows, columns=["column", "values not read", "examples"])

    def formats(self) -> pd.DataFrame:
        rows = [
            {
                "column": column,
                "format read": item.get("label") or item.get("format"),
                "note": (
                    f"ambiguous: decided by {item.get('decided_by')}"
                    if item.get("ambiguous")
                    else ""
                ),
            }
            for column, item in (self.report.get("formats") or {}).items()
        ]
        return pd.DataFrame(rows, columns=["column", "format read", "note"])

    def unknown_values(self) -> pd.DataFrame:
        """Dial status and status values outside the known vocabulary, and their bucket."""
        rows = [
            {
                "field": kind,
                "value": item.get("value"),
                "counted as": item.get("bucket"),
                "leads": item.get("leads"),
                "mapped by": item.get("mapped_by"),
            }
            for kind, items in (self.report.get("unknown_values") or {}).items()
            for item in items
        ]
        return pd.DataFrame(rows, columns=["field", "value", "counted as", "leads", "mapped by"])


def delivery_detail(cursor: duckdb.DuckDBPyConnection, delivery_id: int) -> DeliveryDetail | None:
    row = cursor.execute(
        """
        SELECT id, received_at, content_type, size_bytes, source_addr, state, campaign_name,
               unique_id, rows, coalesce(warnings, 0), error, pruned_at IS NOT NULL, report
        FROM raw_deliveries WHERE id = ?
        """,
        [int(delivery_id)],
    ).fetchone()
    if row is None:
        return None
    *head, report = row
    return DeliveryDetail(*head, report=json.loads(report) if report else {})


def redacted_body(
    cursor: duckdb.DuckDBPyConnection, delivery_id: int, hidden: tuple[str, ...]
) -> bytes | None:
    """The raw body as received with every `hidden` text (the apiKey, the callback secret)
    replaced by ***; None when the body is gone (pruned by retention)."""
    row = cursor.execute(
        "SELECT path FROM raw_deliveries WHERE id = ? AND pruned_at IS NULL", [int(delivery_id)]
    ).fetchone()
    if row is None:
        return None
    try:
        body = Path(row[0]).read_bytes()
    except FileNotFoundError:
        return None
    for secret in hidden:
        if not secret:
            continue
        # As sent, and as a form body or a query string would carry it.
        for spelling in dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret))):
            body = body.replace(spelling.encode(), REDACTED.encode())
    return body


# What recent deliveries brought (their reports): the Settings tables are pre-filled from it.
_RECENT_REPORTS = 50


def seen_fields(cursor: duckdb.DuckDBPyConnection) -> list[str]:
    """The delivered field names of the newest reports, newest delivery first."""
    rows = cursor.execute(
        f"""
        SELECT field, max(id) AS newest FROM (
            SELECT id, unnest(json_extract_string(report, '$.fields[*].field')) AS field
            FROM (SELECT id, report FROM raw_deliveries WHERE report IS NOT NULL
                  ORDER BY id DESC LIMIT {_RECENT_REPORTS})
        ) WHERE field IS NOT NULL GROUP BY field ORDER BY newest DESC, field
        """
    ).fetchall()
    return [field for field, _ in rows]


def seen_unknown_values(cursor: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """(field, value) -> the bucket it fell into, for the values outside the known vocabulary
    in the newest reports."""
    found: dict[tuple[str, str], str] = {}
    rows = cursor.execute(
        f"SELECT report FROM raw_deliveries WHERE report IS NOT NULL "
        f"ORDER BY id DESC LIMIT {_RECENT_REPORTS}"
    ).fetchall()
    for (text,) in rows:
        for kind, items in (json.loads(text).get("unknown_values") or {}).items():
            for item in items:
                if item.get("value") is not None:
                    found.setdefault((kind, str(item["value"])), str(item.get("bucket")))
    return found

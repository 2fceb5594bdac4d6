"""Freshness and sync status: data as of, per-campaign freshness, the request log, requests
in flight and deliveries that failed (the Sync page and every page's header)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import duckdb
import pandas as pd

from lib.view.metrics.relation import fetch_frame

# Clocks differ by seconds, not by this much: a lead dated later than now plus this is named on
# the Sync page (the account's zone or an agent's clock is wrong).
FUTURE_TOLERANCE = timedelta(minutes=5)

# Per campaign, when its last delivery was stored (a small table: one row per delivery).
_LAST_DELIVERY = """
    d AS (
        SELECT campaign_name, max(coalesce(ingested_at, received_at)) AS last_delivery_at
        FROM raw_deliveries WHERE state = 'ingested' GROUP BY ALL
    )
"""


def data_as_of(cursor: duckdb.DuckDBPyConnection, campaigns: Iterable[str]) -> pd.DataFrame:
    """Per named campaign: data_as_of (last successful sync, else last delivery).

    The line every page shows on every run, so it reads no lead: `freshness` adds lead counts."""
    return fetch_frame(
        cursor,
        f"""
        WITH {_LAST_DELIVERY}
        SELECT n.campaign, coalesce(s.last_success_at, d.last_delivery_at) AS data_as_of
        FROM (SELECT DISTINCT unnest($names::VARCHAR[]) AS campaign) n
        LEFT JOIN d ON d.campaign_name = n.campaign
        LEFT JOIN sync_state s ON s.campaign_name = n.campaign
        ORDER BY n.campaign
        """,
        {"names": list(campaigns)},
    )


def freshness(cursor: duckdb.DuckDBPyConnection, campaigns: Iterable[str] = ()) -> pd.DataFrame:
    """Per campaign (catalog + stored): enabled, leads, newest_update, dated_after_now (leads
    updated or created over FUTURE_TOLERANCE after now: a wrong clock or zone),
    last_success_at, last_delivery_at, data_as_of (last success, else last delivery),
    last_error, last_error_at."""
    names = list(campaigns)
    return fetch_frame(
        cursor,
        f"""
        WITH l AS (
            SELECT campaign_name, count(*) AS leads, max(updated_at) AS newest_update,
                   count(*) FILTER (
                       WHERE greatest(updated_at, created_at) > now() + $future_tolerance
                   ) AS dated_after_now
            FROM leads WHERE len($names) = 0 OR list_contains($names, campaign_name) GROUP BY ALL
        ), names AS (
            SELECT name AS campaign FROM campaigns UNION SELECT campaign_name FROM l
        ), {_LAST_DELIVERY}
        SELECT n.campaign, c.enabled, c.source, coalesce(l.leads, 0) AS leads, l.newest_update,
               coalesce(l.dated_after_now, 0) AS dated_after_now,
               s.last_success_at, d.last_delivery_at,
               coalesce(s.last_success_at, d.last_delivery_at) AS data_as_of,
               s.full_load_done, s.last_error, s.last_error_at
        FROM names n
        LEFT JOIN campaigns c ON c.name = n.campaign
        LEFT JOIN l ON l.campaign_name = n.campaign
        LEFT JOIN d ON d.campaign_name = n.campaign
        LEFT JOIN sync_state s ON s.campaign_name = n.campaign
        WHERE len($names) = 0 OR list_contains($names, n.campaign)
        ORDER BY n.campaign
        """,
        {"names": names, "future_tolerance": FUTURE_TOLERANCE},
    )


def sync_requests(cursor: duckdb.DuckDBPyConnection, limit: int = 200) -> pd.DataFrame:
    """The newest requests sent to CloudAgent (parameters are stored with secrets redacted)."""
    return fetch_frame(
        cursor,
        """
        SELECT id, campaign_name AS campaign, kind, state, CAST(params AS VARCHAR) AS params,
               unique_id, queued_at, sent_at, accepted_at, delivered_at, rows, error
        FROM sync_requests ORDER BY id DESC LIMIT $limit
        """,
        {"limit": int(limit)},
    )


def active_requests(cursor: duckdb.DuckDBPyConnection) -> int:
    """Requests queued or waiting for CloudAgent's delivery (for the "sync in progress" state)."""
    return int(
        cursor.execute(
            "SELECT count(*) FROM sync_requests WHERE state IN ('queued', 'sent', 'accepted')"
        ).fetchone()[0]
    )


def failed_deliveries(cursor: duckdb.DuckDBPyConnection, limit: int = 100) -> pd.DataFrame:
    """Callback bodies not read: given up ('failed'), or waiting for a retry after a transient
    failure ('received' with an error); bodies are kept on disk for inspection."""
    return fetch_frame(
        cursor,
        """
        SELECT id, received_at, campaign_name AS campaign, unique_id, request_id, content_type,
               size_bytes, CASE state WHEN 'received' THEN 'retrying' ELSE state END AS state,
               attempts, error, regexp_extract(path, '[^/\\\\]+$') AS file
        FROM raw_deliveries
        WHERE state = 'failed' OR (state = 'received' AND error IS NOT NULL)
        ORDER BY id DESC LIMIT $limit
        """,
        {"limit": int(limit)},
    )


def total_leads(cursor: duckdb.DuckDBPyConnection) -> int:
    return int(cursor.execute("SELECT count(*) FROM leads").fetchone()[0])


def imposed_waits(cursor: duckdb.DuckDBPyConnection, limit: int = 20) -> pd.DataFrame:
    """The newest waits CloudAgent imposed (Max limit exceeded, 429, Retry-After), from the
    limiter's durable journal; `in_force` marks those no request may be sent before."""
    return fetch_frame(
        cursor,
        """
        SELECT noted_at AS asked_at, until_at AS wait_until, reason,
               until_at > now() AS in_force
        FROM api_calls WHERE kind = 'wait' ORDER BY id DESC LIMIT $limit
        """,
        {"limit": int(limit)},
    )

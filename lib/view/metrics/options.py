"""What the sidebar's filters offer: the campaigns and the dispositions that exist."""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from lib.store.summary import summary_ready


def campaign_options(
    cursor: duckdb.DuckDBPyConnection, configured: Iterable[str] = ()
) -> list[str]:
    """Every campaign a filter may name: catalog, configuration and stored leads, sorted."""
    source = "lead_summary" if summary_ready(cursor) else "leads"
    rows = cursor.execute(
        f"SELECT name FROM campaigns UNION SELECT DISTINCT campaign_name FROM {source}"
    ).fetchall()
    names = {row[0] for row in rows} | {c for c in configured if c}
    return sorted(names, key=lambda n: (n.casefold(), n))


def catalog_state(cursor: duckdb.DuckDBPyConnection) -> tuple:
    """A cheap fingerprint of the campaigns table (changes when one is added or removed)."""
    row = cursor.execute(
        "SELECT count(*), count(*) FILTER (WHERE enabled), max(added_at), "
        "string_agg(name, chr(31) ORDER BY name) FROM campaigns"
    ).fetchone()
    return tuple(str(v) for v in row)


def disposition_options(cursor: duckdb.DuckDBPyConnection) -> list[str]:
    """Distinct non-empty dispositions exactly as stored, most frequent first."""
    source = "lead_summary" if summary_ready(cursor) else "(SELECT *, 1 AS leads FROM leads)"
    rows = cursor.execute(
        f"SELECT disposition FROM {source} WHERE disposition IS NOT NULL "
        "AND trim(disposition) <> '' GROUP BY disposition ORDER BY sum(leads) DESC, disposition"
    ).fetchall()
    return [row[0] for row in rows]

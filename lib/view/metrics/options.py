"""What the sidebar's filters offer: the campaigns, the dispositions and the agents that exist.

Each list holds at most `OPTION_TOP` stored values, the most frequent (every session holds its
lists, so a delivery with 50,000 names must not reach them), plus the catalog's and the
configuration's campaigns. A value beyond the top that a link or a chart click names is added
by `with_named`, so a shared link naming a rare disposition still applies it. The lists have no
"Other" entry: choosing it could not name one value."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb

from lib.store.lead_sql import AGENT_SQL
from lib.store.summary import summary_ready
from lib.view.filters import MAX_VALUES_PER_PARAM, NO_AGENT

OPTION_TOP = 300

# The option lists' columns -> the value each offers (constants: never a caller's text in SQL).
OPTION_COLUMNS = {
    "campaign_name": "campaign_name",
    "disposition": "disposition",
    "agent": f"coalesce(agent, '{NO_AGENT}')",
}


def _source(cursor: duckdb.DuckDBPyConnection, column: str = "campaign_name") -> str:
    if summary_ready(cursor):
        return "lead_summary" if column == "agent" else "lead_counts"
    return f"(SELECT *, {AGENT_SQL} AS agent, 1 AS leads FROM leads)"


def _sorted(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=lambda n: (n.casefold(), n))


def campaign_options(
    cursor: duckdb.DuckDBPyConnection, configured: Iterable[str] = (), top: int = OPTION_TOP
) -> list[str]:
    """The campaigns a filter offers, sorted: the catalog's, the configuration's and the `top`
    with the most stored leads."""
    rows = cursor.execute(
        f"SELECT name FROM campaigns UNION SELECT campaign_name FROM ("
        f"SELECT campaign_name FROM {_source(cursor)} GROUP BY campaign_name "
        "ORDER BY sum(leads) DESC, campaign_name LIMIT $top)",
        {"top": int(top)},
    ).fetchall()
    return _sorted([row[0] for row in rows] + [c for c in configured if c])


def catalog_state(cursor: duckdb.DuckDBPyConnection) -> tuple:
    """A cheap fingerprint of the campaigns table (changes when one is added or removed)."""
    row = cursor.execute(
        "SELECT count(*), count(*) FILTER (WHERE enabled), max(added_at), "
        "string_agg(name, chr(31) ORDER BY name) FROM campaigns"
    ).fetchone()
    return tuple(str(v) for v in row)


def disposition_options(cursor: duckdb.DuckDBPyConnection, top: int = OPTION_TOP) -> list[str]:
    """The `top` distinct non-empty dispositions exactly as stored, most frequent first."""
    rows = cursor.execute(
        f"SELECT disposition FROM {_source(cursor)} WHERE disposition IS NOT NULL "
        "AND trim(disposition) <> '' GROUP BY disposition "
        "ORDER BY sum(leads) DESC, disposition LIMIT $top",
        {"top": int(top)},
    ).fetchall()
    return [row[0] for row in rows]


def agent_options(cursor: duckdb.DuckDBPyConnection, top: int = OPTION_TOP) -> list[str]:
    """The `top` agents with the most leads (name, else id; `NO_AGENT` for none), sorted."""
    value = OPTION_COLUMNS["agent"]
    rows = cursor.execute(
        f"SELECT {value} FROM {_source(cursor, 'agent')} GROUP BY ALL "
        "ORDER BY sum(leads) DESC, 1 LIMIT $top",
        {"top": int(top)},
    ).fetchall()
    return _sorted(row[0] for row in rows)


def with_named(
    cursor: duckdb.DuckDBPyConnection, options: Sequence[str], named: Iterable[str], column: str
) -> list[str]:
    """`options` plus the `named` values (a link's, a chart click's) that are stored in `column`
    but beyond the top (at most as many as a link may name); no query when every named value is
    already offered."""
    if column not in OPTION_COLUMNS:
        raise ValueError(f"not an option column: {column}")
    offered = set(options)
    missing = list(dict.fromkeys(v for v in named if isinstance(v, str) and v not in offered))
    missing = missing[:MAX_VALUES_PER_PARAM]
    if not missing:
        return list(options)
    value = OPTION_COLUMNS[column]
    rows = cursor.execute(
        f"SELECT DISTINCT {value} FROM {_source(cursor, column)} "
        f"WHERE list_contains($names, {value})",
        {"names": missing},
    ).fetchall()
    found = {row[0] for row in rows}
    return [*options, *(v for v in missing if v in found)]

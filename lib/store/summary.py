"""The lead summary: lead counts per combination of everything the pages filter or group by
(campaign, lead status, dial bucket, disposition and its category, attempted and the attempt
count, the agent, the talk-time band of answered leads, local day and hour of the last update,
local day of creation).

It holds thousands of rows where `leads` holds millions. Its table (`LEAD_SUMMARY_DDL`, created by
schema v6) and every statement that writes it live here, with its coarse companion `lead_counts`
(the same counts without attempts, agent and talk band: the Overview and Campaign pages need none
of them, and it has about a third of the rows), always written from it. Ingest keeps both current
in the delivery's own transaction (`begin_summary_delta` before overwriting leads, `update_summary`
after); any other change of the data version (a category edit) makes the first reader rebuild it
(`summary_ready`). It is valid when meta.summary_version equals meta.data_version. The lead
history's hourly counts (`event_hours`, lib/store/events.py) are rebuilt and stamped with it.
"""

from __future__ import annotations

import contextlib

import duckdb

from lib.store import connection  # a module: connection imports the schema, hence this file
from lib.store.catalog import categorised
from lib.store.events import add_event_hours, first_seen_hours_select, rebuild_event_hours
from lib.store.lead_sql import AGENT_SQL, ATTEMPTED_SQL

# Talk time of answered leads in bands (index into TALK_BANDS); NULL for the others.
TALK_BANDS: tuple[tuple[str, int | None], ...] = (
    ("0-10 s", 10), ("10-30 s", 30), ("30-60 s", 60), ("1-3 min", 180), ("3-10 min", 600),
    ("over 10 min", None),
)  # fmt: skip
_BAND_CASES = " ".join(
    f"WHEN call_duration_s < {limit} THEN {i}" for i, (_, limit) in enumerate(TALK_BANDS) if limit
)
TALK_BAND_SQL = (
    f"CASE WHEN dial_bucket = 'answered' AND call_duration_s IS NOT NULL THEN "
    f"(CASE {_BAND_CASES} ELSE {len(TALK_BANDS) - 1} END)::TINYINT END"
)

LEAD_SUMMARY_DDL = """
CREATE TABLE lead_summary (
    campaign_name  VARCHAR NOT NULL,
    lead_status    VARCHAR NOT NULL,
    dial_bucket    VARCHAR NOT NULL,
    disposition    VARCHAR,
    attempted      BOOLEAN,
    attempts       INTEGER,              -- as delivered (NULL when absent)
    agent          VARCHAR,              -- AGENT_SQL: name, else id; NULL = no agent
    talk_band      TINYINT,              -- TALK_BAND_SQL: answered leads only
    updated_day    DATE,                 -- local calendar day of updated_at
    updated_hour   TINYINT,              -- local hour of updated_at
    created_day    DATE,                 -- local calendar day of created_at
    category       VARCHAR NOT NULL,     -- the disposition's category (lib/store/catalog.py)
    leads          BIGINT NOT NULL
);
"""

LEAD_COUNTS_DDL = """
CREATE TABLE lead_counts (
    campaign_name  VARCHAR NOT NULL,
    lead_status    VARCHAR NOT NULL,
    dial_bucket    VARCHAR NOT NULL,
    disposition    VARCHAR,
    attempted      BOOLEAN,
    updated_day    DATE,
    updated_hour   TINYINT,
    created_day    DATE,
    category       VARCHAR NOT NULL,
    leads          BIGINT NOT NULL
);
"""

SUMMARY_COLUMNS: tuple[str, ...] = (
    "campaign_name", "lead_status", "dial_bucket", "disposition", "attempted", "attempts",
    "agent", "talk_band", "updated_day", "updated_hour", "created_day", "category", "leads",
)  # fmt: skip
# One row per lead of a relation with the `leads` columns, in the summary's shape. The local day
# and hour follow the connection's TimeZone (the account's zone, lib/store/connection.py).
SUMMARY_KEYS_SQL = f"""
    campaign_name, lead_status, dial_bucket, disposition, {ATTEMPTED_SQL} AS attempted,
    attempts, {AGENT_SQL} AS agent, {TALK_BAND_SQL} AS talk_band,
    CAST(updated_at AS DATE) AS updated_day, hour(updated_at)::TINYINT AS updated_hour,
    CAST(created_at AS DATE) AS created_day
"""
_SUMMARY_LIST = ", ".join(SUMMARY_COLUMNS)
DETAIL_COLUMNS = ("attempts", "agent", "talk_band")  # what lead_counts leaves out
_COUNTS_KEYS = ", ".join(c for c in SUMMARY_COLUMNS[:-1] if c not in DETAIL_COLUMNS)


def summary_select(source: str, where: str = "TRUE", sign: int = 1) -> str:
    """SELECT of summary rows (`leads` = sign x count) over `source` (a table with the `leads`
    columns) restricted by `where`. Used for the full build and for ingest's deltas. The category
    is stored too: a category edit bumps the data version, so the summary is rebuilt then."""
    grouped = (
        f"SELECT {SUMMARY_KEYS_SQL}, {int(sign)} * count(*) AS leads "
        f"FROM {source} WHERE {where} GROUP BY ALL"
    )
    # Materialised: `_categorised` names its relation twice, and the grouping is the costly part.
    return (
        f"WITH grouped AS MATERIALIZED ({grouped}) "
        f"SELECT {_SUMMARY_LIST} FROM ({categorised('grouped')})"
    )


def stamp_summary(cursor: duckdb.DuckDBPyConnection) -> None:
    """Marks the summary current at the data version (also after a bump that changed no lead,
    like a policy edit: the caches move on, the summary need not be rebuilt)."""
    cursor.execute(
        "INSERT OR REPLACE INTO meta SELECT 'summary_version', value FROM meta "
        "WHERE key = 'data_version'"
    )


def summary_is_current(cursor: duckdb.DuckDBPyConnection) -> bool:
    """True when `lead_summary` reflects the current data version."""
    row = cursor.execute(
        "SELECT (SELECT value FROM meta WHERE key = 'summary_version') = "
        "(SELECT value FROM meta WHERE key = 'data_version')"
    ).fetchone()
    return bool(row and row[0])


def rebuild_summary(cursor: duckdb.DuckDBPyConnection) -> None:
    """Recomputes `lead_summary` (and the history's `event_hours`) from every lead (and event)
    and stamps them with the data version. Call it inside the caller's transaction, holding
    the store's writer lock."""
    cursor.execute("DELETE FROM lead_summary")
    cursor.execute(f"INSERT INTO lead_summary ({_SUMMARY_LIST}) {summary_select('leads')}")
    cursor.execute("DELETE FROM lead_counts")
    _count_from_summary(cursor, "TRUE")
    rebuild_event_hours(cursor)
    stamp_summary(cursor)


def _count_from_summary(cursor: duckdb.DuckDBPyConnection, where: str) -> None:
    cursor.execute(
        f"INSERT INTO lead_counts ({_COUNTS_KEYS}, leads) SELECT {_COUNTS_KEYS}, sum(leads) "
        f"FROM lead_summary WHERE {where} GROUP BY ALL"
    )


def summary_ready(cursor: duckdb.DuckDBPyConnection) -> bool:
    """True when the pages may read `lead_summary`: current, or rebuilt now. False (read `leads`)
    when it is stale and a writer holds the lock (an ingest in progress will refresh it)."""
    if summary_is_current(cursor):
        return True
    lock = connection.write_lock_for(cursor)
    if lock is None or not lock.acquire(blocking=False):
        return False
    try:
        cursor.execute("BEGIN")
        try:
            if not summary_is_current(cursor):
                rebuild_summary(cursor)
            cursor.execute("COMMIT")
        except duckdb.Error:
            with contextlib.suppress(duckdb.Error):
                cursor.execute("ROLLBACK")
            return False
        return True
    finally:
        lock.release()


def begin_summary_delta(cursor: duckdb.DuckDBPyConnection, replaced: str) -> bool:
    """Ingest, before it overwrites leads: records what the rows about to be replaced counted
    (`replaced` is a subquery giving exactly those rows of `leads`) in TEMP TABLE
    _summary_delta, negated, and returns False. Returns True, recording nothing, when they are
    at least half of their campaigns' stored leads (a re-dialled list): subtracting them costs
    more than recounting those campaigns from `leads` after the write, which `update_summary`
    then does (`recount=True`)."""
    replacing, stored = cursor.execute(
        f"SELECT count(*), (SELECT coalesce(sum(leads), 0) FROM lead_counts WHERE campaign_name "
        f"IN (SELECT DISTINCT campaign_name FROM {replaced})) FROM {replaced}"
    ).fetchone()
    if replacing and 2 * replacing >= stored:
        return True
    cursor.execute(
        f"CREATE OR REPLACE TEMP TABLE _summary_delta AS {summary_select(replaced, sign=-1)}"
    )
    return False


def update_summary(
    cursor: duckdb.DuckDBPyConnection,
    delivery_id: int,
    incremental: bool,
    written: str,
    replaced: bool = True,
    recount: bool = False,
) -> None:
    """Ingest, after writing a delivery's leads and bumping the data version, in the same
    transaction: adds the written rows (`written`, a subquery giving exactly those states with
    the `leads` columns the summary reads) to the summary and the delivery's events to
    `event_hours`, and subtracts the replaced ones (`begin_summary_delta`), or rebuilds them
    when they were not current before this delivery. `replaced` False: the delivery replaced no
    stored lead (every event a first sight), so its hours come from the written rows' summary
    rows. `recount` (begin_summary_delta's answer): the written rows' campaigns are counted
    again from `leads` instead. Cost: the delivery's rows plus the summary rows of its
    campaigns (with `recount`, their leads)."""
    if not incremental:
        cursor.execute("DROP TABLE IF EXISTS _summary_delta")
        rebuild_summary(cursor)
        return
    if replaced:
        add_event_hours(cursor, delivery_id)
    if recount:
        cursor.execute(
            "CREATE OR REPLACE TEMP TABLE _summary_recount AS "
            f"SELECT DISTINCT campaign_name FROM {written}"
        )
        touched = "campaign_name IN (SELECT campaign_name FROM _summary_recount)"
        _replace_campaigns(cursor, touched, summary_select("leads", touched))
        cursor.execute("DROP TABLE _summary_recount")
        stamp_summary(cursor)
        return
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS _summary_delta AS {summary_select('leads', 'FALSE')}"
    )
    cursor.execute(f"INSERT INTO _summary_delta ({_SUMMARY_LIST}) {summary_select(written)}")
    if not replaced:  # _summary_delta holds the written rows only (no replaced one subtracted)
        add_event_hours(cursor, delivery_id, first_seen_hours_select("_summary_delta"))
    if not cursor.execute("SELECT count(*) FROM _summary_delta").fetchone()[0]:
        cursor.execute("DROP TABLE _summary_delta")
        stamp_summary(cursor)
        return
    keys = ", ".join(SUMMARY_COLUMNS[:-1])
    cursor.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _summary_merged AS
        SELECT {keys}, sum(leads)::BIGINT AS leads FROM (
            SELECT {_SUMMARY_LIST} FROM lead_summary
            WHERE campaign_name IN (SELECT campaign_name FROM _summary_delta)
            UNION ALL SELECT {_SUMMARY_LIST} FROM _summary_delta
        ) GROUP BY ALL HAVING sum(leads) <> 0
        """
    )
    touched = "campaign_name IN (SELECT campaign_name FROM _summary_delta)"
    _replace_campaigns(cursor, touched, f"SELECT {_SUMMARY_LIST} FROM _summary_merged")
    cursor.execute("DROP TABLE _summary_merged")
    cursor.execute("DROP TABLE _summary_delta")
    stamp_summary(cursor)


def _replace_campaigns(cursor: duckdb.DuckDBPyConnection, touched: str, rows: str) -> None:
    """The summary rows (and their coarse counts) of the campaigns `touched` names become
    `rows` (a SELECT in the summary's columns)."""
    cursor.execute(f"DELETE FROM lead_summary WHERE {touched}")
    cursor.execute(f"INSERT INTO lead_summary ({_SUMMARY_LIST}) {rows}")
    cursor.execute(f"DELETE FROM lead_counts WHERE {touched}")
    _count_from_summary(cursor, touched)

"""The lead history: one `lead_events` row per observed change of a lead's state, written by
ingest in the delivery's own transaction, and `event_hours`, its counts per campaign and local
hour, which the activity, pace and "what changed" views read.

The API returns each lead's current state only (its last call). Because the dashboard syncs
every few minutes, comparing what arrives with what is stored shows every change: one join of
the delivery's rows to the stored ones (`record_changes`), before they are overwritten, gives
the events, and the rows the general write then updates, inserts, subtracts from the summary and
adds to it (TEMP TABLE _changes), so the stored leads are joined once. A lead seen for the first
time gets one "first seen" row, which counts no dial; a stale copy (older than the stored state)
or an identical one changes nothing and writes nothing, so a re-delivery adds nothing and a
re-ingest of every kept body, in order, rebuilds the same table (`clear_events` before it).

Dials observed = the increase of the attempt count, placed at the new state's time: several
calls between two syncs count as all of them, at the time of the last one. When the account
delivers no attempt count, a newer state of an attempted lead counts one dial.

One lead's timeline is found through `key_tag` (schema v10): 32 bits of DuckDB's hash of its
campaign and key, an integer compared in ~1 ns a row where the compressed key itself takes
~12 ns (0.03 s instead of 0.26 s at 20M events). DuckDB does not promise that `hash` stays the
same across releases, so the tag of a fixed pair is kept in `meta` and every tag is computed
again when it differs (`refresh_key_tags`, at open).

`event_hours` grows with campaigns x hours, not with leads. It is current with the lead summary
(lib/store/summary.py stamps both): ingest adds the delivery's events to it (for a delivery of
first sights only, counted from its summary rows), and a category edit
(which changes what a conversion is) makes the first reader rebuild it with the summary.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

import duckdb

from lib.store.catalog import categorised
from lib.store.lead_sql import AGENT_SQL, ATTEMPTED_SQL

KEEP_EVENTS_DAYS = 400

LEAD_EVENTS_DDL = """
CREATE TABLE lead_events (
    campaign_name       VARCHAR NOT NULL,
    lead_key            VARCHAR NOT NULL,
    updated_at          TIMESTAMPTZ,      -- the new state's time (UpdatedDate)
    observed_at         TIMESTAMPTZ,      -- when its delivery was received
    delivery_id         BIGINT NOT NULL,
    first_seen          BOOLEAN NOT NULL, -- the lead's first state: counts no dial
    dials               INTEGER NOT NULL, -- dials observed: attempts after - before (>= 0)
    attempts_before     INTEGER,
    attempts_after      INTEGER,
    dial_status_before  VARCHAR,
    dial_status_after   VARCHAR,
    dial_bucket_before  VARCHAR,
    dial_bucket_after   VARCHAR,
    lead_status_before  VARCHAR,
    lead_status_after   VARCHAR,
    disposition_before  VARCHAR,
    disposition_after   VARCHAR,
    agent               VARCHAR,          -- AGENT_SQL of the new state
    call_duration_s     INTEGER           -- talk time of the new state
);
"""

# v10 adds: key_tag UINTEGER, key_tag_sql(campaign_name, lead_key) of the event's lead.
KEY_TAG_COLUMN_DDL = "ALTER TABLE lead_events ADD COLUMN key_tag UINTEGER;"


def key_tag_sql(campaign: str, lead_key: str) -> str:
    """SQL of a lead's key tag from two VARCHAR expressions (columns, or bound parameters)."""
    return f"(hash(({campaign})::VARCHAR, ({lead_key})::VARCHAR) >> 32)::UINTEGER"


_TAG_PROBE = key_tag_sql("'dialstatus'", "'key tag probe'")  # a fixed pair: is `hash` the same?

EVENT_HOURS_DDL = """
CREATE TABLE event_hours (
    campaign_name  VARCHAR NOT NULL,
    updated_day    DATE NOT NULL,        -- local calendar day of the new state's time
    updated_hour   TINYINT NOT NULL,     -- local hour
    dials          BIGINT NOT NULL,      -- dials observed
    answered       BIGINT NOT NULL,      -- changes with a dial whose last call was answered
    conversions    BIGINT NOT NULL,      -- changes into the Sale category (a dial, or a new one)
    first_seen     BIGINT NOT NULL,      -- leads seen for the first time
    changes        BIGINT NOT NULL       -- every event
);
"""

EVENT_COLUMNS: tuple[str, ...] = (
    "campaign_name", "lead_key", "updated_at", "observed_at", "delivery_id", "first_seen",
    "dials", "attempts_before", "attempts_after", "dial_status_before", "dial_status_after",
    "dial_bucket_before", "dial_bucket_after", "lead_status_before", "lead_status_after",
    "disposition_before", "disposition_after", "agent", "call_duration_s", "key_tag",
)  # fmt: skip
_EVENT_LIST = ", ".join(EVENT_COLUMNS)
HOUR_COLUMNS = (
    "campaign_name, updated_day, updated_hour, dials, answered, conversions, first_seen, changes"
)


def _select_changes(new: str, old: str | None, delivery_id: int, extra: str = "") -> str:
    """SELECT of event rows (columns named as EVENT_COLUMNS, then `extra`) from the new states
    `new` (alias b) and, when `old` (alias leads) is the stored state joined to them, the states
    they replace; NULL `old` = first seen."""
    before = (lambda c: f"leads.{c}") if old else (lambda c: "NULL")
    first_seen = "leads.lead_key IS NULL" if old else "TRUE"
    attempted_after = ATTEMPTED_SQL.replace("attempts", "b.attempts").replace(
        "dial_bucket", "b.dial_bucket"
    )
    dials = (
        f"CASE WHEN {first_seen} THEN 0 "
        "WHEN b.attempts IS NOT NULL THEN greatest(b.attempts - coalesce(leads.attempts, 0), 0) "
        f"WHEN b.updated_at > leads.updated_at AND {attempted_after} THEN 1 ELSE 0 END"
        if old
        else "0"
    )
    agent = AGENT_SQL.replace("agent_name", "b.agent_name").replace("agent_id", "b.agent_id")
    values = (
        "b.campaign_name", "b.lead_key", "b.updated_at",
        f"(SELECT received_at FROM raw_deliveries WHERE id = {int(delivery_id)})",
        str(int(delivery_id)), first_seen, dials,
        before("attempts"), "b.attempts", before("dial_status"), "b.dial_status",
        before("dial_bucket"), "b.dial_bucket", before("lead_status"), "b.lead_status",
        before("disposition"), "b.disposition", agent, "b.call_duration_s",
        key_tag_sql("b.campaign_name", "b.lead_key"),
    )  # fmt: skip
    named = ", ".join(f"{v} AS {c}" for v, c in zip(values, EVENT_COLUMNS, strict=True))
    return f"SELECT {named}{', ' + extra if extra else ''} FROM {new} AS b {old or ''}"


# The columns the lead summary needs beyond the event's own, kept with the staged changes so
# that its delta reads the replaced and the written states without reading `leads` again.
_STAGED_OLD = ("agent_name", "agent_id", "call_duration_s", "updated_at", "created_at")
_STAGED_NEW = ("agent_name", "agent_id", "created_at")
# The stored leads the staged changes replace, with the `leads` columns the summary reads.
REPLACED_LEADS = (
    "(SELECT campaign_name, lead_status_before AS lead_status, dial_bucket_before AS dial_bucket, "
    "disposition_before AS disposition, attempts_before AS attempts, "
    + ", ".join(f"_old_{c} AS {c}" for c in _STAGED_OLD)
    + " FROM _changes WHERE _l_row IS NOT NULL)"
)
# The states the general write stores (one per staged change), with those same columns.
WRITTEN_LEADS = (
    "(SELECT campaign_name, lead_status_after AS lead_status, dial_bucket_after AS dial_bucket, "
    "disposition_after AS disposition, attempts_after AS attempts, call_duration_s, updated_at, "
    + ", ".join(f"_new_{c} AS {c}" for c in _STAGED_NEW)
    + " FROM _changes)"
)


def record_changes(cursor: duckdb.DuckDBPyConnection, batch: str, newer: str, delivery_id: int):
    """Before the general write overwrites leads: one event per row of `batch` (alias b) that
    is new, or newer than and different from the stored lead (`newer`, the write's own
    condition on `leads` and b). The one join of the delivery to the stored leads: its rows are
    kept in TEMP TABLE _changes (the event's columns, `_b_row` = the batch row's rowid, `_l_row`
    = the stored lead's rowid, NULL for a new lead, and the `_old_` and `_new_` columns the
    summary needs), which the write and the summary delta read (`REPLACED_LEADS`,
    `WRITTEN_LEADS`); the caller drops it."""
    joined = (
        "LEFT JOIN leads ON leads.campaign_name = b.campaign_name AND leads.lead_key = b.lead_key"
    )
    extra = ", ".join(
        ["b.rowid AS _b_row", "leads.rowid AS _l_row"]
        + [f"leads.{c} AS _old_{c}" for c in _STAGED_OLD]
        + [f"b.{c} AS _new_{c}" for c in _STAGED_NEW]
    )
    cursor.execute(
        f"CREATE OR REPLACE TEMP TABLE _changes AS "
        f"{_select_changes(batch, joined, delivery_id, extra)} "
        f"WHERE leads.lead_key IS NULL OR ({newer})"
    )
    cursor.execute(f"INSERT INTO lead_events ({_EVENT_LIST}) SELECT {_EVENT_LIST} FROM _changes")


def record_first_loads(cursor: duckdb.DuckDBPyConnection, delivery_id: int) -> None:
    """After the direct write (a campaign's first load): every written lead is first seen."""
    written = f"(SELECT * FROM leads WHERE delivery_id = {int(delivery_id)})"
    cursor.execute(
        f"INSERT INTO lead_events ({_EVENT_LIST}) {_select_changes(written, None, delivery_id)}"
    )


def hours_select(where: str) -> str:
    """SELECT of `event_hours`' rows (its columns, by name: HOUR_COLUMNS) over the events
    matching `where` (an SQL condition on `lead_events`' columns, trusted: the caller's own
    text, values as bound parameters). Local day and hour follow the connection's TimeZone (the
    account's zone). What event_hours stores, and what a reader uses for a span event_hours
    cannot give (between two times) or while it is stale."""
    sale_after = "category = 'Sale'"
    return f"""
        WITH e AS MATERIALIZED (
            SELECT campaign_name, updated_at, first_seen, dials, dial_bucket_after,
                   disposition_before, disposition_after AS disposition
            FROM lead_events WHERE {where} AND updated_at IS NOT NULL
        ), c AS (
            SELECT e.*, before.category AS category_before
            FROM ({categorised("e")}) e
            LEFT JOIN ({categorised("(SELECT DISTINCT disposition_before AS disposition FROM e)")})
                AS before ON before.disposition = e.disposition_before
        )
        SELECT campaign_name, CAST(updated_at AS DATE) AS updated_day,
               hour(updated_at)::TINYINT AS updated_hour,
               sum(dials)::BIGINT AS dials,
               count(*) FILTER (WHERE dials > 0 AND dial_bucket_after = 'answered') AS answered,
               count(*) FILTER (WHERE NOT first_seen AND {sale_after} AND (dials > 0
                   OR category_before IS DISTINCT FROM 'Sale')) AS conversions,
               count(*) FILTER (WHERE first_seen) AS first_seen, count(*) AS changes
        FROM c GROUP BY ALL
    """


def rebuild_event_hours(cursor: duckdb.DuckDBPyConnection) -> None:
    """Recomputes `event_hours` from every event (with the lead summary's rebuild)."""
    cursor.execute("DELETE FROM event_hours")
    cursor.execute(f"INSERT INTO event_hours ({HOUR_COLUMNS}) {hours_select('TRUE')}")


def first_seen_hours_select(written: str) -> str:
    """SELECT of `event_hours`' rows for a delivery whose every event is a first sight, from
    `written`: its leads' summary rows (campaign_name, updated_day, updated_hour, leads), which
    hold the same local day and hour of the same times. A first sight counts no dial, no
    answer and no conversion."""
    return f"""
        SELECT campaign_name, updated_day, updated_hour, 0::BIGINT AS dials,
               0::BIGINT AS answered, 0::BIGINT AS conversions,
               sum(leads)::BIGINT AS first_seen, sum(leads)::BIGINT AS changes
        FROM {written} WHERE updated_day IS NOT NULL GROUP BY ALL
    """


def add_event_hours(
    cursor: duckdb.DuckDBPyConnection, delivery_id: int, delta: str | None = None
) -> None:
    """Ingest: adds the delivery's events to `event_hours` (events are only ever added); `delta`,
    a SELECT of those events' hours when the caller has it (`first_seen_hours_select`), saves
    reading them back."""
    delta = delta or hours_select(f"delivery_id = {int(delivery_id)}")
    cursor.execute(f"CREATE OR REPLACE TEMP TABLE _event_delta AS {delta}")
    if not cursor.execute("SELECT count(*) FROM _event_delta").fetchone()[0]:
        cursor.execute("DROP TABLE _event_delta")
        return
    keys = "campaign_name, updated_day, updated_hour"
    cursor.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _event_merged AS
        SELECT {keys}, sum(dials)::BIGINT AS dials, sum(answered)::BIGINT AS answered,
               sum(conversions)::BIGINT AS conversions, sum(first_seen)::BIGINT AS first_seen,
               sum(changes)::BIGINT AS changes
        FROM (
            SELECT {HOUR_COLUMNS} FROM event_hours WHERE ({keys}) IN (SELECT ({keys}) FROM
                (SELECT campaign_name, updated_day, updated_hour FROM _event_delta
                 AS d(campaign_name, updated_day, updated_hour)))
            UNION ALL SELECT * FROM _event_delta
        ) GROUP BY ALL
        """
    )
    cursor.execute(
        f"DELETE FROM event_hours WHERE ({keys}) IN (SELECT ({keys}) FROM _event_merged)"
    )
    cursor.execute(f"INSERT INTO event_hours ({HOUR_COLUMNS}) SELECT * FROM _event_merged")
    cursor.execute("DROP TABLE _event_delta")
    cursor.execute("DROP TABLE _event_merged")


def refresh_key_tags(cursor: duckdb.DuckDBPyConnection) -> None:
    """At open, after the schema's upgrade: computes every event's `key_tag` again when the
    fixed pair's tag is not the one stored (v10 just added the column, or a DuckDB release
    hashes differently), in one transaction with the new probe."""
    (probe,) = cursor.execute(f"SELECT {_TAG_PROBE}").fetchone()
    stored = cursor.execute("SELECT value FROM meta WHERE key = 'key_tag_probe'").fetchone()
    if stored is not None and stored[0] == probe:
        return
    cursor.execute("BEGIN")
    try:
        cursor.execute(
            f"UPDATE lead_events SET key_tag = {key_tag_sql('campaign_name', 'lead_key')}"
        )
        cursor.execute("INSERT OR REPLACE INTO meta VALUES ('key_tag_probe', ?)", [probe])
        cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        raise


def clear_events(cursor: duckdb.DuckDBPyConnection, where: str, params: list) -> int:
    """Before a re-ingest rebuilds the leads of `where`: their history goes too, so replaying
    the kept bodies in order writes it again (the caller rebuilds the summaries)."""
    return int(cursor.execute(f"DELETE FROM lead_events WHERE {where}", params).fetchone()[0])


def prune_events(cursor: duckdb.DuckDBPyConnection, keep_days: float, now: datetime) -> int:
    """Deletes the events (and their hours) from local days older than `keep_days`."""
    cutoff_day = (now - timedelta(days=keep_days)).date()
    removed = cursor.execute(
        "DELETE FROM lead_events WHERE CAST(updated_at AS DATE) < ?", [cutoff_day]
    ).fetchone()[0]
    cursor.execute("DELETE FROM event_hours WHERE updated_day < ?", [cutoff_day])
    return int(removed)

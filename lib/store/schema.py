"""The database's schema, one migration per version (`MIGRATIONS`), and the upgrade that runs
them at start. The lead summary's table is defined beside its SQL (lib/store/summary.py)."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import duckdb

from lib.store.errors import StoreError
from lib.store.events import (
    EVENT_HOURS_DDL,
    KEY_TAG_COLUMN_DDL,
    LEAD_EVENTS_DDL,
    refresh_key_tags,
)
from lib.store.saved_views import SAVED_VIEWS_DDL
from lib.store.summary import LEAD_COUNTS_DDL, LEAD_SUMMARY_DDL

SCHEMA_VERSION = 10

# The columns of `leads`, unchanged since v1 (v9 only dropped its primary key).
_LEADS_COLUMNS = """
    campaign_name  VARCHAR NOT NULL,
    lead_key       VARCHAR NOT NULL,     -- lead id when delivered, else phone number|created date
    lead_id        VARCHAR,
    phone_number   VARCHAR,
    name           VARCHAR,
    status         VARCHAR,              -- raw, as delivered
    lead_status    VARCHAR NOT NULL,     -- Success | Fail | Pending (empty/unknown -> Pending)
    dial_status    VARCHAR,              -- raw, as delivered
    dial_bucket    VARCHAR NOT NULL,     -- see lib/fields.py DIAL_BUCKETS
    disposition    VARCHAR,
    comments       VARCHAR,
    agent_id       VARCHAR,
    agent_name     VARCHAR,
    attempts       INTEGER,
    priority       INTEGER,
    ucid           VARCHAR,
    call_duration_s INTEGER,
    created_at     TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ,
    extra          JSON,                 -- delivered fields we do not model, kept verbatim
    delivery_id    BIGINT,               -- the raw delivery that last wrote this row
"""

_SCHEMA_V1 = (
    """
CREATE SEQUENCE IF NOT EXISTS delivery_ids;
CREATE SEQUENCE IF NOT EXISTS request_ids;

-- One row per lead per campaign; the latest state by updated_at wins.
CREATE TABLE IF NOT EXISTS leads (
"""
    + _LEADS_COLUMNS
    + """    PRIMARY KEY (campaign_name, lead_key)
);

CREATE TABLE IF NOT EXISTS campaigns (
    name        VARCHAR PRIMARY KEY,
    source      VARCHAR NOT NULL,         -- config | ui
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    added_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Per-campaign sync progress: the watermark drives incremental refreshes.
CREATE TABLE IF NOT EXISTS sync_state (
    campaign_name   VARCHAR PRIMARY KEY,
    watermark       TIMESTAMPTZ,          -- newest updated_at stored for the campaign
    full_load_done  BOOLEAN NOT NULL DEFAULT FALSE,
    last_success_at TIMESTAMPTZ,
    last_error      VARCHAR,
    last_error_at   TIMESTAMPTZ
);

-- Every request sent to CloudAgent (parameters with secrets redacted).
CREATE TABLE IF NOT EXISTS sync_requests (
    id            BIGINT PRIMARY KEY DEFAULT nextval('request_ids'),
    campaign_name VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,       -- full | incremental | manual
    params        JSON NOT NULL,
    unique_id     VARCHAR,
    state         VARCHAR NOT NULL,       -- queued|sent|accepted|delivered|error|timed_out
    queued_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at       TIMESTAMPTZ,
    accepted_at   TIMESTAMPTZ,
    delivered_at  TIMESTAMPTZ,
    rows          BIGINT,
    error         VARCHAR
);

-- Every callback body received; the body itself is a file under the deliveries folder.
CREATE TABLE IF NOT EXISTS raw_deliveries (
    id            BIGINT PRIMARY KEY,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    sha256        VARCHAR NOT NULL,
    content_type  VARCHAR,
    size_bytes    BIGINT NOT NULL,
    path          VARCHAR NOT NULL,
    unique_id     VARCHAR,
    campaign_name VARCHAR,
    request_id    BIGINT,
    state         VARCHAR NOT NULL,       -- received | ingested | failed | duplicate
    rows          BIGINT,
    error         VARCHAR,
    ingested_at   TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS disposition_categories (
    disposition VARCHAR PRIMARY KEY,
    category    VARCHAR NOT NULL          -- see lib/store/catalog.py CATEGORIES
);

-- schema_version and data_version (bumped by every ingest, keys the dashboard's caches).
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL);
"""
)

# v2: lead counts per combination of everything the Overview and Campaign pages filter or group
# by, so they read thousands of rows instead of every lead (lib/store/summary.py defines the
# grouping and keeps it current; ingest updates it in the delivery's own transaction). It is valid
# when meta.summary_version equals meta.data_version; otherwise the first reader rebuilds it.
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS lead_summary (
    campaign_name  VARCHAR NOT NULL,
    lead_status    VARCHAR NOT NULL,
    dial_bucket    VARCHAR NOT NULL,
    disposition    VARCHAR,
    attempted      BOOLEAN,
    updated_day    DATE,                 -- local calendar day of updated_at
    updated_hour   TINYINT,              -- local hour of updated_at
    created_day    DATE,                 -- local calendar day of created_at
    leads          BIGINT NOT NULL
);
INSERT OR IGNORE INTO meta VALUES ('summary_version', -1);
"""

# v3: the summary also holds each disposition's category (resolved once per rebuild or delta
# instead of in every query); rebuilt from the leads on first use.
_SCHEMA_V3 = (
    "DROP TABLE IF EXISTS lead_summary;"
    + LEAD_SUMMARY_DDL
    + """
INSERT OR REPLACE INTO meta VALUES ('summary_version', -1);
"""
)

# v4: what must survive a restart or a crash.
# - api_calls: every request that left for CloudAgent (kind 'send', retries included) and every
#   wait it imposed (kind 'wait': "Max limit exceeded", 429, Retry-After, until `until_at`), with
#   wall-clock time, so a new process starts with the window and the waits of the one before it.
# - raw_deliveries.attempts counts ingest attempts before each starts (a delivery that kills the
#   process is marked failed after 3); pruned_at is when its body file was deleted by retention.
_SCHEMA_V4 = """
CREATE SEQUENCE IF NOT EXISTS api_call_ids;
CREATE TABLE IF NOT EXISTS api_calls (
    id        BIGINT PRIMARY KEY DEFAULT nextval('api_call_ids'),
    account   VARCHAR NOT NULL,
    kind      VARCHAR NOT NULL,         -- send | wait
    noted_at  TIMESTAMPTZ NOT NULL,     -- wall clock when the send left / the wait was imposed
    until_at  TIMESTAMPTZ,              -- for waits: no send before this
    reason    VARCHAR
);
ALTER TABLE raw_deliveries ADD COLUMN IF NOT EXISTS attempts INTEGER DEFAULT 0;
ALTER TABLE raw_deliveries ADD COLUMN IF NOT EXISTS pruned_at TIMESTAMPTZ;
"""

# v5: meeting a real account without editing code.
# - raw_deliveries.report: what the delivery inspector shows (shape, fields and their columns,
#   values that did not parse, unknown status values, rows new and updated); warnings: records
#   stored with a value that could not be read; source_addr: who posted it.
# - field_mappings: an operator's delivered field -> column (lib/fields.py MAPPING_TARGETS),
#   beside `[fields]` of secrets.toml. value_mappings: a delivered dial status or status value
#   -> the bucket an operator chose for it.
# - reingest_runs: each replay of the kept bodies (lib/store/reingest.py), so one a restart
#   interrupted resumes after the last delivery it finished instead of leaving leads cleared.
_SCHEMA_V5 = """
CREATE SEQUENCE IF NOT EXISTS reingest_ids;
CREATE TABLE IF NOT EXISTS reingest_runs (
    id            BIGINT PRIMARY KEY DEFAULT nextval('reingest_ids'),
    campaign_name VARCHAR,                -- NULL: every campaign
    since         TIMESTAMPTZ,            -- NULL: every kept delivery (leads cleared first)
    requested_by  VARCHAR,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    cleared       BOOLEAN NOT NULL DEFAULT FALSE,
    last_delivery BIGINT,                 -- the last delivery replayed (resume point)
    total         BIGINT NOT NULL DEFAULT 0,
    done          BIGINT NOT NULL DEFAULT 0,
    skipped       BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    error         VARCHAR
);
ALTER TABLE raw_deliveries ADD COLUMN IF NOT EXISTS report JSON;
ALTER TABLE raw_deliveries ADD COLUMN IF NOT EXISTS warnings BIGINT DEFAULT 0;
ALTER TABLE raw_deliveries ADD COLUMN IF NOT EXISTS source_addr VARCHAR;
CREATE TABLE IF NOT EXISTS field_mappings (
    field       VARCHAR PRIMARY KEY,      -- as delivered
    target      VARCHAR NOT NULL,         -- lib/fields.py MAPPING_TARGETS
    set_by      VARCHAR,
    set_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS value_mappings (
    kind        VARCHAR NOT NULL,         -- dial_status | status
    value       VARCHAR NOT NULL,         -- as delivered
    bucket      VARCHAR NOT NULL,         -- lib/fields.py DIAL_BUCKETS | LEAD_STATUSES
    set_by      VARCHAR,
    set_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);
"""

# v6: from dial states to decisions.
# - lead_summary also holds the attempt count, the agent and the talk-time band (rebuilt from
#   the leads on first use, like v3); lead_counts is it without those three, for the pages that
#   need none of them.
# - campaign_policy: the dial attempts allowed per campaign ("number of tries"), set by an
#   operator; without a row it is inferred (the highest attempts seen). dial_policy: the one
#   account-wide calling window and stale threshold (lib/store/policy.py).
_SCHEMA_V6 = (
    "DROP TABLE IF EXISTS lead_summary;"
    + LEAD_SUMMARY_DDL
    + LEAD_COUNTS_DDL
    + """
INSERT OR REPLACE INTO meta VALUES ('summary_version', -1);
CREATE TABLE IF NOT EXISTS campaign_policy (
    campaign_name    VARCHAR PRIMARY KEY,
    attempts_allowed INTEGER NOT NULL CHECK (attempts_allowed BETWEEN 1 AND 100),
    set_by           VARCHAR,
    set_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS dial_policy (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    window_start  TINYINT NOT NULL CHECK (window_start BETWEEN 0 AND 23),   -- local hour
    window_end    TINYINT NOT NULL CHECK (window_end BETWEEN 1 AND 24),     -- exclusive
    stale_days    INTEGER NOT NULL CHECK (stale_days BETWEEN 1 AND 365),
    set_by        VARCHAR,
    set_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""
)

# v7: the lead history (lib/store/events.py): one row per observed change of a lead, and its
# counts per campaign and local hour. It starts empty: the history begins with the next
# delivery (a re-ingest of the kept bodies writes it for the past they cover).
_SCHEMA_V7 = (
    LEAD_EVENTS_DDL
    + EVENT_HOURS_DDL
    + """
INSERT OR REPLACE INTO meta VALUES ('summary_version', -1);
"""
)

# v8: saved views (lib/store/saved_views.py): a name and the app-relative link of a view, listed
# in the sidebar for everyone. Only a new table: nothing stored before is touched, and the
# summary stays valid.
_SCHEMA_V8 = SAVED_VIEWS_DDL

# v9: `leads` without its primary key. Its index cost a first load of 1M leads ~0.6 s (4.7 ->
# 4.1 s in one process, its commit 0.37 -> 0.03 s) and no query needs it: ingest is the only writer
# (serialised, lib/store/connection.py), de-duplicates each delivery and joins it to the stored
# leads itself (lib/store/ingest/write.py), and one lead's lookup scans in milliseconds. The
# table is rebuilt once (a copy of every lead, in one transaction).
_SCHEMA_V9 = (
    """
ALTER TABLE leads RENAME TO leads_v8;
CREATE TABLE leads ("""
    + _LEADS_COLUMNS
    + """);
INSERT INTO leads SELECT * FROM leads_v8;
DROP TABLE leads_v8;
"""
)

# v10: `lead_events.key_tag`, which finds one lead's events without comparing every event's key
# (lib/store/events.py). The column is added empty; the store's open fills it
# (`refresh_key_tags`, no probe stored yet), as it would after a DuckDB release that hashes
# differently.
_SCHEMA_V10 = KEY_TAG_COLUMN_DDL

MIGRATIONS: dict[int, str] = {
    1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4, 5: _SCHEMA_V5, 6: _SCHEMA_V6,
    7: _SCHEMA_V7, 8: _SCHEMA_V8, 9: _SCHEMA_V9, 10: _SCHEMA_V10,
}  # fmt: skip


def migrate(cursor: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Brings the database file on `cursor` to SCHEMA_VERSION, one transaction per
    version (a failure leaves it at the last version that completed), and the events' key tags
    up to date. No `meta` = version 0."""
    cursor.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT)")
    row = cursor.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    current = row[0] if row else 0
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"The database file {path.name} is at schema version {current}, newer "
            f"than this program ({SCHEMA_VERSION}): it was written by a newer release. "
            "Run that release (or newer), or point DIALSTATUS_DB at another file.",
            path,
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        cursor.execute("BEGIN")
        try:
            cursor.execute(MIGRATIONS[version])
            cursor.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [version])
            cursor.execute("COMMIT")
        except BaseException:
            with suppress(duckdb.Error):
                cursor.execute("ROLLBACK")
            raise
    cursor.execute("INSERT OR IGNORE INTO meta VALUES ('data_version', 0)")
    refresh_key_tags(cursor)  # after v10, or a DuckDB release whose hash differs

"""The DuckDB store: schema, migrations, the one connection of the process, and its writer lock.

DuckDB lets one process open the file; inside it, one connection is shared and every thread uses
its own cursor. Writers are serialised through `Store.writing()` because concurrent upserts of the
same keys conflict.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

SCHEMA_VERSION = 1

# Offline machine: never download an extension at run time (stack-notes.md).
_CONNECT_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

_SCHEMA_V1 = """
CREATE SEQUENCE IF NOT EXISTS delivery_ids;
CREATE SEQUENCE IF NOT EXISTS request_ids;

-- One row per lead per campaign; the latest state by updated_at wins.
CREATE TABLE IF NOT EXISTS leads (
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
    PRIMARY KEY (campaign_name, lead_key)
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
    category    VARCHAR NOT NULL          -- see lib/metrics.py CATEGORIES
);

-- schema_version and data_version (bumped by every ingest, keys the dashboard's caches).
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL);
"""

MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1}


class StoreError(RuntimeError):
    """The database cannot be opened or migrated; the message says what to do."""


class Store:
    """The process's DuckDB database: one connection, a cursor per use, one writer at a time."""

    def __init__(self, path: Path | str, timezone: str = "Asia/Kolkata") -> None:
        self.path = Path(path)
        self.timezone = timezone
        self._write_lock = threading.RLock()
        self._connection = self._open()
        self._migrate()

    def _open(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = duckdb.connect(str(self.path), config=_CONNECT_CONFIG)
        except duckdb.IOException as exc:
            raise StoreError(
                f"Cannot open the database file {self.path.name}: {exc}. Another process may "
                "hold it (only one server may run per database), or the folder is not writable."
            ) from None
        connection.execute(f"SET GLOBAL TimeZone = '{self.timezone}'")
        return connection

    def _migrate(self) -> None:
        with self.writing() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT)"
            )
            row = cursor.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            current = row[0] if row else 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"The database is at schema version {current}, newer than this program "
                    f"({SCHEMA_VERSION}). Upgrade the program or point DIALSTATUS_DB elsewhere."
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                cursor.execute("BEGIN")
                cursor.execute(MIGRATIONS[version])
                cursor.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [version]
                )
                cursor.execute("COMMIT")
            cursor.execute("INSERT OR IGNORE INTO meta VALUES ('data_version', 0)")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one thread or one script run (connections are not thread-safe)."""
        return self._connection.cursor()

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor held under the process-wide writer lock."""
        with self._write_lock:
            cursor = self._connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    def data_version(self) -> int:
        """Bumped by every change to leads; caches key on it so fresh data is never hidden."""
        with self.cursor() as cursor:
            return cursor.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0]

    def bump_data_version(self, cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")

    def close(self) -> None:
        self._connection.close()

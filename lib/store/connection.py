"""The DuckDB store: schema, migrations, the one connection of the process, and its writer lock.

DuckDB lets one process open the file; inside it, one connection is shared and every thread uses
its own cursor. Writers are serialised through `Store.writing()` because concurrent upserts of the
same keys conflict.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

SCHEMA_VERSION = 3

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

# v2: lead counts per combination of everything the Overview and Campaign pages filter or group
# by, so they read thousands of rows instead of every lead (lib/metrics.py defines the grouping
# and keeps it current; ingest updates it in the delivery's own transaction). It is valid when
# meta.summary_version equals meta.data_version; otherwise the first reader rebuilds it.
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
_SCHEMA_V3 = """
DROP TABLE IF EXISTS lead_summary;
CREATE TABLE lead_summary (
    campaign_name  VARCHAR NOT NULL,
    lead_status    VARCHAR NOT NULL,
    dial_bucket    VARCHAR NOT NULL,
    disposition    VARCHAR,
    attempted      BOOLEAN,
    updated_day    DATE,                 -- local calendar day of updated_at
    updated_hour   TINYINT,              -- local hour of updated_at
    created_day    DATE,                 -- local calendar day of created_at
    category       VARCHAR NOT NULL,     -- the disposition's category (lib/catalog.py)
    leads          BIGINT NOT NULL
);
INSERT OR REPLACE INTO meta VALUES ('summary_version', -1);
"""

MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3}

# One writer lock per database file in this process, so code holding only a cursor (a page's
# query rebuilding the summary) serialises with the Store's writers.
_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _lock_for(path: str) -> threading.RLock:
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(path)
        if lock is None:
            lock = _WRITE_LOCKS[path] = threading.RLock()
        return lock


def write_lock_for(cursor: duckdb.DuckDBPyConnection) -> threading.RLock | None:
    """The writer lock of the database file a cursor is on (None for an in-memory database)."""
    row = cursor.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if row is None or not row[0]:
        return None
    return _lock_for(str(Path(row[0]).resolve()))


class StoreError(RuntimeError):
    """The database cannot be opened or migrated; the message says what to do.

    The message names the file, not its folder (it is shown in the browser); `path` is the full
    path, for the server log.
    """

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def _open_error(path: Path, exc: Exception) -> StoreError:
    """A StoreError saying in plain words why DuckDB could not open `path`, and what to do."""
    text = str(exc)
    name = path.name
    if "lock" in text.lower():
        holder = re.search(r"\(PID (\d+)\)", text)
        pid = f" (process {holder.group(1)})" if holder else ""
        message = (
            f"Another process{pid} is using the database file {name}: DuckDB lets only one "
            "process open it, so only one dashboard server may run per database. Stop the other "
            "process, or point DIALSTATUS_DB at another file."
        )
    elif "Permission denied" in text or isinstance(exc, PermissionError):
        message = (
            f"The database file {name} cannot be opened for writing (permission denied). Make "
            "the file and its folder writable by the user running the server, or point "
            "DIALSTATUS_DB at a writable location."
        )
    elif "not a valid DuckDB database" in text:
        message = (
            f"The file {name} is not a DuckDB database. Point DIALSTATUS_DB at the dashboard's "
            "database file, or move this file away to start with an empty database."
        )
    elif "version" in text.lower() and "storage" in text.lower():
        message = (
            f"The database file {name} was written by an incompatible DuckDB version. Restore "
            "a backup made with this version, or point DIALSTATUS_DB elsewhere."
        )
    else:
        first = text.splitlines()[0] if text else type(exc).__name__
        message = f"Cannot open the database file {name}: {first.replace(str(path), name)}"
    return StoreError(message, path)


def _check_folder_writable(path: Path) -> None:
    """DuckDB writes a log beside the file, and deliveries are kept there: the folder must take
    new files. Checked by making one (permission bits alone do not tell, e.g. for root)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=path.parent, prefix=".dialstatus-write-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise StoreError(
            f"The folder of the database file {path.name} is not writable "
            f"({exc.strerror or exc}). DuckDB keeps its write-ahead log beside the file and "
            "deliveries are stored there too: make the folder writable by the user running the "
            "server, or point DIALSTATUS_DB at a writable location.",
            path,
        ) from None


class Store:
    """The process's DuckDB database: one connection, a cursor per use, one writer at a time."""

    def __init__(self, path: Path | str, timezone: str = "Asia/Kolkata") -> None:
        self.path = Path(path)
        self.timezone = timezone
        self._write_lock = _lock_for(str(self.path.resolve()))
        self._connection = self._open()
        self._migrate()

    def _open(self) -> duckdb.DuckDBPyConnection:
        _check_folder_writable(self.path)
        try:
            connection = duckdb.connect(str(self.path), config=_CONNECT_CONFIG)
        except (duckdb.Error, OSError) as exc:
            raise _open_error(self.path, exc) from None
        connection.execute(f"SET GLOBAL TimeZone = '{self.timezone}'")
        return connection

    def _migrate(self) -> None:
        """Brings the file to SCHEMA_VERSION, one transaction per version (a failure leaves the
        file at the last version that completed). A file without `meta` is version 0."""
        try:
            self._migrate_steps()
        except BaseException as exc:
            self._connection.close()
            if isinstance(exc, StoreError) or not isinstance(exc, duckdb.Error):
                raise
            raise StoreError(
                f"Upgrading the database file {self.path.name} to schema version "
                f"{SCHEMA_VERSION} failed ({str(exc).splitlines()[0][:200]}). The upgrade was "
                "rolled back; the file holds what it held before. Restore a backup or point "
                "DIALSTATUS_DB elsewhere.",
                self.path,
            ) from None

    def _migrate_steps(self) -> None:
        with self.writing() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT)"
            )
            row = cursor.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            current = row[0] if row else 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"The database file {self.path.name} is at schema version {current}, newer "
                    f"than this program ({SCHEMA_VERSION}): it was written by a newer release. "
                    "Run that release (or newer), or point DIALSTATUS_DB at another file.",
                    self.path,
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                cursor.execute("BEGIN")
                try:
                    cursor.execute(MIGRATIONS[version])
                    cursor.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [version]
                    )
                    cursor.execute("COMMIT")
                except BaseException:
                    with suppress(duckdb.Error):
                        cursor.execute("ROLLBACK")
                    raise
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

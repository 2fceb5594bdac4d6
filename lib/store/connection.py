"""The one DuckDB connection of the process, and its writer lock.

DuckDB lets one process open the file; inside it, one connection is shared and every thread uses
its own cursor. Writers are serialised through `Store.writing()` because concurrent upserts of the
same keys conflict.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb

from lib.config import DEFAULT_TIMEZONE
from lib.store import schema
from lib.store.errors import StoreError

# Offline machine: never download an extension at run time (stack-notes.md).
_CONNECT_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

MEMORY_ENV = "DIALSTATUS_DUCKDB_MEMORY_MB"
# DuckDB's own default is 80% of the machine: with a large delivery's Python objects beside it,
# the process can then be killed for memory. A quarter of the memory the process may use (the
# container's limit when there is one), at most 2 GiB: beyond it DuckDB spills to `<db>.tmp`.
_MEMORY_DEFAULT_MAX_MB = 2048
_MEMORY_MIN_MB = 128


def _usable_memory_mb() -> int:
    """Physical memory, or the cgroup's limit when it is lower (a container)."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return physical
    return min(physical, int(limit) // 2**20) if limit.isdigit() else physical


def memory_limit_mb(env=os.environ) -> int:
    """DuckDB's memory limit: DIALSTATUS_DUCKDB_MEMORY_MB, else a quarter of usable memory up to
    2048 MB (never under 128 MB)."""
    text = env.get(MEMORY_ENV, "").strip()
    if not text:
        return max(_MEMORY_MIN_MB, min(_MEMORY_DEFAULT_MAX_MB, _usable_memory_mb() // 4))
    if not text.isdigit() or int(text) < _MEMORY_MIN_MB:
        raise StoreError(
            f"{MEMORY_ENV} must be a whole number of megabytes, at least {_MEMORY_MIN_MB} "
            f"(it is {text[:40]!r})."
        )
    return int(text)


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

    def __init__(
        self,
        path: Path | str,
        timezone: str = DEFAULT_TIMEZONE,
        *,
        configured_fields: Mapping[str, str] | None = None,
        date_order: str = "DMY",
        secrets: Iterable[str | None] = (),
    ) -> None:
        self.path = Path(path)
        self.timezone = timezone
        # The settings' secrets (config.Settings.secret_values): a sender's own text in a
        # failure reason is masked against them before the store keeps it.
        self.secret_values: tuple[str, ...] = tuple(s for s in secrets if s)
        # How ingest reads deliveries, from the settings (`[fields]`, `date_order`); the
        # operators' own mapping is in the database (lib/store/mappings.py).
        self.configured_fields: dict[str, str] = dict(configured_fields or {})
        self.date_order = date_order
        self._write_lock = _lock_for(str(self.path.resolve()))
        self._connection = self._open()
        self._migrate()

    def _open(self) -> duckdb.DuckDBPyConnection:
        _check_folder_writable(self.path)
        config = {
            **_CONNECT_CONFIG,
            "memory_limit": f"{memory_limit_mb()}MB",
            # Where DuckDB spills what does not fit (its default too, said here on purpose).
            "temp_directory": str(self.path.with_name(self.path.name + ".tmp")),
        }
        try:
            connection = duckdb.connect(str(self.path), config=config)
        except (duckdb.Error, OSError) as exc:
            raise _open_error(self.path, exc) from None
        connection.execute(f"SET GLOBAL TimeZone = '{self.timezone}'")
        return connection

    def _migrate(self) -> None:
        """Brings the file to the current schema (`schema.migrate`); a failed upgrade is rolled
        back and reported in plain words."""
        try:
            with self.writing() as cursor:
                schema.migrate(cursor, self.path)
        except BaseException as exc:
            self._connection.close()
            if isinstance(exc, StoreError) or not isinstance(exc, duckdb.Error):
                raise
            raise StoreError(
                f"Upgrading the database file {self.path.name} to schema version "
                f"{schema.SCHEMA_VERSION} failed ({str(exc).splitlines()[0][:200]}). "
                "The upgrade was rolled back; the file holds what it held before. Restore a "
                "backup or point DIALSTATUS_DB elsewhere.",
                self.path,
            ) from None

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

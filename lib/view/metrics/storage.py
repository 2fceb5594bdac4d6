"""Retention and disk, for the Sync page: raw bodies kept and pruned, the log tables' rows and
their oldest, the deliveries folder's size and the free disk under it, and whether the callback
refuses deliveries because that disk is below its floor (lib/store/retention.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from lib.config import Settings
from lib.store.retention import LOG_KEEP_DAYS, LOG_TABLES, DiskSpace, disk_space, folder_size_bytes


@dataclass(frozen=True)
class Storage:
    bodies_kept: int  # raw delivery bodies still on disk ('duplicate' rows keep none)
    bodies_pruned: int
    keep_days: float  # DIALSTATUS_KEEP_DELIVERIES_DAYS
    log_keep_days: int
    logs: pd.DataFrame  # table, rows, oldest
    folder: Path
    folder_bytes: int
    disk: DiskSpace

    @property
    def refusal(self) -> str | None:
        """Why the callback refuses deliveries right now, or None."""
        if not self.disk.below_floor:
            return None
        floor_mb = self.disk.floor_bytes // (1024 * 1024)
        return (
            f"Deliveries are refused: only {self.disk.free_mb:,} MB free on the disk holding "
            f"{self.folder}; the floor is DIALSTATUS_MIN_FREE_MB={floor_mb}. CloudAgent is "
            "answered 503 and sends again later: free some space to take deliveries again."
        )


def storage(cursor: duckdb.DuckDBPyConnection, settings: Settings) -> Storage:
    """What retention keeps and what the disk holds, read live."""
    kept, pruned = cursor.execute(
        "SELECT count(*) FILTER (WHERE pruned_at IS NULL AND state <> 'duplicate'), "
        "count(*) FILTER (WHERE pruned_at IS NOT NULL) FROM raw_deliveries"
    ).fetchone()
    logs = pd.DataFrame(
        [
            (table, *cursor.execute(f"SELECT count(*), min({column}) FROM {table}").fetchone())
            for table, (column, _) in LOG_TABLES.items()
        ],
        columns=["table", "rows", "oldest"],
    )
    folder = settings.deliveries_dir
    return Storage(
        bodies_kept=int(kept),
        bodies_pruned=int(pruned),
        keep_days=settings.keep_deliveries_days,
        log_keep_days=LOG_KEEP_DAYS,
        logs=logs,
        folder=folder,
        folder_bytes=folder_size_bytes(folder),
        disk=disk_space(folder, settings.min_free_mb),
    )

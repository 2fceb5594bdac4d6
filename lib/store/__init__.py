"""DuckDB: the schema and migrations, the one connection and its writer lock, the lead summary,
the catalog, and the write path (`receive/` keeps and reads callback bodies, `ingest/` loads them
into `leads`). Nothing here imports `lib.view`."""

from lib.store.connection import Store, write_lock_for
from lib.store.errors import StoreError

__all__ = ["Store", "StoreError", "write_lock_for"]

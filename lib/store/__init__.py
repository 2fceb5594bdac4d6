"""DuckDB: the schema, the one connection and its writer lock, summaries, the catalog, and the
write path (`receive/` keeps and reads callback bodies, `ingest/` loads them into `leads`)."""

from lib.store.connection import MIGRATIONS, SCHEMA_VERSION, Store, StoreError, write_lock_for

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Store", "StoreError", "write_lock_for"]

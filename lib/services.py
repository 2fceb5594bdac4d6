"""The process-wide objects: settings, the store, and (in the server) the sync engine.

DuckDB allows one process per database file, so the server's routes, its background task and
every Streamlit script run share these through this module rather than opening their own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from lib.config import Settings, load_settings
from lib.store import Store
from lib.store.retention import RetentionSchedule


@dataclass
class Services:
    settings: Settings
    store: Store
    sync: Any = None  # lib.sync.SyncEngine once the server's lifespan has started it
    retention: RetentionSchedule | None = None  # prunes old bodies and logs, at start and daily

    @property
    def no_sync_reason(self) -> str:
        """Why there is no sync engine to send requests, for the pages that would use it."""
        if not self.settings.sync_enabled:
            return (
                "sync is turned off (DIALSTATUS_SYNC_ENABLED=false): the dashboard serves the "
                "data it has stored and sends no request"
            )
        return "the sync engine runs in the server (`streamlit run streamlit_app.py`) only"


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """The one Services of this process, created on first use."""
    global _services
    with _lock:
        if _services is None:
            settings = load_settings()
            store = Store(
                settings.db_path,
                settings.timezone,
                configured_fields=settings.fields,
                date_order=settings.date_order,
                secrets=settings.secret_values,
            )
            _services = Services(
                settings=settings,
                store=store,
                retention=RetentionSchedule(
                    store, settings.keep_deliveries_days, settings.keep_events_days
                ).start(),
            )
        return _services


def reset_services() -> None:
    """Closes the store and forgets the services (tests and server shutdown)."""
    global _services
    with _lock:
        if _services is not None:
            if _services.retention is not None:
                _services.retention.stop()
            _services.store.close()
        _services = None

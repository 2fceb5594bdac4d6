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


@dataclass
class Services:
    settings: Settings
    store: Store
    sync: Any = None  # lib.sync.SyncEngine once the server's lifespan has started it


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """The one Services of this process, created on first use."""
    global _services
    with _lock:
        if _services is None:
            settings = load_settings()
            _services = Services(
                settings=settings, store=Store(settings.db_path, settings.timezone)
            )
        return _services


def reset_services() -> None:
    """Closes the store and forgets the services (tests and server shutdown)."""
    global _services
    with _lock:
        if _services is not None:
            _services.store.close()
        _services = None

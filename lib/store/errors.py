"""The store's one error: what stops the dashboard from opening its database, in plain words."""

from __future__ import annotations

from pathlib import Path


class StoreError(RuntimeError):
    """The database cannot be opened or migrated; the message says what to do.

    The message names the file, not its folder (it is shown in the browser); `path` is the full
    path, for the server log.
    """

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path

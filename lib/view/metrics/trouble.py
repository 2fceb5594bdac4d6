"""Campaigns whose sync is in trouble, for the banner every page shows (lib/view/trouble_banner.py).

An enabled campaign is in trouble when
- its last sync failed: `sync_state.last_error` is set (the engine records it on a refused
  request, a callback that never came or a delivery that could not be used, and every success
  clears it), whether or not it ever succeeded before; or
- its data is old: it has data (the Sync page's "data as of": the last successful sync, else the
  last delivery stored) and that is more than `STALE_AFTER` sync intervals ago.
A campaign never synced with nothing failed (the first minutes after start) is not in trouble;
disabled campaigns are ignored. One query over the catalog, `sync_state` and the deliveries'
log of campaigns never synced (no lead is read): it runs on every page, every refresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from lib.config import mask_secrets

STALE_AFTER = 2  # sync intervals: data older than this many is named
MAX_ERROR_CHARS = 200  # a failure's text is cut there (the Sync page shows all of it)

_TROUBLE_SQL = """
    WITH enabled AS (
        SELECT c.name, s.last_success_at, s.last_error, s.last_error_at
        FROM campaigns c LEFT JOIN sync_state s ON s.campaign_name = c.name
        WHERE c.enabled
    ), delivered AS (  -- the Sync page's fallback for "data as of", read only where needed
        SELECT campaign_name, max(coalesce(ingested_at, received_at)) AS last_delivery_at
        FROM raw_deliveries
        WHERE state = 'ingested'
          AND campaign_name IN (SELECT name FROM enabled WHERE last_success_at IS NULL)
        GROUP BY ALL
    )
    SELECT e.name, e.last_error, e.last_error_at,
           coalesce(e.last_success_at, d.last_delivery_at) AS data_as_of
    FROM enabled e LEFT JOIN delivered d ON d.campaign_name = e.name
    WHERE e.last_error IS NOT NULL
       OR coalesce(e.last_success_at, d.last_delivery_at) < $now - $stale_after
    ORDER BY e.last_error IS NULL, e.name
"""


@dataclass(frozen=True)
class Trouble:
    campaign: str
    failed: bool  # the last sync failed (else: the data is old)
    reason: str  # plain words: "last sync failed: ..." or "data 2 h 5 min old (sync every 5 min)"
    data_as_of: datetime | None


def duration_words(seconds: float) -> str:
    """45 s, 5 min, 1 h 5 min, 3 days 4 h."""
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} days" + (f" {hours} h" if hours else "")


def _hide(text: str, secrets: Iterable[str | None]) -> str:
    """The stored text with every secret masked (the client redacts what CloudAgent echoes, the
    server a failed delivery's reason; masked here once more), then cut short."""
    text = " ".join(mask_secrets(text, secrets).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def troubled_campaigns(
    cursor: duckdb.DuckDBPyConnection,
    now: datetime,
    interval_s: float,
    secrets: Iterable[str] = (),
) -> list[Trouble]:
    """Enabled campaigns whose last sync failed (first), then those whose data is older than
    `STALE_AFTER` x `interval_s` at `now` (timezone-aware), each by name; `secrets` never
    appear in a reason."""
    limit = timedelta(seconds=STALE_AFTER * interval_s)
    rows = cursor.execute(_TROUBLE_SQL, {"now": now, "stale_after": limit}).fetchall()
    hidden = [s for s in secrets if s]
    every = f"sync every {duration_words(interval_s)}"
    out = []
    for name, error, _error_at, as_of in rows:
        age = f"data {duration_words((now - as_of).total_seconds())} old" if as_of else None
        stale = as_of is not None and now - as_of > limit
        if error is not None:
            reason = f"last sync failed: {_hide(error, hidden)}"
            if stale:
                reason += f" ({age}, {every})"
            out.append(Trouble(name, True, reason, as_of))
        else:
            out.append(Trouble(name, False, f"{age} ({every})", as_of))
    return out

"""The rate limiter's journal in the store: every request that left for CloudAgent and every wait
it imposed, in wall-clock time (table `api_calls`, schema v4).

The limiter (lib/cloudagent/ratelimit.py) writes here before each send and reads a key's recent
sends and open waits back on its first use, so CloudAgent's 10-per-minute limit holds across a
crash or a deploy. Each write is its own committed statement: a SIGKILL right after a send
cannot lose it.
"""

from __future__ import annotations

from lib.store.connection import Store

SEND, WAIT = "send", "wait"


class ApiCallJournal:
    """`LimiterJournal` over the store (structural: this layer does not import the client)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record_send(self, key: str, at: float, note: str) -> None:
        self._insert(key, SEND, at, None, note)

    def record_wait(self, key: str, at: float, until: float, reason: str) -> None:
        self._insert(key, WAIT, at, until, reason)

    def _insert(self, key: str, kind: str, at: float, until: float | None, note: str) -> None:
        with self._store.writing() as cursor:
            cursor.execute(
                "INSERT INTO api_calls (account, kind, noted_at, until_at, reason) "
                "VALUES (?, ?, to_timestamp(?), to_timestamp(?), ?)",
                [key, kind, at, until, note or None],
            )

    def recent(self, key: str, since: float) -> tuple[list[float], list[tuple[float, str]]]:
        with self._store.cursor() as cursor:
            sends = cursor.execute(
                "SELECT epoch(noted_at) FROM api_calls WHERE account = ? AND kind = ? "
                "AND noted_at >= to_timestamp(?) ORDER BY noted_at",
                [key, SEND, since],
            ).fetchall()
            waits = cursor.execute(
                "SELECT epoch(until_at), coalesce(reason, '') FROM api_calls "
                "WHERE account = ? AND kind = ? AND until_at > now() ORDER BY until_at",
                [key, WAIT],
            ).fetchall()
        return [at for (at,) in sends], [(until, reason) for until, reason in waits]

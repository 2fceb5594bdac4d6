"""Which deliveries this process is ingesting right now, and when those that failed for a
transient reason may be tried again.

One process owns the database, so this is the whole truth: a delivery is ingested by one thread
at a time; a second caller (a resent copy, recovery, the retry pass) waits for the first one's
outcome instead of reading the same body again or calling it a duplicate too early.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lib.store.receive import DeliveryRejected


class Flight:
    """One ingest of one delivery; `rejected` is how it failed, if it did."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.rejected: DeliveryRejected | None = None


class Flights:
    """Deliveries in flight, keyed by (database file, delivery id), and their retry times."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._guard = threading.Lock()
        self._flying: dict[tuple[str, int], Flight] = {}
        self._retry_at: dict[tuple[str, int], float] = {}

    @staticmethod
    def key(store, delivery_id: int) -> tuple[str, int]:
        return str(Path(store.path).resolve()), int(delivery_id)

    @contextmanager
    def flying(self, store, delivery_id: int) -> Iterator[tuple[Flight, Flight | None]]:
        """Holds the delivery for one ingest: yields (this flight, the last flight of the same
        delivery this one waited for, or None when none was in the air)."""
        key = self.key(store, delivery_id)
        waited_for = None
        while True:
            with self._guard:
                current = self._flying.get(key)
                if current is None:
                    mine = self._flying[key] = Flight()
                    break
            current.done.wait()
            waited_for = current
        try:
            yield mine, waited_for
        finally:
            with self._guard:
                del self._flying[key]
            mine.done.set()

    def retry_later(self, store, delivery_id: int, delay_s: float) -> None:
        with self._guard:
            self._retry_at[self.key(store, delivery_id)] = self._clock() + delay_s

    def forget(self, store, delivery_id: int) -> None:
        with self._guard:
            self._retry_at.pop(self.key(store, delivery_id), None)

    def due(self, store) -> list[int]:
        """The deliveries of this database whose retry time has come, oldest first."""
        path, now = self.key(store, 0)[0], self._clock()
        with self._guard:
            return sorted(i for (p, i), at in self._retry_at.items() if p == path and at <= now)


FLIGHTS = Flights()

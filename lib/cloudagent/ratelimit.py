"""A thread-safe sliding-window rate limiter, one window per key (CloudAgent account).

CloudAgent allows 10 Campaign Dial Status requests per minute (vendor page). Whether that minute is
fixed or sliding, and whether it counts per user or per api key, is not documented: a sliding
window of `window_s` per account is the strictest reading, and it also satisfies a fixed
calendar-minute window. CloudAgent counts a request when it arrives, somewhere between our send
and its answer, so a slot is held from the send until the answer comes back (`answered`), then
for the window: a request that reached the server late can never share its minute with the
request ten sends later. `margin_s` widens the window a little more, against clock jitter.

Every wait is announced through `on_wait(reason, seconds)` before it starts, so a caller can show
why nothing is happening ("rate limit: 10 requests per 60 s reached for account X; ...").

A `journal` makes the limiter durable: every slot taken and every penalty is written to it, in
wall-clock time, before `acquire` returns (so before the request leaves), and a key's window and
penalty are read back from it on the key's first use, so a new process starts with the window and
the waits of the one before it, even after a SIGKILL. The server's journal is the store
(lib/store/api_calls.py); the limiter itself knows nothing about storage.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

OnWait = Callable[[str, float], None]


class LimiterJournal(Protocol):
    """Where a durable limiter writes its sends and penalties (times are wall-clock seconds)."""

    def record_send(self, key: str, at: float, note: str) -> None: ...

    def record_wait(self, key: str, at: float, until: float, reason: str) -> None: ...

    def recent(self, key: str, since: float) -> tuple[list[float], list[tuple[float, str]]]:
        """(send times at or after `since`, [(until, reason)] of penalties still in force)."""
        ...


@dataclass
class _KeyState:
    stamps: deque[float] = field(default_factory=deque)  # clock() of each acquisition, oldest first
    blocked_until: float = float("-inf")  # penalty from the server (Retry-After, Max limit)
    penalty_reason: str = ""
    waiting: int = 0


class SlidingWindowLimiter:
    """At most `max_requests` acquisitions per key in any `window_s` interval, across threads.

    `clock` and `sleep` are injectable: tests pass a fake clock whose `sleep` advances it, so no
    test sleeps for real. The lock is never held while sleeping or calling `on_wait`.
    `margin_s` (default 1 s) keeps each slot busy a little longer than the window, against
    network jitter; pass 0 for exact window arithmetic. `journal` (optional) makes it durable;
    `wall_clock` converts between the journal's wall-clock times and `clock`.
    """

    def __init__(
        self,
        max_requests: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin_s: float = 1.0,
        journal: LimiterJournal | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        if window_s <= 0 or margin_s < 0:
            raise ValueError("window_s must be positive and margin_s not negative")
        self.max_requests = max_requests
        self.window_s = float(window_s)
        self.margin_s = float(margin_s)
        self._clock = clock
        self._sleep = sleep
        self._journal = journal
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._keys: dict[str, _KeyState] = {}

    @property
    def span_s(self) -> float:
        """How long an acquisition occupies its slot: the window plus the safety margin."""
        return self.window_s + self.margin_s

    def _state(self, key: str) -> _KeyState:
        """The key's state; on first use, restored from the journal (caller holds the lock)."""
        state = self._keys.get(key)
        if state is None:
            state = _KeyState()
            if self._journal is not None:
                self._restore(key, state)
            self._keys[key] = state
        return state

    def _restore(self, key: str, state: _KeyState) -> None:
        now, wall = self._clock(), self._wall_clock()
        sends, waits = self._journal.recent(key, since=wall - self.span_s)
        # A send journalled "in the future" (the wall clock stepped back) counts as sent now.
        state.stamps.extend(sorted(now - max(0.0, wall - at) for at in sends))
        for until, reason in waits:
            if now + (until - wall) > state.blocked_until:
                state.blocked_until, state.penalty_reason = now + (until - wall), reason

    def _prune(self, state: _KeyState, now: float) -> None:
        span = self.span_s
        while state.stamps and state.stamps[0] + span <= now:
            state.stamps.popleft()

    def _wait_needed(self, key: str, state: _KeyState, now: float) -> tuple[float, str]:
        """(seconds to wait, reason); 0 when a slot is free now. Caller holds the lock."""
        self._prune(state, now)
        waits: list[tuple[float, str]] = []
        if state.blocked_until > now:
            seconds = state.blocked_until - now
            reason = state.penalty_reason or "server asked to wait"
            waits.append((seconds, f"{reason} for account {key}; next try in {seconds:.1f} s"))
        if len(state.stamps) >= self.max_requests:
            oldest_needed = state.stamps[len(state.stamps) - self.max_requests]
            seconds = oldest_needed + self.span_s - now
            waits.append(
                (
                    seconds,
                    f"rate limit: {self.max_requests} requests per {self.window_s:g} s reached "
                    f"for account {key}; next slot in {seconds:.1f} s",
                )
            )
        if not waits:
            return 0.0, ""
        return max(waits)

    def acquire(self, key: str, on_wait: OnWait | None = None, note: str = "") -> float:
        """Blocks until `key` has a free slot, then takes it and journals it (with `note`) before
        returning; a journal that cannot be written raises, so nothing unrecorded is sent.
        Calls `on_wait` before each wait. Returns the slot's stamp, for `answered`."""
        with self._lock:
            state = self._state(key)
            state.waiting += 1
        try:
            while True:
                with self._lock:
                    now = self._clock()
                    seconds, reason = self._wait_needed(key, state, now)
                    if seconds <= 0:
                        state.stamps.append(now)
                        break
                if on_wait is not None:
                    on_wait(reason, seconds)
                self._sleep(seconds)
        finally:
            with self._lock:
                state.waiting -= 1
        if self._journal is not None:
            self._journal.record_send(key, self._wall_clock(), note)
        return now

    def answered(self, key: str, stamp: float) -> None:
        """The request sent in slot `stamp` got its answer (or failed) now: the slot's window
        starts again from here, as the server may have counted it as late as this."""
        with self._lock:
            state = self._state(key)
            if stamp in state.stamps:  # absent once pruned: an answer slower than the window
                state.stamps.remove(stamp)
            state.stamps.append(max(stamp, self._clock()))
            state.stamps = deque(sorted(state.stamps))

    def penalise(self, key: str, seconds: float, reason: str = "server asked to wait") -> None:
        """Blocks `key` for `seconds` from now (keeps a longer penalty already in force), and
        journals the penalty so that a restart keeps it too."""
        seconds = max(0.0, seconds)
        with self._lock:
            state = self._state(key)
            until = self._clock() + seconds
            if until > state.blocked_until:
                state.blocked_until = until
                state.penalty_reason = reason
        if self._journal is not None:
            wall = self._wall_clock()
            self._journal.record_wait(key, wall, wall + seconds, reason)

    def state(self, key: str) -> dict:
        """A snapshot for health pages: usage, limit, window, waiting threads, next free slot."""
        with self._lock:
            state = self._state(key)
            now = self._clock()
            seconds, reason = self._wait_needed(key, state, now)
            return {
                "key": key,
                "used": len(state.stamps),
                "limit": self.max_requests,
                "window_s": self.window_s,
                "margin_s": self.margin_s,
                "waiting": state.waiting,
                "next_slot_in_s": round(max(0.0, seconds), 3),
                "penalised_for_s": round(max(0.0, state.blocked_until - now), 3),
                "reason": reason,
            }

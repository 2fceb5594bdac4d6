"""SlidingWindowLimiter: deterministic tests on a fake clock, plus one small real-threads test."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.cloudagent.ratelimit import SlidingWindowLimiter


class FakeClock:
    """A clock whose sleep advances time instantly; records every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make(max_requests=10, window_s=60.0, margin_s=0.0):
    clock = FakeClock()
    limiter = SlidingWindowLimiter(max_requests, window_s, clock=clock, sleep=clock.sleep,
                                   margin_s=margin_s)  # fmt: skip
    return clock, limiter


def test_ten_free_then_eleventh_waits_a_full_window_with_a_visible_reason():
    clock, limiter = make()
    waits = []
    for _ in range(10):
        limiter.acquire("acme", on_wait=lambda r, s: waits.append((r, s)))
    assert waits == [] and clock.sleeps == []
    limiter.acquire("acme", on_wait=lambda r, s: waits.append((r, s)))
    assert clock.sleeps == [pytest.approx(60.0)]
    reason, seconds = waits[0]
    assert seconds == pytest.approx(60.0)
    assert reason == (
        "rate limit: 10 requests per 60 s reached for account acme; next slot in 60.0 s"
    )


def test_window_slides_one_slot_at_a_time():
    clock, limiter = make()
    start = clock.now
    for _ in range(10):
        limiter.acquire("a")
        clock.now += 1.0  # acquisitions at start+0 .. start+9
    assert clock.now == start + 10
    limiter.acquire("a")  # slot of start+0 frees at start+60
    assert clock.now == pytest.approx(start + 60)
    limiter.acquire("a")  # slot of start+1 frees at start+61
    assert clock.now == pytest.approx(start + 61)


def test_a_slot_is_held_until_its_answer_then_for_the_window():
    """CloudAgent counts a request when it arrives, which may be as late as its answer: a CI run
    saw 11 arrivals in 60 s when a slot's window started at the send and the first request of
    the ten reached the sandbox late under load."""
    clock, limiter = make()
    start = clock.now
    first = limiter.acquire("a")
    clock.now += 5.0  # the first request's answer comes back 5 s later
    limiter.answered("a", first)
    for _ in range(9):
        limiter.answered("a", limiter.acquire("a"))  # answered at once
    limiter.acquire("a")  # the first slot frees 60 s after its answer, not after its send
    assert clock.now == pytest.approx(start + 65)


def test_an_answer_slower_than_the_window_still_holds_a_slot_for_the_window_after_it():
    clock, limiter = make(max_requests=1)
    start = clock.now
    slow = limiter.acquire("a")
    clock.now += 90.0  # answered after the send's window has passed
    limiter.answered("a", slow)
    limiter.acquire("a")
    assert clock.now == pytest.approx(start + 150)


def test_keys_are_independent():
    clock, limiter = make(max_requests=2)
    for key in ("a", "b", "c"):
        limiter.acquire(key)
        limiter.acquire(key)
    assert clock.sleeps == []
    limiter.acquire("b")
    assert clock.sleeps == [pytest.approx(60.0)]


def test_margin_widens_the_window():
    clock, limiter = make(max_requests=1, window_s=2.0, margin_s=0.5)
    limiter.acquire("a")
    limiter.acquire("a")
    assert clock.sleeps == [pytest.approx(2.5)]


def test_penalise_blocks_even_with_free_slots_and_keeps_the_longer_penalty():
    clock, limiter = make()
    limiter.penalise("a", 30, reason="server said Max limit exceeded")
    limiter.penalise("a", 5)  # shorter: ignored
    reasons = []
    limiter.acquire("a", on_wait=lambda r, s: reasons.append(r))
    assert clock.sleeps == [pytest.approx(30.0)]
    assert reasons == ["server said Max limit exceeded for account a; next try in 30.0 s"]
    limiter.acquire("b")  # other accounts unaffected
    assert len(clock.sleeps) == 1


def test_penalty_and_full_window_wait_for_the_later_of_both():
    clock, limiter = make(max_requests=1)
    limiter.acquire("a")  # window busy until +60
    limiter.penalise("a", 10)
    limiter.acquire("a")
    assert clock.sleeps == [pytest.approx(60.0)]


def test_state_reports_usage_waiting_and_next_slot():
    clock, limiter = make(max_requests=3, window_s=10)
    assert limiter.state("a") == {
        "key": "a", "used": 0, "limit": 3, "window_s": 10.0, "margin_s": 0.0, "waiting": 0,
        "next_slot_in_s": 0.0, "penalised_for_s": 0.0, "reason": "",
    }  # fmt: skip
    for _ in range(3):
        limiter.acquire("a")
        clock.now += 2
    seen = []

    def sleep(seconds):
        seen.append(limiter.state("a"))  # lock is free while sleeping
        clock.sleep(seconds)

    limiter._sleep = sleep
    limiter.acquire("a")
    during = seen[0]
    assert during["used"] == 3 and during["waiting"] == 1
    assert during["next_slot_in_s"] == pytest.approx(4.0)
    assert during["reason"].startswith("rate limit: 3 requests per 10 s reached for account a")
    after = limiter.state("a")
    assert after["waiting"] == 0 and after["used"] == 3  # stamps at 2, 4 and the new one at 10


def test_the_default_is_ten_per_minute_with_a_one_second_margin_against_jitter():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(11):
        limiter.acquire("a")
    assert clock.sleeps == [pytest.approx(61.0)]
    assert limiter.state("a")["limit"] == 10 and limiter.state("a")["window_s"] == 60.0


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError):
        SlidingWindowLimiter(max_requests=0)
    with pytest.raises(ValueError):
        SlidingWindowLimiter(window_s=0)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=25, allow_nan=False), min_size=1, max_size=60),
    max_requests=st.integers(min_value=1, max_value=10),
    window_s=st.sampled_from([1.0, 7.5, 60.0]),
)
def test_never_more_than_max_in_any_window(gaps, max_requests, window_s):
    clock, limiter = make(max_requests=max_requests, window_s=window_s)
    granted: list[float] = []
    for gap in gaps:
        clock.now += gap
        arrival = clock.now
        limiter.acquire("k")
        granted.append(clock.now)
        # Granted exactly when the model says: on arrival, or when the slot max_requests back frees.
        i = len(granted) - 1
        expected = (
            arrival if i < max_requests else max(arrival, granted[i - max_requests] + window_s)
        )
        assert clock.now == pytest.approx(expected)
    # Any max_requests+1 consecutive grants span at least a whole window.
    for i in range(len(granted) - max_requests):
        assert granted[i + max_requests] - granted[i] >= window_s - 1e-9


def test_real_threads_share_the_window():
    limiter = SlidingWindowLimiter(max_requests=3, window_s=0.3, margin_s=0.0)
    granted: list[float] = []
    lock = threading.Lock()
    reasons: list[str] = []

    def worker():
        for _ in range(2):
            limiter.acquire("acct", on_wait=lambda r, s: reasons.append(r))
            with lock:
                granted.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(granted) == 8
    granted.sort()
    for i in range(len(granted) - 3):
        assert granted[i + 3] - granted[i] >= 0.3 - 0.05
    assert time.monotonic() - started >= 0.6 - 0.05  # 8 grants at 3 per 0.3 s need 2 windows
    assert reasons and all("account acct" in r for r in reasons)
    assert limiter.state("acct")["waiting"] == 0

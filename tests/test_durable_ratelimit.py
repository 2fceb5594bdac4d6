"""The rate limit survives restarts: sends and imposed waits are journalled in the store before
the request leaves, and a new limiter (a new process) starts with the window and the waits of
the one before it. Fake clocks and a real DuckDB file; httpx.MockTransport for the answers."""

from __future__ import annotations

import httpx
import pytest

from lib.cloudagent import (
    ClientOptions,
    CloudAgentClient,
    CloudAgentUnavailableError,
    DialStatusRequest,
    RateLimitedError,
)
from lib.cloudagent.ratelimit import SlidingWindowLimiter
from lib.store import Store
from lib.store.api_calls import ApiCallJournal

USER = "acme_ops"
URL = "http://127.0.0.1:9/endpoint/dailer/data/preview/download"  # never contacted (mocks)
MAX_LIMIT = {"status": "error", "message": "Max limit exceeded"}
ACCEPTED = {"status": "success", "message": "queued", "uniqueId": "u1"}


class Clocks:
    """A monotonic clock and a wall clock that a fake sleep advances together. `restart()` is a
    new process: its monotonic clock starts elsewhere, the wall clock goes on."""

    def __init__(self, wall: float) -> None:
        self.mono, self.wall = 1000.0, wall
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono += seconds
        self.wall += seconds

    def restart(self, after_s: float = 0.0) -> None:
        self.mono, self.wall = 5.0, self.wall + after_s
        self.sleeps.clear()


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "limits.duckdb")
    yield store
    store.close()


@pytest.fixture
def clocks(store):
    with store.cursor() as cursor:  # the journal's "now()" is the database's wall clock
        (now,) = cursor.execute("SELECT epoch(now())").fetchone()
    return Clocks(wall=now)


def limiter_for(store: Store, clocks: Clocks) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(
        10,
        60,
        clock=lambda: clocks.mono,
        sleep=clocks.sleep,
        margin_s=1.0,
        journal=ApiCallJournal(store),
        wall_clock=lambda: clocks.wall,
    )


def client_for(limiter, clocks, answers, sent: list, **overrides) -> CloudAgentClient:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(clocks.wall)
        return next(answers)

    options = ClientOptions(
        api_url=URL,
        username=USER,
        api_key="KEY-never-print-0123",
        backoff_base_s=0.5,
        sleep=clocks.sleep,
        transport=httpx.MockTransport(answer),
        **overrides,
    )
    return CloudAgentClient(options, limiter=limiter)


def request(campaign: str = "Renewals") -> DialStatusRequest:
    return DialStatusRequest(campaign_name=campaign, callback_url="https://dash.example/cb/s")


def journal_rows(store: Store) -> list[tuple]:
    with store.cursor() as cursor:
        return cursor.execute(
            "SELECT kind, reason, epoch(until_at) - epoch(noted_at) FROM api_calls ORDER BY id"
        ).fetchall()


def test_a_new_process_waits_for_the_window_of_the_one_before_it(store, clocks):
    first = limiter_for(store, clocks)
    for index in range(10):
        first.acquire(USER, note=f"campaign {index}")
        clocks.sleep(0.5)  # 10 sends over 5 s
    assert [kind for kind, *_ in journal_rows(store)] == ["send"] * 10
    clocks.restart(after_s=1.0)  # SIGKILL right after the 10th send, restarted at once
    second = limiter_for(store, clocks)
    assert second.state(USER)["used"] == 10
    second.acquire(USER)
    # The first send was 6 s ago: its slot frees 61 s after it (window + margin).
    assert clocks.sleeps == [pytest.approx(55.0, abs=0.01)]
    assert len(journal_rows(store)) == 11


def test_sends_older_than_the_window_do_not_count_after_a_restart(store, clocks):
    first = limiter_for(store, clocks)
    for _ in range(10):
        first.acquire(USER)
    clocks.restart(after_s=61.5)
    second = limiter_for(store, clocks)
    assert second.state(USER)["used"] == 0
    second.acquire(USER)
    assert clocks.sleeps == []


def test_an_imposed_wait_survives_a_restart_and_holds_the_next_send(store, clocks):
    first = limiter_for(store, clocks)
    first.penalise(USER, 3600, reason="CloudAgent answered Max limit exceeded")
    clocks.restart(after_s=600)
    second = limiter_for(store, clocks)
    state = second.state(USER)
    assert state["penalised_for_s"] == pytest.approx(3000, abs=0.01)
    assert "Max limit exceeded" in state["reason"]
    second.acquire(USER)
    assert clocks.sleeps == [pytest.approx(3000, abs=0.01)]


def test_retries_are_sends_and_leave_a_row_each(store, clocks):
    sent: list[float] = []
    answers = iter([httpx.Response(503), httpx.Response(503), httpx.Response(200, json=ACCEPTED)])
    client = client_for(limiter_for(store, clocks), clocks, answers, sent)
    client.request_dial_status(request("Renewals"))
    rows = journal_rows(store)
    assert len(sent) == 3
    assert [(kind, note) for kind, note, _ in rows] == [
        ("send", "Renewals (attempt 1)"),
        ("send", "Renewals (attempt 2)"),
        ("send", "Renewals (attempt 3)"),
    ]


def test_when_retries_run_out_on_max_limit_the_next_campaign_still_waits(store, clocks):
    sent: list[float] = []
    answers = iter([httpx.Response(200, json=MAX_LIMIT)] * 2 + [httpx.Response(200, json=ACCEPTED)])
    client = client_for(limiter_for(store, clocks), clocks, answers, sent, max_retries=1)
    with pytest.raises(RateLimitedError):
        client.request_dial_status(request("First"))
    gave_up_at = sent[-1]
    client.request_dial_status(request("Second"))
    # No Retry-After: a whole window (60 s + 1 s margin) after the last refusal.
    assert sent[-1] - gave_up_at == pytest.approx(61.0, abs=0.01)
    assert [kind for kind, *_ in journal_rows(store)] == ["send", "wait", "send", "wait", "send"]


def test_a_retry_after_longer_than_the_cap_ends_the_call_but_is_honoured_in_full(store, clocks):
    sent: list[float] = []
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "7200"}), httpx.Response(200, json=ACCEPTED)]
    )
    limiter = limiter_for(store, clocks)
    client = client_for(limiter, clocks, answers, sent, max_retry_after_s=300)
    with pytest.raises(RateLimitedError) as caught:
        client.request_dial_status(request("First"))
    assert caught.value.retry_after == 7200 and len(sent) == 1
    assert limiter.state(USER)["penalised_for_s"] == pytest.approx(7200, abs=0.01)
    assert journal_rows(store)[-1] == ("wait", "CloudAgent answered Max limit exceeded", 7200.0)
    clocks.restart(after_s=200)  # a deploy during the wait does not shorten it
    client = client_for(limiter_for(store, clocks), clocks, answers, sent)
    client.request_dial_status(request("Second"))
    assert sent[-1] - sent[0] == pytest.approx(7200, abs=0.01)


def test_a_retry_after_on_a_server_error_holds_the_next_send_too(store, clocks):
    sent: list[float] = []
    answers = iter(
        [httpx.Response(503, headers={"Retry-After": "900"}), httpx.Response(200, json=ACCEPTED)]
    )
    client = client_for(limiter_for(store, clocks), clocks, answers, sent, max_retry_after_s=300)
    with pytest.raises(CloudAgentUnavailableError):
        client.request_dial_status(request("First"))
    client.request_dial_status(request("Second"))
    assert sent[-1] - sent[0] == pytest.approx(900, abs=0.01)


def test_nothing_is_sent_when_the_send_cannot_be_recorded(store, clocks):
    sent: list[float] = []
    limiter = limiter_for(store, clocks)
    client = client_for(limiter, clocks, iter([httpx.Response(200, json=ACCEPTED)]), sent)
    store.close()
    with pytest.raises(Exception):  # noqa: B017 - whatever the closed store raises
        client.request_dial_status(request())
    assert sent == []


def test_the_sync_page_names_a_wait_in_force_and_lists_past_ones(seeded):
    """A long Retry-After leaves the engine idle for an hour: the Sync page says until when, and
    why, from the journal (so it shows after a restart too); a wait that ended is only listed."""
    import time
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from lib.services import get_services
    from tests.conftest import TZ
    from tests.support.apptest import texts
    from tests.test_pages import app

    journal = ApiCallJournal(get_services().store)
    now = time.time()
    journal.record_wait(USER, now - 600, now - 540, "Max limit exceeded")
    at = app("sync")
    assert "asked us to wait" not in texts(at.warning)
    assert "Waits CloudAgent imposed (newest 1)" in [e.label for e in at.expander]

    journal.record_wait(USER, now, now + 3600, "Retry-After 3600 s")
    at = app("sync")
    until = datetime.fromtimestamp(now + 3600, ZoneInfo(TZ)).strftime("%d %b, %H:%M:%S")
    shown = texts(at.warning)
    assert f"no request is sent before {until} (Retry-After 3600 s)" in shown, shown
    assert "Waits CloudAgent imposed (newest 2)" in [e.label for e in at.expander]

"""CloudAgent misbehaving: the sandbox's fault mode, then the real server living through each fault.

Part 1 checks that the sandbox plays every fault as documented (in-process, fast). Part 2 runs the
real server (`streamlit run`) in demo mode against its mounted sandbox with the fault switched on
at run time, and checks for each fault that the dashboard keeps serving, says in plain language
what went wrong (the campaign's `last_error`, which the Sync page shows), loses and double-counts
nothing, never lets older data overwrite newer, and recovers on the next sync by itself.

The end-to-end oracle: every lead stored equals the newest version of that lead among all the
records the sandbox delivered with a 200 answer (recomputed from the sandbox's own request and
delivery logs with its own selection code), and nothing else is stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from lib.config import API_PATH
from lib.sandbox import SandboxConfig, create_sandbox_app
from lib.sandbox.app import GARBAGE_ANSWER, HTML_ANSWER, MAX_LIMIT
from tests.sandbox_server import CallbackReceiver, run_asgi

API_KEY = "fault-test-key-0123456789"
USER = "fault_ops"
CAMPAIGN = "Faults A"
OTHER = "Faults B"
SECRET = "fault-secret-0123456789abcdef"

# -- part 1: the sandbox plays each fault ----------------------------------------------------


@pytest.fixture(scope="module")
def receiver():
    receiver = CallbackReceiver()
    with run_asgi(receiver.app) as base_url:
        receiver.base_url = base_url
        yield receiver


@pytest.fixture(scope="module")
def sandbox():
    config = SandboxConfig(
        api_key=API_KEY,
        username=USER,
        campaigns={CAMPAIGN: 300, OTHER: 200},
        seed=3,
        delivery_delay_s=0.0,
        rate_limit=100_000,
    )
    app = create_sandbox_app(config)
    with run_asgi(app) as base_url:
        app.state.sandbox.base_url = base_url
        yield app.state.sandbox
    app.state.sandbox.close()


@pytest.fixture
def fresh(sandbox, receiver) -> Iterator:
    """Clean logs, no fault, an empty receiver; the fault is switched off again afterwards."""
    sandbox.reset()
    receiver.clear()
    sandbox.update_config({"fault": "none", "fault_count": 1, "fault_delay_s": None,
                           "clock_offset_s": 0, "delivery": "json_data"})  # fmt: skip
    yield sandbox
    sandbox.update_config({"fault": "none", "fault_count": 1, "fault_delay_s": None,
                           "clock_offset_s": 0, "delivery": "json_data"})  # fmt: skip


def _set(sandbox, **changes) -> dict:
    response = httpx.post(sandbox.base_url + "/_sandbox/config", json=changes)
    assert response.status_code == 200, response.text
    return response.json()


def _ask(sandbox, receiver, campaign=CAMPAIGN, timeout=10.0) -> httpx.Response:
    body = {
        "campaignName": campaign,
        "userName": USER,
        "callBackUrl": f"{receiver.base_url}/callback/{SECRET}",
        "status": "All",
        "dialstatus": "All",
        "dispositions": "ALL",
        "sortby": "0",
    }
    return httpx.post(
        sandbox.base_url + API_PATH, json=body, headers={"apiKey": API_KEY}, timeout=timeout
    )


def _deliveries(sandbox) -> list[dict]:
    return httpx.get(sandbox.base_url + "/_sandbox/deliveries").json()


def _wait(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)


def test_fault_config_is_validated_and_counted(fresh):
    url = fresh.base_url + "/_sandbox/config"
    for bad in ({"fault": "meteor"}, {"fault_count": -1}, {"fault_delay_s": 9999},
                {"clock_offset_s": 10**9}, {"fault_retry_after_s": -1}):  # fmt: skip
        assert httpx.post(url, json=bad).status_code == 400, bad
    state = _set(fresh, fault="http_500", fault_count=2)
    assert state["fault"] == "http_500" and state["fault_left"] == 2
    assert _set(fresh, fault_delay_s=None)["fault_delay_s"] is None
    assert _set(fresh, fault_count=0)["fault_left"] is None  # 0 = until switched off


@pytest.mark.parametrize(
    ("fault", "status", "check"),
    [
        ("http_500", 500, lambda r: r.text == "Internal Server Error"),
        ("garbage", 200, lambda r: r.content == GARBAGE_ANSWER),
        ("html", 200, lambda r: r.text == HTML_ANSWER and "text/html" in r.headers["content-type"]),
        ("rate_limit_200", 200, lambda r: r.json()["message"] == MAX_LIMIT),
        ("rate_limit_429", 429, lambda r: r.headers.get("retry-after") == "2"),
        ("rate_limit_429_no_retry_after", 429, lambda r: "retry-after" not in r.headers),
    ],
)
def test_answer_faults_apply_to_fault_count_requests_then_stop(fresh, receiver, fault, status,
                                                                check):  # fmt: skip
    _set(fresh, fault=fault, fault_count=2)
    answers = [_ask(fresh, receiver) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [status, status]
    assert all(check(a) for a in answers[:2])
    assert answers[2].status_code == 200 and answers[2].json()["status"] == "success"
    log = httpx.get(fresh.base_url + "/_sandbox/requests").json()
    assert [e["fault"] for e in log] == [fault, fault, None]
    assert [e["outcome"] for e in log][2] == "accepted"
    # Answered by the fault alone: nothing queued, nothing delivered for those two.
    _wait(lambda: len(receiver.posts) == 1, what="one delivery")
    time.sleep(0.3)
    assert len(_deliveries(fresh)) == 1


def test_slow_answers_late_but_is_processed(fresh, receiver):
    _set(fresh, fault="slow", fault_delay_s=1.0)
    started = time.monotonic()
    answer = _ask(fresh, receiver)
    assert time.monotonic() - started >= 1.0
    assert answer.json()["status"] == "success"
    _wait(lambda: receiver.posts, what="the delivery")


def test_timeout_queues_the_job_but_holds_the_answer_until_the_client_gives_up(fresh, receiver):
    _set(fresh, fault="timeout", fault_delay_s=30)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        _ask(fresh, receiver, timeout=1.0)
    assert time.monotonic() - started < 5
    # The job was queued all the same: a client that retries gets two deliveries.
    _wait(lambda: receiver.posts, what="the delivery of the timed-out request")
    assert _ask(fresh, receiver).json()["status"] == "success"  # fault_count 1: used up
    _wait(lambda: len(receiver.posts) == 2, what="the second delivery")


def test_no_callback_and_double_callback(fresh, receiver):
    _set(fresh, fault="no_callback")
    first = _ask(fresh, receiver).json()["uniqueId"]
    _set(fresh, fault="double_callback")
    second = _ask(fresh, receiver).json()["uniqueId"]
    _wait(lambda: len(receiver.posts) == 2, what="two posts")
    time.sleep(0.5)
    assert len(receiver.posts) == 2
    assert receiver.posts[0].body == receiver.posts[1].body
    assert json.loads(receiver.posts[0].body)["uniqueId"] == second
    by_id = {e["unique_id"]: e for e in _deliveries(fresh)}
    assert by_id[first]["state"] == "withheld" and by_id[first]["fault"] == "no_callback"
    assert by_id[second]["posts"] == 2 and by_id[second]["state"] == "delivered"


def test_late_callback_waits_for_a_newer_delivery_of_the_same_campaign(fresh, receiver):
    _set(fresh, fault="late_callback")
    late = _ask(fresh, receiver).json()["uniqueId"]
    other = _ask(fresh, receiver, campaign=OTHER).json()["uniqueId"]
    _wait(lambda: len(receiver.posts) == 1, what="the other campaign's delivery")
    time.sleep(0.5)
    assert len(receiver.posts) == 1  # another campaign's delivery does not release it
    _set(fresh, clock_offset_s=3 * 3600)  # the newer delivery shows later lead versions
    newer = _ask(fresh, receiver).json()["uniqueId"]
    posts = _wait(lambda: len(receiver.posts) == 3 and receiver.posts, what="all three")
    assert [json.loads(p.body)["uniqueId"] for p in posts] == [other, newer, late]
    by_id = {e["unique_id"]: e for e in _deliveries(fresh)}
    assert by_id[late]["as_of"] < by_id[newer]["as_of"]


def test_out_of_order_posts_the_batch_newest_first(fresh, receiver):
    _set(fresh, fault="out_of_order", fault_count=3)
    asked = [_ask(fresh, receiver, campaign=c).json()["uniqueId"] for c in (CAMPAIGN, OTHER)]
    time.sleep(0.5)
    assert receiver.posts == []
    asked.append(_ask(fresh, receiver).json()["uniqueId"])
    posts = _wait(lambda: len(receiver.posts) == 3 and receiver.posts, what="the batch")
    assert [json.loads(p.body)["uniqueId"] for p in posts] == asked[::-1]


def test_out_of_order_batch_goes_out_when_its_wait_runs_out(fresh, receiver):
    _set(fresh, fault="out_of_order", fault_count=3, fault_delay_s=1.0)
    asked = [_ask(fresh, receiver, campaign=c).json()["uniqueId"] for c in (CAMPAIGN, OTHER)]
    posts = _wait(lambda: len(receiver.posts) == 2 and receiver.posts, what="the short batch")
    assert [json.loads(p.body)["uniqueId"] for p in posts] == asked[::-1]


@pytest.mark.parametrize("variant", ["json_data", "csv_link"])
def test_link_faults(fresh, receiver, variant):
    _set(fresh, fault="link_404", delivery=variant)
    _ask(fresh, receiver)
    _set(fresh, fault="link_truncated", delivery=variant)
    _ask(fresh, receiver)
    posts = _wait(lambda: len(receiver.posts) == 2 and receiver.posts, what="two link posts")
    missing, truncated = (json.loads(p.body)["fileUrl"] for p in posts)
    assert missing.endswith(".csv" if variant == "csv_link" else ".json")
    assert httpx.get(missing).status_code == 404
    cut = httpx.get(truncated)
    assert cut.status_code == 200 and int(cut.headers["content-length"]) == len(cut.content)
    assert not cut.content.endswith((b"\n", b"]"))  # cut inside a record
    if variant == "json_data":
        with pytest.raises(ValueError):
            json.loads(cut.content)


def test_clock_offset_shows_later_versions(fresh):
    data = fresh.campaign_data(CAMPAIGN)
    now = set(data.current_rows(fresh.now_s()).tolist())
    _set(fresh, clock_offset_s=6 * 3600)
    later = set(data.current_rows(fresh.now_s()).tolist())
    assert len(later) == len(now)  # one version per lead either way...
    assert later != now  # ...and some leads now show their second version

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
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import httpx
import pytest

from lib.config import API_PATH
from lib.sandbox import SandboxConfig
from lib.sandbox.app import GARBAGE_ANSWER, HTML_ANSWER, MAX_LIMIT
from tests.support.asgi import serve_sandbox
from tests.support.server import ServerProcess

API_KEY = "fault-test-key-0123456789"
USER = "fault_ops"
CAMPAIGN = "Faults A"
OTHER = "Faults B"
SECRET = "fault-secret-0123456789abcdef"

# -- part 1: the sandbox plays each fault ----------------------------------------------------


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
    with serve_sandbox(config) as sandbox:
        yield sandbox


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


def _wait(predicate, timeout=15.0, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(interval)


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


# -- part 2: the real server through each fault -------------------------------------------------

E2E_CAMPAIGNS = ("Fault Alpha", "Fault Beta")
CALLBACK_TIMEOUT_S = 3


def _start(tmp_path, campaigns=E2E_CAMPAIGNS, sandbox: dict | None = None, **env) -> ServerProcess:
    settings = {
        "DIALSTATUS_SYNC_INTERVAL": "3600",
        "DIALSTATUS_CALLBACK_TIMEOUT": str(CALLBACK_TIMEOUT_S),
        "DIALSTATUS_CAMPAIGNS": ",".join(campaigns),
        **env,
    }
    if sandbox:
        settings["DIALSTATUS_SANDBOX_CONFIG"] = json.dumps(sandbox)
    return ServerProcess(tmp_path / "srv", env=settings).start()


def _campaign(health: dict, name: str) -> dict:
    return next(c for c in health["campaigns"] if c["name"] == name)


def _sandbox(server: ServerProcess, **changes) -> dict:
    url = server.base_url + "/api/sandbox/_sandbox/config"
    call = {"headers": server.admin_headers, "timeout": 10}
    response = httpx.post(url, json=changes, **call) if changes else httpx.get(url, **call)
    assert response.status_code == 200, response.text
    return response.json()


def _sync_now(server: ServerProcess, campaign: str | None = None) -> int:
    response = httpx.post(
        server.base_url + "/api/sync",
        params={"campaign": campaign} if campaign else None,
        headers={"X-Dialstatus-Token": server.callback_secret},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()["queued"]


def _loaded(*names):
    def check(health: dict) -> bool:
        return all(_campaign(health, n)["last_success_at"] for n in names)

    return check


def _serving(server: ServerProcess) -> None:
    """The dashboard answers: its page, Streamlit's health, and our health, each fast."""
    for path in ("/", "/_stcore/health", "/api/health"):
        started = time.monotonic()
        response = httpx.get(server.base_url + path, timeout=30)
        assert response.status_code == 200, (path, response.status_code)
        assert time.monotonic() - started < 10, path  # a blocked event loop takes far longer


def _sandbox_logs(server: ServerProcess) -> dict:
    base = server.base_url + "/api/sandbox/_sandbox/"
    return {name: httpx.get(base + name, headers=server.admin_headers, timeout=10).json()
            for name in ("requests", "deliveries", "config")}  # fmt: skip


def _read_db(server: ServerProcess, sql: str, params: list | None = None) -> list[tuple]:
    """Reads the database after the server stopped (DuckDB lets one process open the file)."""
    with duckdb.connect(str(server.data_dir / "dialstatus.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'Asia/Kolkata'")
        return con.execute(sql, params or []).fetchall()


def _delivered_newest(logs: dict) -> dict[tuple[str, str], tuple]:
    """(campaign, LeadID) -> (UpdatedDate, Status, DialStatus, Disposition) of the newest version
    among every delivery the dashboard acknowledged, recomputed with the sandbox's own code."""
    from lib.sandbox import Sandbox
    from lib.sandbox.datagen import local_seconds

    config = logs["config"]
    data_now = datetime.strptime(config["data_now"], "%Y-%m-%d %H:%M:%S")
    settings = {key: config[key] for key in ("username", "campaigns", "seed", "timezone")}
    oracle = Sandbox(
        SandboxConfig(api_key="k", rate_limit=10**6, clock=lambda: data_now, **settings)
    )
    requests = {r["unique_id"]: r for r in logs["requests"] if r["unique_id"]}
    newest: dict[tuple[str, str], tuple] = {}
    try:
        for delivery in logs["deliveries"]:
            if delivery["state"] != "delivered":
                continue
            decision = oracle.check("k", requests[delivery["unique_id"]]["params"], 0.0)
            as_of = local_seconds(datetime.strptime(delivery["as_of"], "%Y-%m-%d %H:%M:%S"))
            table = oracle.campaign_data(delivery["campaign"]).select(decision.selection, as_of)
            columns = ["LeadID", "UpdatedDate", "Status", "DialStatus", "Disposition"]
            for lead, *version in zip(*(table.column(c).to_pylist() for c in columns),
                                      strict=True):  # fmt: skip
                key = (delivery["campaign"], lead)
                if key not in newest or version[0] > newest[key][0]:
                    newest[key] = tuple(v or "" for v in version)
    finally:
        oracle.close()
    return newest


def _stored(server: ServerProcess) -> dict[tuple[str, str], tuple]:
    rows = _read_db(
        server,
        "SELECT campaign_name, lead_id, strftime(updated_at, '%Y-%m-%d %H:%M:%S'), "
        "coalesce(status, ''), coalesce(dial_status, ''), coalesce(disposition, '') FROM leads",
    )
    return {(c, lead): tuple(rest) for c, lead, *rest in rows}


def _assert_exactly_what_was_delivered(server: ServerProcess, logs: dict) -> None:
    expected = _delivered_newest(logs)
    stored = _stored(server)
    assert expected, "nothing was delivered"
    assert stored.keys() == expected.keys(), "a delivered lead is missing or an extra one stored"
    wrong = {k: (stored[k], expected[k]) for k in expected if stored[k] != expected[k]}
    assert not wrong, f"{len(wrong)} leads differ from their newest delivered version: " + str(
        list(wrong.items())[:3]
    )


def _played(server: ServerProcess, fault: str, count: int = 1) -> bool:
    """The sandbox has played the fault `count` times (its request or delivery log says so)."""
    logs = _sandbox_logs(server)
    seen = [e for e in logs["requests"] + logs["deliveries"] if e.get("fault") == fault]
    return len(seen) >= count


def _recover(server: ServerProcess, campaign: str, since: str | None, timeout=60.0) -> dict:
    """Presses "Sync now" (the same engine path as the page's button) until the campaign has a
    newer success and no error; returns the campaign's health entry."""

    def recovered():
        health = server.health()  # one snapshot for both decisions
        entry = _campaign(health, campaign)
        if (
            entry["last_success_at"]
            and entry["last_success_at"] != since
            and not entry["last_error"]
        ):
            return entry
        engine = health["sync"]
        if not (engine["in_flight"] or engine["queue"] or engine["sending"]):
            _sync_now(server, campaign)
        return None

    return _wait(recovered, timeout=timeout, what=f"{campaign} recovered", interval=0.5)


def _error_shown(server: ServerProcess, campaign: str, phrase: str, timeout=60.0) -> str:
    """Waits for the campaign's plain-language status (the Sync page's campaign table) to say
    `phrase`; checks meanwhile that the dashboard keeps serving."""

    def shown():
        _serving(server)
        error = _campaign(server.health(), campaign)["last_error"] or ""
        return error if phrase in error else None

    return _wait(shown, timeout=timeout, what=f"{phrase!r} shown for {campaign}", interval=0.5)


# Faults the engine's client gives up on (each retried as often as the client retries).
# (fault, fault_count, what the campaign's status must say)
GIVE_UP_FAULTS = [
    ("http_500", 4, "CloudAgent answered with a server error (HTTP 500) every time"),
    ("garbage", 1, "CloudAgent sent an answer that is not the JSON it normally sends"),
    ("html", 1, "CloudAgent sent a web page (HTML) instead of its usual answer"),
    ("rate_limit_429", 4, "CloudAgent refused the request: its limit of requests per minute"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "count", "phrase"), GIVE_UP_FAULTS,
                         ids=[f[0] for f in GIVE_UP_FAULTS])  # fmt: skip
def test_answer_fault_is_shown_plainly_and_the_next_sync_recovers(tmp_path, fault, count, phrase):
    target = E2E_CAMPAIGNS[0]
    server = _start(tmp_path)
    try:
        before = server.wait_for(_loaded(*E2E_CAMPAIGNS), timeout=60)
        since = _campaign(before, target)["last_success_at"]
        _sandbox(server, fault=fault, fault_count=count)
        _sync_now(server, target)
        shown = _error_shown(server, target, phrase)
        assert "The data shown is from the last successful sync" in shown
        assert _campaign(server.health(), target)["rows"] == _campaign(before, target)["rows"]
        assert _played(server, fault, count)
        _recover(server, target, since)
        logs = _sandbox_logs(server)
    finally:
        server.stop()
    assert "Traceback" not in server.log_text()
    _assert_exactly_what_was_delivered(server, logs)
    states = _read_db(server, "SELECT state, count(*) FROM sync_requests GROUP BY ALL")
    assert dict(states)["error"] == 1


def _watch_wait_reason(server: ServerProcess, phrase: str, timeout: float) -> str:
    def shown():
        _serving(server)
        reason = server.health()["sync"].get("waiting_reason") or ""
        return reason if phrase in reason else None

    return _wait(shown, timeout=timeout, what=f"wait reason {phrase!r}", interval=0.5)


# Faults the client rides out within the same sync: the Sync page's engine status says what it is
# waiting for; the sync then succeeds with no error left behind.
# (fault, sandbox settings, the engine's waiting reason, longest wait)
RIDE_OUT_FAULTS = [
    ("slow", {"fault_delay_s": 12}, "waiting for CloudAgent to answer the request", 30),
    ("timeout", {}, "waiting for CloudAgent to answer the request", 45),
    ("rate_limit_200", {}, "CloudAgent answered Max limit exceeded", 20),
    ("rate_limit_429_no_retry_after", {}, "CloudAgent answered Max limit exceeded", 20),
]


def _settled(server: ServerProcess, campaign: str) -> bool:
    """The campaign's latest request was accepted (a slow answer is an answer) and delivered;
    nothing is being sent or awaited."""
    logs = _sandbox_logs(server)
    last = [r for r in logs["requests"] if r["campaign"] == campaign][-1]
    delivered = any(
        d["unique_id"] == last["unique_id"] and d["state"] == "delivered"
        for d in logs["deliveries"]
    )
    engine = server.health()["sync"]
    idle = engine["sending"] is None and not engine["in_flight"]
    answered = last["fault"] in (None, "slow") and last["outcome"] == "accepted"
    return answered and delivered and idle


def _ride_out(tmp_path: Path, fault: str, settings: dict, phrase: str, wait_s: float):
    target = E2E_CAMPAIGNS[0]
    server = _start(tmp_path / fault)
    try:
        before = server.wait_for(_loaded(*E2E_CAMPAIGNS), timeout=60)
        since = _campaign(before, target)["last_success_at"]
        _sandbox(server, fault=fault, fault_count=1, **settings)
        _sync_now(server, target)
        _watch_wait_reason(server, phrase, wait_s)
        # The client's own retry (after the read timeout, or after the window the server
        # imposed) is accepted and delivered: nothing pressed, no error left behind.
        _wait(lambda: _settled(server, target), timeout=120, what="the retry", interval=0.5)
        after = _campaign(server.health(), target)
        assert after["last_success_at"] != since
        assert after["last_error"] is None
        logs = _sandbox_logs(server)
    finally:
        server.stop()
    assert "Traceback" not in server.log_text()
    _assert_exactly_what_was_delivered(server, logs)
    return logs


@pytest.mark.slow
def test_slow_answers_timeouts_and_rate_limits_are_ridden_out(tmp_path):
    """Run side by side (each mostly waits: 30 s read timeout, 61 s without Retry-After)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(RIDE_OUT_FAULTS)) as pool:
        futures = {f[0]: pool.submit(_ride_out, tmp_path, *f) for f in RIDE_OUT_FAULTS}
        logs = {fault: future.result() for fault, future in futures.items()}
    # The timed-out request was queued by CloudAgent all the same and the client asked again:
    # two deliveries for one sync, stored once (the leads check above).
    timed_out = [d for d in logs["timeout"]["deliveries"] if d["campaign"] == E2E_CAMPAIGNS[0]]
    assert len(timed_out) == 3  # the first load, the held job, the retry
    for fault in ("rate_limit_200", "rate_limit_429_no_retry_after"):
        requests = [r for r in logs[fault]["requests"] if r["campaign"] == E2E_CAMPAIGNS[0]]
        refused, retried = requests[-2:]
        assert refused["fault"] == fault and retried["outcome"] == "accepted"
        # Without Retry-After the client assumes a full window before trying again.
        assert retried["monotonic"] - refused["monotonic"] >= 60


def _idle(server: ServerProcess) -> bool:
    engine = server.health()["sync"]
    return engine["sending"] is None and not engine["in_flight"] and not engine["queue"]


def _all_posted(server: ServerProcess) -> bool:
    return all(d["state"] not in ("pending", "held") for d in _sandbox_logs(server)["deliveries"])


@pytest.mark.slow
def test_no_callback_times_out_says_so_and_the_next_round_retries_by_itself(tmp_path):
    target = E2E_CAMPAIGNS[0]
    server = _start(tmp_path, DIALSTATUS_SYNC_INTERVAL="12")
    try:
        before = server.wait_for(_loaded(*E2E_CAMPAIGNS), timeout=60)
        since = _campaign(before, target)["last_success_at"]
        _sandbox(server, fault="no_callback", fault_count=1)
        _wait(lambda: _sync_now(server, target) or _played(server, "no_callback"), timeout=30,
              what="the request without callback", interval=1)  # fmt: skip
        shown = _error_shown(server, target, f"No callback within {CALLBACK_TIMEOUT_S} s")
        assert "CloudAgent accepted the request but did not deliver the data" in shown
        # Nothing pressed from here on: the background round asks again and succeeds.
        _wait(
            lambda: (
                (c := _campaign(server.health(), target))["last_success_at"] != since
                and not c["last_error"]
            ),
            timeout=60,
            what="the next round recovering",
            interval=0.5,
        )
        logs = _sandbox_logs(server)
    finally:
        server.stop()
    _assert_exactly_what_was_delivered(server, logs)
    states = _read_db(server, "SELECT state FROM sync_requests WHERE campaign_name = ?", [target])
    assert ("timed_out",) in states


@pytest.mark.slow
def test_double_callback_is_stored_once(tmp_path):
    target = E2E_CAMPAIGNS[0]
    server = _start(tmp_path)
    try:
        server.wait_for(_loaded(*E2E_CAMPAIGNS), timeout=60)
        version = server.health()["data_version"]
        _sandbox(server, fault="double_callback")
        _sync_now(server, target)
        entry = _wait(
            lambda: next((d for d in _sandbox_logs(server)["deliveries"]
                          if d["fault"] == "double_callback" and d["state"] == "delivered"), None),
            what="both posts answered",
        )  # fmt: skip
        assert entry["posts"] == 2 and entry["failed_posts"] == 0
        assert server.health()["data_version"] == version + 1  # one ingest, not two
        _serving(server)
        logs = _sandbox_logs(server)
    finally:
        server.stop()
    _assert_exactly_what_was_delivered(server, logs)
    raw = dict(_read_db(server, "SELECT state, count(*) FROM raw_deliveries GROUP BY ALL"))
    assert raw == {"ingested": 3, "duplicate": 1}


def _versions_of(logs: dict, unique_id: str) -> dict[str, str]:
    """LeadID -> UpdatedDate of what one delivery carried."""
    only = {**logs, "deliveries": [d for d in logs["deliveries"] if d["unique_id"] == unique_id]}
    only["deliveries"] = [{**d, "state": "delivered"} for d in only["deliveries"]]
    return {lead: version[0] for (_, lead), version in _delivered_newest(only).items()}


@pytest.mark.slow
def test_a_late_callback_never_overwrites_newer_data(tmp_path):
    """The first full load's callback is held; the request times out; the sandbox's clock moves
    3 h (about half of the leads' later versions become visible); the retry is delivered; then
    the held, older delivery arrives. The newer versions must stay."""
    server = _start(tmp_path, sandbox={"fault": "late_callback", "fault_count": 1})
    try:
        held = _wait(
            lambda: next((d for d in _sandbox_logs(server)["deliveries"]
                          if d["fault"] == "late_callback"), None),
            what="the held delivery",
        )  # fmt: skip
        target = held["campaign"]
        _error_shown(server, target, f"No callback within {CALLBACK_TIMEOUT_S} s")
        _sandbox(server, clock_offset_s=3 * 3600)
        _sync_now(server, target)
        _wait(lambda: _all_posted(server) and _idle(server), timeout=60, what="both delivered",
              interval=0.5)  # fmt: skip
        _serving(server)
        assert _campaign(server.health(), target)["last_error"] is None
        logs = _sandbox_logs(server)
    finally:
        server.stop()
    _assert_exactly_what_was_delivered(server, logs)
    late, newer = (d for d in logs["deliveries"] if d["campaign"] == target)
    assert late["fault"] == "late_callback" and late["as_of"] < newer["as_of"]
    old_versions, new_versions = (
        _versions_of(logs, late["unique_id"]),
        _versions_of(logs, newer["unique_id"]),
    )
    overwritten_if_wrong = [k for k in old_versions if old_versions[k] < new_versions.get(k, "")]
    assert len(overwritten_if_wrong) > 20  # the test means something
    order = _read_db(server, "SELECT unique_id FROM raw_deliveries WHERE campaign_name = ? "
                     "ORDER BY id", [target])  # fmt: skip
    assert [u for (u,) in order] == [newer["unique_id"], late["unique_id"]]  # it came last
    states = _read_db(server, "SELECT state FROM sync_requests WHERE campaign_name = ? "
                      "ORDER BY id", [target])  # fmt: skip
    assert states == [("delivered",), ("delivered",)]


@pytest.mark.slow
def test_out_of_order_callbacks_each_answer_their_own_request(tmp_path):
    """Both campaigns' first loads are held and time out; the clock moves 3 h; both are asked
    again; then all four deliveries arrive newest first."""
    server = _start(tmp_path, sandbox={"fault": "out_of_order", "fault_count": 4})
    try:
        for name in E2E_CAMPAIGNS:
            _error_shown(server, name, f"No callback within {CALLBACK_TIMEOUT_S} s")
        _sandbox(server, clock_offset_s=3 * 3600)
        _wait(lambda: _sync_now(server) == 0 or True, what="sync pressed")
        _wait(lambda: _all_posted(server) and _idle(server)
              and len(_sandbox_logs(server)["deliveries"]) == 4, timeout=60,
              what="all four delivered", interval=0.5)  # fmt: skip
        health = server.health()
        assert all(_campaign(health, n)["last_error"] is None for n in E2E_CAMPAIGNS)
        logs = _sandbox_logs(server)
    finally:
        server.stop()
    _assert_exactly_what_was_delivered(server, logs)
    asked = [r["unique_id"] for r in logs["requests"]]
    arrived = [u for (u,) in _read_db(server, "SELECT unique_id FROM raw_deliveries ORDER BY id")]
    assert arrived == asked[::-1]
    requests = _read_db(server, "SELECT unique_id, state, rows FROM sync_requests ORDER BY id")
    assert [u for u, _, _ in requests] == asked  # each delivery matched its own request
    assert {s for _, s, _ in requests} == {"delivered"}
    counted = {d["unique_id"]: d["records"] for d in logs["deliveries"]}
    assert all(rows == counted[u] for u, _, rows in requests)


LINK_FAULTS = [
    ("link_404", "json_data", "(the file link answered HTTP 404)"),
    ("link_truncated", "json_data", "not valid JSON"),
    ("link_truncated", "csv_link", "(the linked CSV file is cut short"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "variant", "phrase"), LINK_FAULTS,
                         ids=["404", "truncated-json", "truncated-csv"])  # fmt: skip
def test_a_broken_link_is_shown_at_once_and_the_next_sync_recovers(tmp_path, fault, variant,
                                                                   phrase):  # fmt: skip
    target = E2E_CAMPAIGNS[0]
    server = _start(tmp_path)
    try:
        before = server.wait_for(_loaded(*E2E_CAMPAIGNS), timeout=60)
        since = _campaign(before, target)["last_success_at"]
        _sandbox(server, fault=fault, delivery=variant)
        _sync_now(server, target)
        # Said by the delivery itself (the phrase differs from a "no callback" timeout).
        shown = _error_shown(server, target, "CloudAgent's delivery could not be used", timeout=45)
        assert phrase in shown and "nothing from it was stored" in shown
        assert _campaign(server.health(), target)["rows"] == _campaign(before, target)["rows"]
        _recover(server, target, since)
        logs = _sandbox_logs(server)
    finally:
        server.stop()
    _assert_exactly_what_was_delivered(server, logs)
    failed = _read_db(server, "SELECT campaign_name, unique_id IS NOT NULL, request_id IS NOT NULL "
                      "FROM raw_deliveries WHERE state = 'failed'")  # fmt: skip
    assert failed == [(target, True, True)]  # the Sync page's table names whose it was
    states = [s for (s,) in _read_db(server, "SELECT state FROM sync_requests WHERE "
                                     "campaign_name = ? ORDER BY id", [target])]  # fmt: skip
    # (a press racing the recovery's delivery may add one more refresh)
    assert states[:2] == ["delivered", "error"] and set(states[2:]) == {"delivered"}


@pytest.mark.slow
def test_the_sync_page_says_what_went_wrong_and_a_restart_recovers(tmp_path, monkeypatch):
    """The Sync page (AppTest, on the database the server left) shows the plain status and the
    technical detail; a restart on the same files then recovers without anything pressed."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from lib.services import reset_services

    target = E2E_CAMPAIGNS[0]
    server = _start(tmp_path)
    try:
        before = server.wait_for(_loaded(*E2E_CAMPAIGNS), timeout=60)
        _sandbox(server, fault="html")
        _sync_now(server, target)
        shown = _error_shown(server, target, "CloudAgent sent a web page (HTML)")
    finally:
        server.stop()

    for name in list(os.environ):
        if name.startswith(("DIALSTATUS_", "CLOUDAGENT_")):
            monkeypatch.delenv(name)
    for name, value in server.extra_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DIALSTATUS_DB", str(server.data_dir / "dialstatus.duckdb"))
    monkeypatch.setenv("DIALSTATUS_SECRETS_FILE", str(server.data_dir / "no-secrets.toml"))
    reset_services()
    st.cache_data.clear()
    try:
        at = AppTest.from_file("../dashboard.py", default_timeout=60).run()
        at.switch_page("app_pages/sync.py").run()
        assert not at.exception, at.exception
        fresh = next(d.value for d in at.dataframe if "data_as_of" in d.value.columns)
        row = fresh[fresh["campaign"] == target].iloc[0]
        assert row["last_error"] == shown and row["leads"] == _campaign(before, target)["rows"]
        log = next(d.value for d in at.dataframe if "unique_id" in d.value.columns)
        newest = log.iloc[0]
        assert newest["state"] == "error" and "not the expected JSON" in newest["error"]
    finally:
        reset_services()
        st.cache_data.clear()

    again = ServerProcess(server.data_dir, env=server.extra_env).start()
    try:
        _wait(
            lambda: (
                not _campaign(again.health(), target)["last_error"]
                and _idle(again)
                and _campaign(again.health(), target)["last_success_at"]
                != _campaign(before, target)["last_success_at"]
            ),
            timeout=60,
            what="recovery after the restart",
            interval=0.5,
        )
    finally:
        again.stop()
    assert "Traceback" not in again.log_text()

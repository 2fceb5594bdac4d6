"""Issue 15's acceptance test for the lead history, against the real server and its sandbox.

A real `streamlit run` server in demo mode syncs two campaigns from its mounted sandbox (a full
load each). The test then changes one campaign's data in the sandbox (POST /_sandbox/leads:
two leads dialled twice, one dialled once, a disposition edited, leads added), asks for an
incremental sync (POST /api/sync), posts a duplicate of that delivery and a late, older one to
the callback route, stops the server and reads `lead_events`: exactly the changes it asked for,
with their dials. A second start (sync off) re-ingests every kept body (POST /api/reingest) and
the whole table is the same.

Every expected event is written out from what the test asked the sandbox to change and from the
full load's body as the sandbox sent it (the server keeps it in `<db>.deliveries/`), never from
the server's output. The sandbox runs with `update_fraction` 0, so its data changes only when
the test changes it, and every wait is on observable state (health, the sandbox's delivery log,
the re-ingest run), never a fixed sleep.

The first tests check the sandbox's change operation on its own (in this process).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import httpx
import pytest

from lib.config import API_PATH
from lib.fields import API_TIMESTAMP_FORMAT
from lib.sandbox import SandboxConfig
from lib.sandbox.data import Selection
from tests.support.asgi import CallbackReceiver, run_asgi, serve_sandbox
from tests.support.server import ServerProcess

TZ = "Asia/Kolkata"
IST = ZoneInfo(TZ)
NORTH, SOUTH = "History North", "History South"
ENV = {
    "DIALSTATUS_CAMPAIGNS": f"{NORTH},{SOUTH}",
    "DIALSTATUS_SYNC_INTERVAL": "3600",  # no background round after the first one
    "DIALSTATUS_TIMEZONE": TZ,
    "DIALSTATUS_SANDBOX_CONFIG": json.dumps({"update_fraction": 0, "delivery_delay_s": 0}),
}
# The wire's dial statuses as the README's `dialstatus` parameter groups them (buckets).
BUCKETS = {"answered": "answered", "not_answered": "NoAnswer", "ring": "NoAnswer",
           "user_disconnected": "user_disconnected", "Busy": "Fail", "Congestion": "Fail",
           "invalid_number": "Fail", "exception": "Fail", "NotDialed": "Not dialled",
           "": "Not dialled"}  # fmt: skip


# -- the sandbox's change operation, in this process ---------------------------------------------

DATA_NOW = datetime(2026, 11, 20, 15, 30, tzinfo=IST)
API_KEY, USER, SOLO = "history-sandbox-key-0123", "history_ops", "Solo"
ADMIN = "history-admin-token-0123456789"


def _api_request(sandbox, receiver: CallbackReceiver, **params) -> list[dict]:
    """One API request through the sandbox's HTTP API; the records its callback delivered."""
    body = {"campaignName": SOLO, "userName": USER, "status": "All", "dialstatus": "All",
            "dispositions": "ALL", "callBackUrl": f"{receiver.base_url}/callback/x-0123456789",
            **params}  # fmt: skip
    receiver.clear()
    answer = httpx.post(sandbox.base_url + API_PATH, json=body, headers={"apiKey": API_KEY})
    assert answer.json()["status"] == "success", answer.text
    (post,) = receiver.wait_for(1, timeout=30)
    return post.payload()["data"]


def test_the_sandbox_changes_leads_and_its_api_delivers_the_new_states():
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={SOLO: 60},
                           clock=lambda: DATA_NOW, delivery_delay_s=0, update_fraction=0,
                           admin_token=ADMIN)  # fmt: skip
    receiver = CallbackReceiver()
    with serve_sandbox(config) as sandbox, run_asgi(receiver.app) as receiver_url:
        receiver.base_url = receiver_url
        assert sandbox.dataset(SOLO).num_rows == 60  # update_fraction 0: one version per lead
        before = {r["LeadID"]: r for r in _api_request(sandbox, receiver)}
        dialled, edited = sorted(before)[:2]
        url, admin = sandbox.base_url + "/_sandbox/leads", {"X-Dialstatus-Token": ADMIN}
        change = {"campaign": SOLO, "at": "2026-11-20 15:29:00", "add": 2, "change": [
            {"lead": dialled, "calls": 2, "DialStatus": "answered", "Disposition": "Interested"},
            {"lead": edited, "Disposition": "Call Back"}]}  # fmt: skip
        assert httpx.post(url, json=change).status_code == 401  # an admin route
        answer = httpx.post(url, json=change, headers=admin)
        assert answer.status_code == 200, answer.text
        numbers = sorted(int(key) for key in before)
        added = [str(numbers[-1] + 1), str(numbers[-1] + 2)]
        expected = [
            {**before[dialled], "Attempts": before[dialled]["Attempts"] + 2,
             "DialStatus": "answered", "Disposition": "Interested",
             "UpdatedDate": "2026-11-20 15:29:00"},
            {**before[edited], "Disposition": "Call Back", "UpdatedDate": "2026-11-20 15:29:00"},
            *({**before[dialled], "LeadID": key, "PhoneNumber": f"9{int(key) % 10**9:09d}",
               "Name": f"Added lead {key}", "Status": "Pending", "DialStatus": "NotDialed",
               "Disposition": "", "Comments": "", "AgentID": "", "AgentName": "", "Attempts": 0,
               "Priority": 1, "UCID": "", "CreatedDate": "2026-11-20 15:29:00",
               "UpdatedDate": "2026-11-20 15:29:00", "CallDuration": "00:00:00"}
              for key in added),
        ]  # fmt: skip
        assert answer.json() == {"status": "ok", "campaign": SOLO, "at": "2026-11-20 15:29:00",
                                 "records": expected}  # fmt: skip
        # A full load now has the new states and the new leads, every other lead as it was.
        after = {r["LeadID"]: r for r in _api_request(sandbox, receiver)}
        assert after == {**before, **{r["LeadID"]: r for r in expected}}
        # An incremental request from just before the change delivers exactly the changes.
        since = _api_request(sandbox, receiver, sortby="2", fromDate="2026-11-20 15:28:00",
                             toDate="2026-11-20 15:30:00")  # fmt: skip
        assert sorted(since, key=lambda r: r["LeadID"]) == expected
        assert sandbox.campaign_data(SOLO).select(Selection(), sandbox.now_s()).num_rows == 62


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"campaign": "Nope"}, "not a campaign"),
        ({"campaign": SOLO, "change": [{"lead": "42"}]}, "not a lead"),
        ({"campaign": SOLO, "at": "2026-11-20 15:31:00"}, "after the data's now"),
        ({"campaign": SOLO, "at": "20-11-2026"}, "YYYY-MM-DD HH:MM:SS"),
        ({"campaign": SOLO, "change": [{"lead": "FIRST", "Attempts": 9}]}, "cannot set Attempts"),
        ({"campaign": SOLO, "change": [{"lead": "FIRST", "calls": -1}]}, "calls must be"),
        ({"campaign": SOLO, "change": [{"lead": "FIRST", "Priority": "1"}]}, "Priority must"),
        ({"campaign": SOLO, "change": [{"lead": "FIRST"}, {"lead": "FIRST"}]}, "changed twice"),
        ({"campaign": SOLO, "change": [{"lead": "FIRST"}], "at": "2020-01-01 00:00:00"},
         "already updated"),
        ({"campaign": SOLO, "add": 10**6}, "add must be"),
        ({"campaign": SOLO, "remove": 1}, "unknown key"),
    ],
)  # fmt: skip
def test_a_bad_change_is_refused_naming_what_is_wrong_and_changes_nothing(body, message):
    config = SandboxConfig(api_key=API_KEY, username=USER, campaigns={SOLO: 20},
                           clock=lambda: DATA_NOW, update_fraction=0)  # fmt: skip
    with serve_sandbox(config) as sandbox:
        table = sandbox.dataset(SOLO)
        first = table.column("LeadID")[0].as_py()
        text = json.dumps(body).replace("FIRST", first)
        answer = httpx.post(sandbox.base_url + "/_sandbox/leads", content=text)
        assert answer.status_code == 400 and message in answer.json()["message"], answer.text
        assert sandbox.dataset(SOLO).equals(table)


# -- the acceptance test against the real server -------------------------------------------------


def _read_db(data_dir: Path, sql: str) -> list[tuple]:
    """Reads the database of a stopped server (DuckDB lets one process open the file)."""
    with duckdb.connect(str(data_dir / "dialstatus.duckdb"), read_only=True) as con:
        con.execute(f"SET TimeZone = '{TZ}'")
        return con.execute(sql).fetchall()


def _sandbox(server: ServerProcess, what: str, body: dict | None = None) -> object:
    url = f"{server.base_url}/api/sandbox/_sandbox/{what}"
    if body is None:
        answer = httpx.get(url, headers=server.admin_headers, timeout=30)
    else:
        answer = httpx.post(url, json=body, headers=server.admin_headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _wait(what: str, read: Callable[[], object], done: Callable[[object], bool], timeout=90.0):
    """Polls `read()` until `done(value)`; returns the value (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    while not done(value := read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; last: {value}")
        time.sleep(0.2)
    return value


def _ingested(server: ServerProcess, count: int) -> list[dict]:
    """Waits until the sandbox posted `count` deliveries and the server acknowledged each one
    (the callback answers 200 only once the delivery is ingested)."""
    return _wait(
        f"{count} deliveries acknowledged",
        lambda: _sandbox(server, "deliveries"),
        lambda log: (
            len(log) >= count
            and all(d["state"] in ("delivered", "rejected", "failed") for d in log)
        ),
    )


def _body_of(server: ServerProcess, unique_id: str) -> bytes:
    """The kept body of the delivery with `unique_id`, as the sandbox POSTed it."""
    folder = server.data_dir / "dialstatus.deliveries"
    for path in folder.glob("*.body"):
        content = path.read_bytes()
        if json.loads(content).get("uniqueId") == unique_id:
            return content
    raise AssertionError(f"no kept body has uniqueId {unique_id}")


def _post_callback(server: ServerProcess, content: bytes) -> dict:
    answer = httpx.post(server.callback_url, content=content, timeout=60,
                        headers={"Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, API_TIMESTAMP_FORMAT)


def _stamp(when: datetime) -> str:
    return when.strftime(API_TIMESTAMP_FORMAT)


def _ordered(rows) -> list[tuple]:
    """Rows sorted with NULLs (None) last in each column, as Python cannot compare None."""
    return sorted(rows, key=lambda row: [(v is None, "" if v is None else v) for v in row])


def _seconds(duration: str) -> int:
    hours, minutes, seconds = (int(part) for part in duration.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def _none_if_empty(text: str) -> str | None:
    return text or None  # the store keeps an empty text as NULL


def _status(raw: str) -> str:
    return raw if raw in ("Success", "Fail") else "Pending"  # empty: Pending (README)


EVENTS = (
    "SELECT campaign_name, lead_key, strftime(updated_at, '%Y-%m-%d %H:%M:%S'), first_seen, "
    "dials, attempts_before, attempts_after, dial_status_before, dial_status_after, "
    "dial_bucket_before, dial_bucket_after, lead_status_before, lead_status_after, "
    "disposition_before, disposition_after, agent, call_duration_s, delivery_id FROM lead_events"
)
WHOLE_TABLE = "SELECT * FROM lead_events ORDER BY ALL"
HOURS = "SELECT * FROM event_hours ORDER BY ALL"


def _change(record: dict, at: str, calls: int, delivery: int, **after) -> tuple:
    """The event a change of `record` (the lead's state in the full load) must write."""
    new = {**record, **after}
    agent = new["AgentName"] or new["AgentID"] or None
    return (NORTH, record["LeadID"], at, False, calls, record["Attempts"],
            record["Attempts"] + calls, _none_if_empty(record["DialStatus"]),
            _none_if_empty(new["DialStatus"]), BUCKETS[record["DialStatus"]],
            BUCKETS[new["DialStatus"]], _status(record["Status"]), _status(new["Status"]),
            _none_if_empty(record["Disposition"]), _none_if_empty(new["Disposition"]), agent,
            _seconds(new["CallDuration"]), delivery)  # fmt: skip


def _first_seen(record: dict, delivery: int) -> tuple:
    agent = record["AgentName"] or record["AgentID"] or None
    return (record["CampaignName"], record["LeadID"], record["UpdatedDate"], True, 0, None,
            record["Attempts"], None, _none_if_empty(record["DialStatus"]), None,
            BUCKETS[record["DialStatus"]], None, _status(record["Status"]), None,
            _none_if_empty(record["Disposition"]), agent, _seconds(record["CallDuration"]),
            delivery)  # fmt: skip


def _pick(records: dict[str, dict], cutoff: str, taken: set[str], test) -> dict:
    """The first lead (in LeadID order) last updated before `cutoff` (a minute before the full
    load's data time) that `test` accepts and no other change took: the change's new state is
    then strictly newer, and a state one second after the old one strictly older."""
    for key in sorted(records, key=int):
        record = records[key]
        if key not in taken and record["UpdatedDate"] < cutoff and test(record):
            taken.add(key)
            return record
    raise AssertionError("the demo data has no lead for this change")


def test_the_history_holds_exactly_the_changes_made_between_two_syncs(tmp_path):
    data_dir = tmp_path / "srv"
    server = ServerProcess(data_dir, env=ENV).start()
    try:
        full = _ingested(server, 2)
        assert {d["campaign"] for d in full} == {NORTH, SOUTH}
        assert all(d["state"] == "delivered" and d["status_code"] == 200 for d in full)
        bodies = {d["campaign"]: json.loads(_body_of(server, d["unique_id"])) for d in full}
        loaded = {name: {r["LeadID"]: r for r in body["data"]} for name, body in bodies.items()}
        north = loaded[NORTH]
        as_of = next(d["as_of"] for d in full if d["campaign"] == NORTH)
        cutoff = _stamp(_parse(as_of) - timedelta(minutes=1))

        # What happens in the account between two syncs, chosen from the full load's states.
        taken: set[str] = set()
        sold = _pick(north, cutoff, taken, lambda r: r["Status"] == "Pending" and r["Attempts"])
        busy = _pick(north, cutoff, taken, lambda r: r["Attempts"] == 0)
        once = _pick(north, cutoff, taken, lambda r: r["DialStatus"] == "not_answered")
        edited = _pick(north, cutoff, taken, lambda r: r["Disposition"] and r["AgentName"])
        new_disposition = "Follow Up" if edited["Disposition"] != "Follow Up" else "Call Back"
        answered = {"DialStatus": "answered", "Status": "Success", "Disposition": "Interested",
                    "AgentID": "hist_agent01", "AgentName": "History Agent",
                    "CallDuration": "00:03:20"}  # fmt: skip
        changes = [
            {"lead": sold["LeadID"], "calls": 2, **answered},  # dialled twice, answered, sold
            {"lead": busy["LeadID"], "calls": 2, "DialStatus": "Busy"},  # dialled twice
            {"lead": once["LeadID"], "calls": 1, "DialStatus": "ring"},  # dialled once
            {"lead": edited["LeadID"], "Disposition": new_disposition},  # an edit, no call
        ]
        made = _sandbox(server, "leads", {"campaign": NORTH, "change": changes, "add": 3})
        at = made["at"]
        assert at >= as_of and [r["LeadID"] for r in made["records"][:4]] == [
            c["lead"] for c in changes
        ]
        added = made["records"][4:]
        assert len(added) == 3 and not {r["LeadID"] for r in added} & set(north)

        # Queued once the engine has finished with the full load's request (until then it
        # answers 0 queued: that campaign still counts as being synced).
        _wait(
            "an incremental sync queued",
            lambda: httpx.post(server.base_url + "/api/sync", params={"campaign": NORTH},
                               headers=server.admin_headers, timeout=30).json(),
            lambda answer: answer.get("queued") == 1,
        )  # fmt: skip
        incremental = _ingested(server, 3)[2]
        assert incremental["campaign"] == NORTH and incremental["status_code"] == 200
        sync_log = _sandbox(server, "requests")
        assert [e["params"].get("sortby") for e in sync_log] == ["0", "0", "2"]

        # The same delivery again, then two late ones holding older states of the changed
        # leads: as of the full load, and the sold lead after the first of its two calls.
        copy = _post_callback(server, _body_of(server, incremental["unique_id"]))
        assert copy.get("duplicate") is True
        between = {
            **sold,
            "Attempts": sold["Attempts"] + 1,
            "DialStatus": "not_answered",
            "UpdatedDate": _stamp(_parse(sold["UpdatedDate"]) + timedelta(seconds=1)),
        }
        older = [north[c["lead"]] for c in changes]
        for name, records in (("late-full-load-states", older), ("late-first-call", [between])):
            late = {"status": "success", "uniqueId": name, "campaignName": NORTH,
                    "data": records}  # fmt: skip
            assert _post_callback(server, json.dumps(late).encode())["rows"] == len(records)
    finally:
        server.stop()

    deliveries = dict(_read_db(data_dir, "SELECT unique_id, id FROM raw_deliveries"))
    first_ids = {d["campaign"]: deliveries[d["unique_id"]] for d in full}
    second = deliveries[incremental["unique_id"]]
    expected_first = _ordered(
        _first_seen(record, first_ids[name])
        for name, records in loaded.items()
        for record in records.values()
    )
    expected_changes = _ordered([
        _change(sold, at, 2, second, **answered),
        _change(busy, at, 2, second, DialStatus="Busy"),
        _change(once, at, 1, second, DialStatus="ring"),
        _change(edited, at, 0, second, Disposition=new_disposition),
        *(_first_seen(record, second) for record in added),
    ])  # fmt: skip
    events = _ordered(_read_db(data_dir, EVENTS))
    assert [e for e in events if e[-1] != second] == expected_first
    assert [e for e in events if e[-1] == second] == expected_changes
    assert sum(e[4] for e in events) == 5  # 2 + 2 + 1 dials observed, none for first loads
    hours = _read_db(
        data_dir,
        "SELECT campaign_name, sum(dials), sum(first_seen), sum(changes) FROM event_hours "
        "GROUP BY ALL ORDER BY ALL",
    )
    assert hours == [(NORTH, 5, len(north) + 3, len(north) + 7),
                     (SOUTH, 0, len(loaded[SOUTH]), len(loaded[SOUTH]))]  # fmt: skip
    before, hours_before = _read_db(data_dir, WHOLE_TABLE), _read_db(data_dir, HOURS)

    # Re-ingest every kept body, in the order received, on a server that does not sync.
    server = ServerProcess(data_dir, env={**ENV, "DIALSTATUS_SYNC_ENABLED": "false"}).start()
    try:
        answer = httpx.post(server.base_url + "/api/reingest", headers=server.admin_headers,
                            timeout=30)  # fmt: skip
        assert answer.status_code == 202, answer.text
        run = _wait(
            "the re-ingest",
            lambda: server.health()["reingest"],
            lambda r: r is not None and not r["running"],
        )
        # The kept bodies: two full loads, the incremental one, the two late ones (the
        # duplicate's body is not kept twice).
        assert (run["total"], run["done"], run["skipped"], run["failed"]) == (5, 5, 0, 0), run
        assert run["error"] is None
    finally:
        server.stop()
    assert _read_db(data_dir, "SELECT cleared, total, done FROM reingest_runs") == [(True, 5, 5)]
    assert _read_db(data_dir, WHOLE_TABLE) == before
    assert _read_db(data_dir, HOURS) == hours_before

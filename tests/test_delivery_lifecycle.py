"""A delivery's life outside the happy path (issue 13): parsing bounded in memory and in
concurrency, attempts counted and given up, duplicates that still answer their request, a copy
that waits for the first one in flight, and transient failures tried again.

Real DuckDB files and real HTTP file hosts throughout; the server-level cases run the real
server (tests/support/server.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import httpx
import pytest

from lib.store import Store, StoreError
from lib.store.connection import MEMORY_ENV
from lib.store.ingest import (
    MAX_ATTEMPTS,
    ingest_delivery,
    ingest_pending,
    lifecycle,
    retry_pending,
    settle_duplicate,
)
from lib.store.receive import DeliveryRejected, parse, parse_delivery, register_raw
from tests.support.file_host import FileHost
from tests.support.server import ServerProcess

TZ = "Asia/Kolkata"
QUIET = {"DIALSTATUS_SYNC_ENABLED": "false"}


def _records(campaign: str, count: int, updated: str = "2026-11-20 10:00:00") -> list[dict]:
    return [
        {"LeadID": f"{campaign}-{i}", "PhoneNumber": f"98{i:08d}", "CampaignName": campaign,
         "Status": "Success", "DialStatus": "answered", "UpdatedDate": updated}
        for i in range(count)
    ]  # fmt: skip


def _body(campaign: str, count: int, unique_id: str | None = None) -> str:
    doc = {"status": "success", "campaignName": campaign, "data": _records(campaign, count)}
    if unique_id is not None:
        doc["uniqueId"] = unique_id
    return json.dumps(doc)


def _link_body(url: str, campaign: str = "Linked", unique_id: str = "u-link") -> str:
    return json.dumps({"uniqueId": unique_id, "campaignName": campaign, "fileUrl": url})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "t.duckdb", timezone=TZ)
    yield store
    store.close()


def _receive(store: Store, body: str):
    """What the callback route does: the body to a temp file, then register_raw."""
    folder = store.path.parent / (store.path.stem + ".deliveries")
    folder.mkdir(exist_ok=True)
    part = folder / f"incoming-{time.monotonic_ns()}.part"
    part.write_text(body)
    return register_raw(store, folder, part, "application/json")


def _one(store: Store, sql: str, params=None):
    return store.cursor().execute(sql, params or []).fetchone()


def _raw(store: Store, delivery_id: int) -> tuple:
    return _one(store, "SELECT state, attempts, error FROM raw_deliveries WHERE id = ?",
                [delivery_id])  # fmt: skip


def _leads(store: Store, campaign: str) -> int:
    return _one(store, "SELECT count(*) FROM leads WHERE campaign_name = ?", [campaign])[0]


def _request(store: Store, campaign: str, kind: str = "incremental", unique_id=None, sent_at=None):
    with store.writing() as cursor:
        return cursor.execute(
            "INSERT INTO sync_requests (campaign_name, kind, params, unique_id, state, sent_at) "
            "VALUES (?, ?, '{}', ?, 'accepted', ?) RETURNING id",
            [campaign, kind, unique_id, sent_at or datetime.now(UTC)],
        ).fetchone()[0]


class FlakyHost:
    """An HTTP file host on 127.0.0.1 that answers 503 to the first `failures` requests (after
    `delay_s`), then serves `body`; `hits` counts the requests."""

    def __init__(self, body: bytes, failures: int, delay_s: float = 0.0, status: int = 503):
        self.body, self.failures, self.delay_s, self.status = body, failures, delay_s, status
        self.hits = 0
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                host.hits += 1
                time.sleep(host.delay_s)
                failing = host.hits <= host.failures
                payload = b"try later" if failing else host.body
                self.send_response(host.status if failing else 200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.base + "/records.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def quick_retries(monkeypatch):
    """Inside an attempt, a link is tried again after 0.2 s (not 1 s and 3 s)."""
    monkeypatch.setattr(lifecycle, "FETCH_RETRY_DELAYS_S", (0.2, 0.2))


LOCAL = ("127.0.0.1",)


# -- parsing is bounded --------------------------------------------------------------------


def test_duckdb_has_a_memory_limit_and_spills_beside_the_database(tmp_path, monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    store = Store(tmp_path / "a.duckdb", timezone=TZ)
    try:
        limit, temp = _one(store, "SELECT current_setting('memory_limit'), "
                           "current_setting('temp_directory')")  # fmt: skip
    finally:
        store.close()
    number, unit = limit.split()
    assert unit in ("MiB", "GiB") and float(number) * (1024 if unit == "GiB" else 1) <= 2048
    assert temp == str(tmp_path / "a.duckdb.tmp")
    monkeypatch.setenv(MEMORY_ENV, "300")
    store = Store(tmp_path / "b.duckdb", timezone=TZ)
    try:
        assert _one(store, "SELECT current_setting('memory_limit')") == ("286.1 MiB",)
    finally:
        store.close()
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(StoreError, match=MEMORY_ENV):
        Store(tmp_path / "c.duckdb", timezone=TZ)


def test_one_general_parse_at_a_time(tmp_path, monkeypatch):
    """Two bodies off the fast path (JSON encoded twice) parsed at once: their json.loads never
    overlap, whatever the threads do."""
    active, most = [0], [0]
    guard = threading.Lock()
    real = parse.load_json_bytes

    def watched(data, what):
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.3)
        try:
            return real(data, what)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(parse, "load_json_bytes", watched)
    bodies = []
    for name in ("A", "B", "C"):
        path = tmp_path / f"{name}.body"
        path.write_text(json.dumps(_body(name, 50)))
        bodies.append(path)
    results = []
    threads = [
        threading.Thread(target=lambda p=p: results.append(parse_delivery(p, "application/json")))
        for p in bodies
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.campaign_name for r in results) == ["A", "B", "C"]
    assert most[0] == 1
    for result in results:
        result.cleanup()


# -- attempts ------------------------------------------------------------------------------


def test_each_attempt_is_counted_and_three_interrupted_ones_give_the_delivery_up(store):
    """The attempts a killed process left in the row (see the slow server test for real kills):
    a delivery with attempts left is ingested, one with none is failed in plain words, skipped,
    and its request is told; a later copy of that body is answered at once, not read again."""
    survivor = _receive(store, _body("Survivor", 5))
    doomed = _receive(store, _body("Doomed", 5))
    with store.writing() as cursor:
        cursor.execute("UPDATE raw_deliveries SET attempts = ? WHERE id = ?",
                       [MAX_ATTEMPTS - 1, survivor.id])  # fmt: skip
        cursor.execute("UPDATE raw_deliveries SET attempts = ? WHERE id = ?",
                       [MAX_ATTEMPTS, doomed.id])  # fmt: skip
    failures = []
    results = ingest_pending(store, on_failed=lambda i, rejected: failures.append((i, rejected)))
    assert [r.delivery_id for r in results] == [survivor.id]
    assert _raw(store, survivor.id)[:2] == ("ingested", MAX_ATTEMPTS)
    state, attempts, error = _raw(store, doomed.id)
    assert (state, attempts) == ("failed", MAX_ATTEMPTS)
    assert error.startswith("ingest was interrupted 3 times (the server stopped or ran out of")
    assert error.endswith("it is kept but skipped")
    assert [(i, r.status_code) for i, r in failures] == [(doomed.id, 422)]
    assert _leads(store, "Doomed") == 0
    assert ingest_pending(store) == []
    copy = _receive(store, _body("Doomed", 5))
    assert copy.duplicate_of == doomed.id
    with pytest.raises(DeliveryRejected) as refused:
        settle_duplicate(store, copy)
    assert refused.value.status_code == 422 and "interrupted 3 times" in refused.value.message
    assert _raw(store, doomed.id)[1] == MAX_ATTEMPTS and _leads(store, "Doomed") == 0


def test_a_successful_ingest_counts_its_one_attempt(store):
    raw = _receive(store, _body("Once", 3))
    ingest_delivery(store, raw.id)
    assert _raw(store, raw.id) == ("ingested", 1, None)


# -- duplicates still answer their request -------------------------------------------------


@pytest.mark.parametrize("count", [4, 0], ids=["unchanged-overlap", "empty-refresh"])
def test_a_duplicate_closes_the_request_it_answers_and_moves_data_as_of(store, count):
    """No uniqueId: the second refresh's answer is byte for byte the first one's."""
    body = _body("Same", count)
    first_asked = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    second_asked = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    first = _request(store, "Same", sent_at=first_asked)
    original = ingest_delivery(store, _receive(store, body).id)
    assert original.request_id == first
    version = store.data_version()
    second = _request(store, "Same", sent_at=second_asked)
    copy = _receive(store, body)
    assert copy.duplicate_of == original.delivery_id
    result = settle_duplicate(store, copy)
    assert result.duplicate and result.request_id == second and result.rows == count
    state, rows = _one(store, "SELECT state, rows FROM sync_requests WHERE id = ?", [second])
    assert (state, rows) == ("delivered", count)
    as_of = _one(store, "SELECT last_success_at FROM sync_state WHERE campaign_name = 'Same'")
    assert as_of == (second_asked,)
    assert store.data_version() == version and _leads(store, "Same") == count
    assert _one(store, "SELECT request_id FROM raw_deliveries WHERE id = ?", [copy.id]) == (second,)
    # A plain resend with no new request changes nothing.
    delivered_at = _one(store, "SELECT delivered_at FROM sync_requests WHERE id = ?", [second])
    again = settle_duplicate(store, _receive(store, body))
    assert again.request_id is None
    assert _one(store, "SELECT delivered_at FROM sync_requests WHERE id = ?", [second]) == (
        delivered_at
    )


# -- a copy in flight waits for the first --------------------------------------------------


def test_a_copy_arriving_while_the_first_is_in_flight_waits_for_its_outcome(store):
    with FileHost() as host:
        host.files["/slow.json"] = json.dumps(_records("Slow", 7)).encode()  # answers after 3 s
        body = _link_body(host.base + "/slow.json", "Slow")
        first = _receive(store, body)
        ingesting = threading.Thread(
            target=ingest_delivery, args=(store, first.id), kwargs={"allowed_hosts": LOCAL}
        )
        ingesting.start()
        _wait_until(lambda: host.requests)
        copy = _receive(store, body)
        assert copy.duplicate_of == first.id
        result = settle_duplicate(store, copy, allowed_hosts=LOCAL)
        landed = _raw(store, first.id)[0]
        ingesting.join()
    assert landed == "ingested"  # answered only once the first copy had landed
    assert result.duplicate and result.rows == 7
    assert host.requests == ["/slow.json"]  # read once
    assert _leads(store, "Slow") == 7


def test_a_copy_takes_over_when_the_first_fails_for_a_transient_reason(store, quick_retries):
    host = FlakyHost(json.dumps(_records("Flaky", 6)).encode(), failures=3, delay_s=0.3)
    try:
        body = _link_body(host.url, "Flaky")
        first = _receive(store, body)
        outcome = {}

        def ingest_first():
            try:
                ingest_delivery(store, first.id, allowed_hosts=LOCAL)
            except DeliveryRejected as rejected:
                outcome["first"] = rejected

        ingesting = threading.Thread(target=ingest_first)
        ingesting.start()
        _wait_until(lambda: host.hits)
        copy = _receive(store, body)
        result = settle_duplicate(store, copy, allowed_hosts=LOCAL)
        ingesting.join()
    finally:
        host.close()
    assert outcome["first"].status_code == 502 and outcome["first"].transient
    assert "tried again later" in outcome["first"].message
    assert result.duplicate and result.rows == 6
    assert host.hits == 4  # three 503s inside the first attempt, then the copy's try
    assert _raw(store, first.id) == ("ingested", 2, None)
    assert _leads(store, "Flaky") == 6


# -- transient failures are tried again ----------------------------------------------------


def test_a_file_hosts_5xx_is_tried_again_inside_the_ingest(store, quick_retries):
    host = FlakyHost(json.dumps(_records("Blip", 4)).encode(), failures=2)
    try:
        result = ingest_delivery(store, _receive(store, _link_body(host.url, "Blip")).id,
                                 allowed_hosts=LOCAL)  # fmt: skip
    finally:
        host.close()
    assert result.rows == 4 and host.hits == 3


def test_a_delivery_failed_transiently_stays_retryable_until_its_attempts_run_out(
    store, quick_retries, monkeypatch
):
    monkeypatch.setattr(lifecycle, "RETRY_DELAY_S", 0.5)  # per attempt made (60 s in service)
    host = FlakyHost(json.dumps(_records("Down", 3)).encode(), failures=9)
    try:
        raw = _receive(store, _link_body(host.url, "Down"))
        with pytest.raises(DeliveryRejected) as first:
            ingest_delivery(store, raw.id, allowed_hosts=LOCAL)
        assert first.value.transient and host.hits == 3
        state, attempts, error = _raw(store, raw.id)
        assert (state, attempts) == ("received", 1)
        assert error == "the file link answered HTTP 503; it is kept and tried again later"
        assert retry_pending(store, allowed_hosts=LOCAL) == []  # its wait is not over
        time.sleep(0.6)
        failures = []
        retry_pending(store, allowed_hosts=LOCAL, on_failed=lambda i, r: failures.append(r))
        assert _raw(store, raw.id)[:2] == ("received", 2) and len(failures) == 1
        host.failures = 0  # the host is back: the next start's recovery picks it up
        results = ingest_pending(store, allowed_hosts=LOCAL)
    finally:
        host.close()
    assert [r.rows for r in results] == [3]
    assert _raw(store, raw.id) == ("ingested", 3, None)


def test_a_third_transient_failure_gives_up_and_a_4xx_is_not_tried_again(store, quick_retries):
    down = FlakyHost(b"[]", failures=99)
    gone = FlakyHost(b"[]", failures=99, status=404)
    try:
        raw = _receive(store, _link_body(down.url, "Down"))
        with store.writing() as cursor:
            cursor.execute("UPDATE raw_deliveries SET attempts = 2 WHERE id = ?", [raw.id])
        with pytest.raises(DeliveryRejected):
            ingest_delivery(store, raw.id, allowed_hosts=LOCAL)
        missing = _receive(store, _link_body(gone.url, "Gone", "u-gone"))
        with pytest.raises(DeliveryRejected) as refused:
            ingest_delivery(store, missing.id, allowed_hosts=LOCAL)
    finally:
        down.close()
        gone.close()
    state, attempts, error = _raw(store, raw.id)
    assert (state, attempts) == ("failed", 3)
    assert error == "the file link answered HTTP 503 (tried 3 times; it is kept but skipped)"
    assert not refused.value.transient and gone.hits == 1
    assert _raw(store, missing.id)[:2] == ("failed", 1)


# -- through the real server ---------------------------------------------------------------


def _post(server: ServerProcess, body: bytes | str, timeout: float = 120) -> httpx.Response:
    return httpx.post(server.callback_url, content=body, timeout=timeout,
                      headers={"content-type": "application/json"})  # fmt: skip


def _db_rows(data_dir: Path, sql: str, params=None) -> list[tuple]:
    """Reads the database while no server runs (DuckDB lets one process open the file)."""
    with duckdb.connect(str(data_dir / "dialstatus.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_server_a_resent_copy_waits_and_takes_over_from_a_transient_failure(tmp_path):
    """The first copy's link answers 503 three times (its attempt gives up on them); the copy
    that arrived meanwhile waits, tries again and lands: both stored once, the sender told ok."""
    host = FlakyHost(json.dumps(_records("Resent", 8)).encode(), failures=3, delay_s=0.3)
    data_dir = tmp_path / "srv"
    live = {  # links are fetched from the API's origin only: the flaky host plays it
        **QUIET,
        "CLOUDAGENT_API_KEY": "live-key-for-lifecycle",
        "CLOUDAGENT_USERNAME": "lifecycle_user",
        "CLOUDAGENT_API_URL": host.base + "/endpoint/dailer/data/preview/download",
    }
    server = ServerProcess(data_dir, env=live).start()
    answers = {}
    try:
        body = _link_body(host.url, "Resent")
        first = threading.Thread(target=lambda: answers.update(first=_post(server, body)))
        first.start()
        _wait_until(lambda: host.hits)
        answers["copy"] = _post(server, body)
        first.join(60)
    finally:
        server.stop()
        host.close()
    assert answers["first"].status_code == 502
    assert "tried again later" in answers["first"].json()["message"]
    assert answers["copy"].status_code == 200
    assert answers["copy"].json() | {"deliveryId": 0} == {
        "status": "ok", "deliveryId": 0, "rows": 8, "duplicate": True}  # fmt: skip
    assert _db_rows(data_dir, "SELECT count(*) FROM leads WHERE campaign_name = 'Resent'") == [(8,)]
    states = _db_rows(data_dir, "SELECT state, attempts FROM raw_deliveries ORDER BY id")
    assert states == [("ingested", 2), ("duplicate", 0)]


def test_server_a_duplicate_answer_closes_its_request(tmp_path):
    """An unchanged re-read without uniqueId, through the callback: the request it answers is
    delivered and "data as of" moves, though no lead is written again."""
    data_dir = tmp_path / "srv"
    body = _body("Again", 5)
    with ServerProcess(data_dir, env=QUIET) as server:
        assert _post(server, body).json()["rows"] == 5
    asked = datetime(2026, 11, 21, 6, 30, tzinfo=UTC)
    with duckdb.connect(str(data_dir / "dialstatus.duckdb")) as con:
        con.execute("INSERT INTO sync_requests (campaign_name, kind, params, state, sent_at) "
                    "VALUES ('Again', 'incremental', '{}', 'accepted', ?)", [asked])  # fmt: skip
    with ServerProcess(data_dir, env=QUIET) as server:
        answer = _post(server, body).json()
    assert answer["duplicate"] is True and answer["rows"] == 5
    assert _db_rows(data_dir, "SELECT state, rows FROM sync_requests") == [("delivered", 5)]
    assert _db_rows(data_dir, "SELECT last_success_at FROM sync_state") == [(asked,)]
    assert _db_rows(data_dir, "SELECT count(*) FROM leads") == [(5,)]

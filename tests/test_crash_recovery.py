"""SIGKILL in the middle of receiving and ingesting a large delivery, then a restart.

The promise: every delivery the server answered 200 is stored exactly once; a delivery whose body
was persisted before the kill is ingested at the next start, in the background once the server
answers (or, if the kill came before that, the sender never got a 200 and sends it again, and it
is stored once); nothing partial is ever visible: a campaign holds all of a delivery's leads or
none of them. A delivery whose ingest kills the server every time is given up after three.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime
from pathlib import Path

import duckdb
import httpx
import pytest

from lib.sandbox.data import CampaignData
from lib.sandbox.datagen import generate_campaign, local_seconds
from lib.sandbox.encode import envelope_json, records_json
from tests.support.server import ServerProcess

NOW = datetime(2026, 11, 20, 12, 0)
BIG_LEADS = 400_000  # ~150 MB of JSON: several seconds of ingest on two cores
ENV = {"DIALSTATUS_SYNC_ENABLED": "false", "DIALSTATUS_MAX_BODY_MB": "1024"}


def _body(campaign: str, leads: int, unique_id: str) -> bytes:
    """A default-shape delivery of one version per lead (records == leads)."""
    table = generate_campaign(campaign, leads, 11, NOW)
    table = table.take(sorted(CampaignData(table).current_rows(local_seconds(NOW))))
    header = {"status": "success", "uniqueId": unique_id, "campaignName": campaign}
    return envelope_json(header, "data", records_json(table))


class Sender:
    """Posts one body like CloudAgent would; remembers whether it got a 200."""

    def __init__(self, server: ServerProcess, campaign: str, leads: int, body: bytes):
        self.server, self.campaign, self.leads, self.body = server, campaign, leads, body
        self.status: int | None = None
        self.thread: threading.Thread | None = None

    def send(self) -> int | None:
        try:
            response = httpx.post(
                self.server.callback_url,
                content=self.body,
                headers={"content-type": "application/json"},
                timeout=300,
            )
            self.status = response.status_code
        except httpx.HTTPError:
            self.status = None  # the server died under it: no answer
        return self.status

    def send_in_background(self) -> Sender:
        self.thread = threading.Thread(target=self.send, daemon=True)
        self.thread.start()
        return self

    @property
    def acknowledged(self) -> bool:
        return self.status == 200


def _db(data_dir: Path) -> Path:
    return data_dir / "dialstatus.duckdb"


def _rows(data_dir: Path, sql: str, params=None) -> list[tuple]:
    """Reads the database while no server runs (DuckDB lets one process open the file)."""
    with duckdb.connect(str(_db(data_dir)), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _counts(data_dir: Path) -> dict[str, int]:
    return dict(_rows(data_dir, "SELECT campaign_name, count(*) FROM leads GROUP BY ALL"))


def _files(folder: Path, pattern: str) -> set[Path]:
    return set(folder.glob(pattern)) if folder.is_dir() else set()


def _wait_for_new_file(folder: Path, pattern: str, seen: set[Path], timeout=120.0) -> Path:
    """Polls (5 ms) until a file matching `pattern` that was not in `seen` exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = _files(folder, pattern) - seen
        if new:
            return new.pop()
        time.sleep(0.005)
    raise AssertionError(f"no new {pattern} in {folder} within {timeout} s")


def _wait_for_log(server: ServerProcess, pattern: str, count: int = 1, timeout=120.0) -> None:
    """Recovery runs in the background: waits until its log says it finished."""
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, server.log_text())) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not logged {count} times within {timeout} s")
        time.sleep(0.05)


RECOVERED = r"ingested \d+ deliveries left from before a restart"


def _small(server: ServerProcess, name: str, leads: int = 300) -> Sender:
    return Sender(server, name, leads, _body(name, leads, f"u-{name}"))


@pytest.mark.slow
def test_sigkill_while_ingesting_a_large_delivery_loses_nothing_acknowledged(tmp_path):
    data_dir = tmp_path / "srv"
    deliveries = data_dir / "dialstatus.deliveries"
    senders: list[Sender] = []

    # 1. Small deliveries, acknowledged; then a large one killed as soon as its body is
    #    persisted (before or just after its raw_deliveries row: both must be recovered).
    server = ServerProcess(data_dir, env=ENV).start()
    for i in range(4):
        sender = _small(server, f"Before {i}")
        assert sender.send() == 200
        senders.append(sender)
    first = Sender(server, "Big One", BIG_LEADS, _body("Big One", BIG_LEADS, "u-big-1"))
    seen = _files(deliveries, "*.body")
    senders.append(first.send_in_background())
    _wait_for_new_file(deliveries, "*.body", seen)
    server.kill()
    first.thread.join(30)
    assert not first.acknowledged
    assert _counts(data_dir).get("Big One", 0) == 0  # nothing of it is visible yet

    # 2. Restart: the persisted body is ingested at startup, whole. Then another large delivery,
    #    killed in the middle of its ingest, with small deliveries arriving meanwhile.
    server = ServerProcess(data_dir, env=ENV).start()
    assert server.health()["status"] == "ok"
    _wait_for_log(server, RECOVERED)  # its slices are not those of the next delivery
    second = Sender(server, "Big Two", BIG_LEADS, _body("Big Two", BIG_LEADS, "u-big-2"))
    seen = _files(deliveries, "*.slice.json")
    senders.append(second.send_in_background())
    _wait_for_new_file(deliveries, "*.slice.json", seen)  # parsing done: ingest runs
    during = [_small(server, f"During {i}").send_in_background() for i in range(3)]
    senders += during
    time.sleep(1.0)
    server.kill()
    for sender in (second, *during):
        sender.thread.join(30)
    assert not second.acknowledged, "ingest finished before the kill: nothing was tested"
    states = _rows(data_dir, "SELECT state FROM raw_deliveries WHERE size_bytes = ?",
                   [len(second.body)])  # fmt: skip
    assert states == [("received",)]  # persisted, not ingested
    assert _counts(data_dir).get("Big Two", 0) == 0  # the killed transaction left nothing

    # 3. Restart: recovery at startup; then every sender without a 200 sends again (CloudAgent
    #    gets no answer, so it would) and those that did get one send a duplicate too.
    server = ServerProcess(data_dir, env=ENV).start()
    try:
        for sender in senders:
            answer = Sender(server, sender.campaign, sender.leads, sender.body)
            assert answer.send() == 200, sender.campaign
            if not sender.acknowledged:
                sender.status = answer.status
        health = server.health()
        assert health["status"] == "ok"
        _wait_for_log(server, RECOVERED)
    finally:
        server.stop()
    assert not list(deliveries.glob("*.part"))
    counts = _counts(data_dir)
    expected = {s.campaign: s.leads for s in senders}
    assert counts == expected  # every delivery exactly once, each whole
    per_body = _rows(
        data_dir,
        "SELECT sha256, count(*) FILTER (WHERE state = 'ingested') FROM raw_deliveries GROUP BY 1",
    )
    assert all(ingested == 1 for _, ingested in per_body)
    assert len(per_body) == len(senders)
    log = "\n".join(p.read_text(errors="replace") for p in data_dir.glob("server-*.log"))
    # Both restarts finished work left by the kill (how much depends on where the kill landed).
    assert len(re.findall(RECOVERED, log)) == 2
    assert "Traceback" not in log


@pytest.mark.slow
def test_restoring_an_older_backup_replays_the_deliveries_received_since(tmp_path):
    """The README's backup advice: restore last night's database, keep the deliveries folder;
    at start the server ingests every body the backup does not know, each once."""
    data_dir = tmp_path / "srv"
    db = _db(data_dir)
    backup = tmp_path / "backup.duckdb"
    server = ServerProcess(data_dir, env=ENV).start()
    before = [_small(server, f"Night {i}", 200) for i in range(3)]
    assert all(s.send() == 200 for s in before)
    server.stop()
    assert not db.with_name(db.name + ".wal").exists()  # a clean stop leaves one whole file
    backup.write_bytes(db.read_bytes())  # the nightly copy, server stopped
    server = ServerProcess(data_dir, env=ENV).start()
    since = [_small(server, f"Day {i}", 300) for i in range(4)]
    assert all(s.send() == 200 for s in since)
    server.stop()
    db.write_bytes(backup.read_bytes())  # the disk with the database is lost: restore
    assert set(_counts(data_dir)) == {s.campaign for s in before}
    server = ServerProcess(data_dir, env=ENV).start()
    try:
        _wait_for_log(server, "ingested 4 deliveries left from before a restart")
        again = Sender(server, since[0].campaign, since[0].leads, since[0].body)
        assert again.send() == 200  # a late resend is a duplicate, not a second copy
    finally:
        server.stop()
    assert _counts(data_dir) == {s.campaign: s.leads for s in before + since}
    ingested = _rows(data_dir, "SELECT count(*), count(DISTINCT sha256) FROM raw_deliveries "
                     "WHERE state = 'ingested'")  # fmt: skip
    assert ingested == [(7, 7)]
    assert "ingested 4 deliveries left from before a restart" in server.log_text()


CRASH_LEADS = 200_000


def _odd_shape_body(campaign: str, leads: int, unique_id: str) -> bytes:
    """The default delivery JSON-encoded twice (~80 MB): off the fast path, so it is read with
    json.loads, which takes seconds and the most memory a delivery can take."""
    return json.dumps(_body(campaign, leads, unique_id).decode()).encode()


@pytest.mark.slow
def test_a_delivery_that_kills_the_server_three_times_is_given_up_and_the_fourth_start_serves(
    tmp_path,
):
    """Killed while reading it in the callback, then twice while recovery reads it again in the
    background (the server answering meanwhile): the fourth start does not read it, marks it
    failed in plain words, serves pages and takes new callbacks."""
    data_dir = tmp_path / "srv"
    deliveries = data_dir / "dialstatus.deliveries"
    poison = _odd_shape_body("Poison", CRASH_LEADS, "u-poison")
    for start in (1, 2, 3):
        seen = _files(deliveries, "*.records.json")
        server = ServerProcess(data_dir, env=ENV).start()
        if start == 1:
            sender = Sender(server, "Poison", CRASH_LEADS, poison).send_in_background()
        else:
            assert server.health()["status"] == "ok"  # answering while recovery reads it
        _wait_for_new_file(deliveries, "*.records.json", seen)  # parsed, not yet stored
        server.kill()
        if start == 1:
            sender.thread.join(30)
            assert not sender.acknowledged
        state = _rows(data_dir, "SELECT state, attempts FROM raw_deliveries")
        assert state == [("received", start)], f"start {start}: nothing was interrupted"
        assert _counts(data_dir).get("Poison", 0) == 0

    seen = _files(deliveries, "*.records.json")
    server = ServerProcess(data_dir, env=ENV).start()
    try:
        assert httpx.get(server.base_url + "/", timeout=30).status_code == 200
        _wait_for_log(server, "rejected: ingest was interrupted 3 times")
        after = _small(server, "After")
        assert after.send() == 200
        assert httpx.get(server.base_url + "/", timeout=30).status_code == 200
        assert server.health()["status"] == "ok"
    finally:
        server.stop()
    assert _files(deliveries, "*.records.json") - seen == set()  # not read a fourth time
    given_up = _rows(data_dir, "SELECT state, attempts, error FROM raw_deliveries "
                     "WHERE size_bytes = ?", [len(poison)])  # fmt: skip
    assert given_up == [(
        "failed", 3, "ingest was interrupted 3 times (the server stopped or ran out of memory "
        "while reading it); it is kept but skipped",
    )]  # fmt: skip
    assert _counts(data_dir) == {"After": after.leads}
    assert "Traceback" not in server.log_text()


def test_rotating_the_callback_secret(tmp_path):
    """The README's rotation: after a restart with a new secret, the old callback address is
    refused (nothing stored) and the engine's requests carry the new one."""
    data_dir = tmp_path / "srv"
    old, new = "old-callback-secret-0123456789", "new-callback-secret-9876543210"
    env = {"DIALSTATUS_SYNC_INTERVAL": "3600", "DIALSTATUS_CAMPAIGNS": "Rotate"}
    with ServerProcess(data_dir, env={**env, "DIALSTATUS_CALLBACK_SECRET": old}) as server:
        old_url = f"{server.base_url}/api/callback/{old}"
        assert httpx.post(old_url, content=b"{}", timeout=10).status_code != 403
        # Stop with nothing in flight (a request still awaiting its callback would keep the
        # campaign waiting after the restart until DIALSTATUS_CALLBACK_TIMEOUT, as documented).
        server.wait_for(lambda h: h["campaigns"][0]["last_success_at"] and not h["sync"]
                        ["in_flight"], timeout=60)  # fmt: skip
        loaded = server.health()["campaigns"][0]["last_success_at"]
    server = ServerProcess(data_dir, env={**env, "DIALSTATUS_CALLBACK_SECRET": new}).start()
    try:
        body = _body("Late Sender", 50, "u-late")
        stale = httpx.post(f"{server.base_url}/api/callback/{old}", content=body,
                           headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
        assert stale.status_code == 403
        fresh = server.wait_for(
            lambda h: h["campaigns"][0]["last_success_at"] != loaded, timeout=60
        )  # the engine's own request went out with the new address and was delivered there
        assert fresh["campaigns"][0]["name"] == "Rotate"
        ok = httpx.post(f"{server.base_url}/api/callback/{new}", content=body,
                        headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
        assert ok.status_code == 200
    finally:
        server.stop()
    assert _counts(data_dir)["Late Sender"] == 50
    assert _rows(data_dir, "SELECT count(*) FROM raw_deliveries WHERE size_bytes = ?",
                 [len(body)]) == [(1,)]  # fmt: skip

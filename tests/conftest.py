"""Shared fixtures: a temporary DuckDB seeded with a small, realistic, known dataset, a callback
receiver and a local file host (the servers themselves live in tests/support).

The seed rows are built here in plain Python with their normalised values written out literally
(`RAW_BUCKET`, `RAW_STATUS`, `EXPECTED_CATEGORY`), so tests compute expected numbers from these
rows independently of the code under test.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from lib.view.filters import Filters, date_span
from tests.support.asgi import CallbackReceiver, run_asgi
from tests.support.file_host import FileHost

TZ = "Asia/Kolkata"
ZONE = ZoneInfo(TZ)

CAMPAIGNS = (
    "Renewals_Q4",
    'O\'Brien & Sons "VIP" 100% #1',
    "حملة التجديد 🎉",
    "<script>alert(1)</script>",
)
LEADS_PER_CAMPAIGN = (120, 60, 40, 12)
EMPTY_CAMPAIGN = "Empty Campaign"  # in the catalog, no leads
CONFIG_ONLY_CAMPAIGN = "Config Only"  # in the configuration only

# Raw dial statuses and the bucket each must land in (the API's grouping + never dialled).
RAW_BUCKET: dict[str | None, str] = {
    "answered": "answered",
    "ANSWERED": "answered",
    "not_answered": "NoAnswer",
    "ring": "NoAnswer",
    "NoResponse": "NoAnswer",
    "user_disconnected": "user_disconnected",
    "Busy": "Fail",
    "Congestion": "Fail",
    "invalid_number": "Fail",
    "exception": "Fail",
    "NotDialed": "Not dialled",
    "": "Not dialled",
    None: "Not dialled",
}
RAW_DIAL_CYCLE = (
    "answered", "not_answered", "ANSWERED", "ring", "Busy", "answered", "user_disconnected",
    "NotDialed", "answered", "NoResponse", "Congestion", "answered", "invalid_number", "",
    "exception", None, "answered",
)  # fmt: skip
RAW_STATUS: dict[str | None, str] = {
    "Success": "Success",
    "success": "Success",
    "Fail": "Fail",
    "Pending": "Pending",
    "": "Pending",
    None: "Pending",
}
ANSWERED_DISPOSITIONS = (
    "Sale Closed",
    "Interested",
    "Not Interested",
    "Call Back",
    "Sale Closed",
    "DNC",
    "Wrong Number",
    'Quote "X" & Co',
    "Wrap up time exceeded :30",
)
# The category each disposition must count under: stored overrides, else the guess from the name.
STORED_CATEGORIES = {"Interested": "Sale", 'Quote "X" & Co': "Callback"}
EXPECTED_CATEGORY = {
    "Sale Closed": "Sale",
    "Interested": "Sale",  # stored override (the guess alone would say Contact)
    "Not Interested": "Contact",
    "Call Back": "Callback",
    "DNC": "Do not call",
    "Wrong Number": "Unworkable",
    'Quote "X" & Co': "Callback",
    "Wrap up time exceeded :30": "Other",
}


@dataclass
class Seed:
    db_path: Path
    today: date
    rows: list[dict] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def _today() -> date:
    return datetime.now(ZONE).date()


def make_rows(today: date) -> list[dict]:
    rows: list[dict] = []
    serial = 0
    for c_index, (campaign, count) in enumerate(zip(CAMPAIGNS, LEADS_PER_CAMPAIGN, strict=True)):
        for j in range(count):
            serial += 1
            raw_dial = RAW_DIAL_CYCLE[(j + c_index) % len(RAW_DIAL_CYCLE)]
            bucket = RAW_BUCKET[raw_dial]
            if bucket == "Not dialled":
                attempts = None if j % 3 == 0 else 0
                raw_status = ("", None, "Pending")[j % 3]
                disposition = None
            else:
                attempts = None if j % 5 == 0 else 1 + j % 4
                if bucket == "answered":
                    raw_status = ("Success", "success", "Fail", "Success")[j % 4]
                    disposition = ANSWERED_DISPOSITIONS[(j + c_index) % len(ANSWERED_DISPOSITIONS)]
                else:
                    raw_status = ("Fail", "Pending", "", "Fail")[j % 4]
                    disposition = "Wrap up time exceeded :30" if j % 7 == 0 else None
            created_days_ago = (j * 3 + c_index) % 70
            updated_days_ago = max(0, created_days_ago - (j % 9))
            created = datetime.combine(
                today - timedelta(days=created_days_ago), datetime.min.time(), tzinfo=ZONE
            ) + timedelta(hours=(j * 5) % 24, minutes=j % 60)
            updated = datetime.combine(
                today - timedelta(days=updated_days_ago), datetime.min.time(), tzinfo=ZONE
            ) + timedelta(hours=(j * 7 + 3) % 24, minutes=(j * 13) % 60)
            if updated < created:
                updated = created + timedelta(minutes=5)
            phone = f"+91 98{serial:08d}"
            rows.append(
                {
                    "campaign_name": campaign,
                    "lead_key": f"L{serial}",
                    "lead_id": f"L{serial}",
                    "phone_number": phone,
                    "name": f"Customer {serial}" if j % 11 else f'Zoë "Q" O\'Neil {serial}',
                    "status": raw_status,
                    "lead_status": RAW_STATUS[raw_status],
                    "dial_status": raw_dial,
                    "dial_bucket": bucket,
                    "disposition": disposition,
                    "comments": "wants 50% off_now" if j % 13 == 0 else f"note {serial}",
                    "agent_id": f"agent{j % 4}" if bucket != "Not dialled" else None,
                    "agent_name": f"Agent {j % 4}" if bucket != "Not dialled" else None,
                    "attempts": attempts,
                    "priority": j % 3,
                    "ucid": None,
                    "call_duration_s": 30 * (j % 5) if bucket == "answered" else 0,
                    "created_at": created,
                    "updated_at": updated,
                    "extra": json.dumps({"AltPhone": "+91 9000012345", "Region": "West"}),
                    "delivery_id": 1,
                }
            )
    return rows


def agent_of(row: dict) -> str:
    """The agent filter's value for a row: the name, else the id, else "(no agent)"."""
    return (row["agent_name"] or "").strip() or (row["agent_id"] or "").strip() or "(no agent)"


def progress_of(row: dict, allowed: int | None) -> str:
    """Lead progress as the issue defines it, written here independently of lib/view."""
    attempts = row["attempts"]
    attempted = attempts > 0 if attempts is not None else row["dial_bucket"] != "Not dialled"
    if not attempted:
        return "not_dialled"
    if row["lead_status"] in ("Success", "Fail"):
        return {"Success": "success", "Fail": "failed"}[row["lead_status"]]
    tries = attempts if attempts is not None else 1
    return "out_of_tries" if allowed is not None and tries >= allowed else "retrying"


def allowed_by_campaign(rows: list[dict], set_by_operator: dict | None = None) -> dict:
    """Attempts allowed per campaign: the operator's, else the highest attempts seen, at most
    100 (the most an operator may set)."""
    seen: dict[str, int | None] = {}
    for r in rows:
        if r["attempts"] is not None:
            highest = max(seen.get(r["campaign_name"]) or 0, r["attempts"])
            seen[r["campaign_name"]] = min(highest, 100)
        else:
            seen.setdefault(r["campaign_name"], None)
    return seen | (set_by_operator or {})


def kept_rows(
    rows: list[dict], filters: Filters, today: date, set_by_operator: dict | None = None
) -> list[dict]:
    """The rows the filters keep, written independently of lib/view/filters.py (only the date
    span comes from there; its own tests pin that down)."""
    span = date_span(filters, today)
    allowed = allowed_by_campaign(rows, set_by_operator)
    column = "updated_at" if filters.basis == "updated" else "created_at"
    out = []
    for r in rows:
        if filters.campaigns and r["campaign_name"] not in filters.campaigns:
            continue
        if filters.statuses and r["lead_status"] not in filters.statuses:
            continue
        if filters.dial_buckets and r["dial_bucket"] not in filters.dial_buckets:
            continue
        if filters.dispositions and r["disposition"] not in filters.dispositions:
            continue
        if filters.agents and agent_of(r) not in filters.agents:
            continue
        if filters.progress and progress_of(r, allowed[r["campaign_name"]]) not in filters.progress:
            continue
        if span is not None:
            day = r[column].astimezone(ZONE).date()
            if (span[0] is not None and day < span[0]) or (span[1] is not None and day >= span[1]):
                continue
        out.append(r)
    return out


def insert_rows(store, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    frame["attempts"] = frame["attempts"].astype("Int32")
    with store.writing() as cursor:
        cursor.register("seed_frame", frame)
        cursor.execute("INSERT INTO leads BY NAME SELECT * FROM seed_frame")
        cursor.unregister("seed_frame")
        store.bump_data_version(cursor)


@contextmanager
def writer_lock_held(store) -> Iterator[None]:
    """Another thread holds the store's writer lock (as a running ingest does) for the block."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.writing():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10), "the writer lock was not taken"
    try:
        yield
    finally:
        release.set()
        holder.join()


def seed_side_tables(store, today: date) -> None:
    now = datetime.now(ZONE)
    with store.writing() as cursor:
        for name in (*CAMPAIGNS, EMPTY_CAMPAIGN):
            cursor.execute("INSERT INTO campaigns (name, source) VALUES (?, 'config')", [name])
        for name, category in STORED_CATEGORIES.items():
            cursor.execute("INSERT INTO disposition_categories VALUES (?, ?)", [name, category])
        for name in CAMPAIGNS:
            cursor.execute(
                "INSERT INTO sync_state VALUES (?, ?, TRUE, ?, NULL, NULL)",
                [name, now - timedelta(hours=1), now - timedelta(minutes=10)],
            )
        cursor.execute(
            "INSERT INTO sync_state VALUES (?, NULL, FALSE, NULL, ?, ?)",
            [EMPTY_CAMPAIGN, "campaignName is invalid", now - timedelta(minutes=3)],
        )
        cursor.execute(
            "INSERT INTO sync_requests (campaign_name, kind, params, unique_id, state, sent_at, "
            "accepted_at, delivered_at, rows) "
            "VALUES (?, 'full', ?, 'job-1', 'delivered', ?, ?, ?, ?)",
            [
                CAMPAIGNS[0],
                json.dumps({"campaignName": CAMPAIGNS[0], "sortby": "0"}),
                now,
                now,
                now,
                120,
            ],
        )
        cursor.execute(
            "INSERT INTO sync_requests (campaign_name, kind, params, state, error) "
            "VALUES (?, 'incremental', ?, 'error', 'campaignName is invalid')",
            [EMPTY_CAMPAIGN, json.dumps({"campaignName": EMPTY_CAMPAIGN})],
        )
        cursor.execute(
            "INSERT INTO raw_deliveries (id, sha256, content_type, size_bytes, path, unique_id, "
            "campaign_name, state, error) "
            "VALUES (nextval('delivery_ids'), 'abc', 'text/plain', 12, "
            "'/data/deliveries/7.bin', 'job-9', ?, 'failed', 'not JSON: unexpected character')",
            [CAMPAIGNS[1]],
        )
        cursor.execute(
            "INSERT INTO raw_deliveries (id, sha256, content_type, size_bytes, path, unique_id, "
            "campaign_name, state, rows, ingested_at) VALUES (nextval('delivery_ids'), 'def', "
            "'application/json', 999, '/data/deliveries/1.json', 'job-1', ?, 'ingested', 120, ?)",
            [CAMPAIGNS[0], now - timedelta(minutes=10)],
        )


def _configure(monkeypatch: pytest.MonkeyPatch, db_path: Path, show_phones: bool = False) -> None:
    for name in list(os.environ):
        if name.startswith(("DIALSTATUS_", "CLOUDAGENT_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIALSTATUS_DB", str(db_path))
    monkeypatch.setenv("DIALSTATUS_TIMEZONE", TZ)
    monkeypatch.setenv("DIALSTATUS_CAMPAIGNS", ",".join([CAMPAIGNS[0], CONFIG_ONLY_CAMPAIGN]))
    monkeypatch.setenv("DIALSTATUS_SHOW_PHONES", "true" if show_phones else "false")
    monkeypatch.setenv("DIALSTATUS_CALLBACK_SECRET", "test-secret-0123456789")


@pytest.fixture
def fresh_services(tmp_path, monkeypatch):
    """Services on an empty temporary database (the schema, no rows)."""
    import streamlit as st

    from lib.services import get_services, reset_services

    reset_services()
    st.cache_data.clear()
    _configure(monkeypatch, tmp_path / "db" / "test.duckdb")
    services = get_services()
    yield services
    reset_services()
    st.cache_data.clear()


@pytest.fixture
def seeded(fresh_services) -> Seed:
    """The seeded dataset; `seeded.rows` are the exact rows inserted."""
    today = _today()
    rows = make_rows(today)
    insert_rows(fresh_services.store, rows)
    seed_side_tables(fresh_services.store, today)
    return Seed(db_path=fresh_services.store.path, today=today, rows=rows)


@pytest.fixture
def store(seeded):
    from lib.services import get_services

    return get_services().store


@pytest.fixture
def cursor(store):
    with store.cursor() as cur:
        yield cur


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    """A callback receiver served for the whole module; `receiver.base_url` is where it listens."""
    receiver = CallbackReceiver()
    with run_asgi(receiver.app) as base_url:
        receiver.base_url = base_url
        yield receiver


@pytest.fixture
def file_host() -> Iterator[FileHost]:
    with FileHost() as host:
        yield host

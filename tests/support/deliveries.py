"""CloudAgent records and callback bodies for tests that ingest through the real receiver."""

from __future__ import annotations

import json

from lib.store import Store
from lib.store.ingest import ingest_delivery
from lib.store.receive import register_raw


def lead_record(
    campaign: str, key: str, updated: str, attempts: int, *, phone: str, **fields
) -> dict:
    """One record as the API delivers it: Pending, dialled `attempts` times (not answered; never
    dialled at 0), last updated `updated`; `fields` replace any of its values."""
    record = {
        "LeadID": key,
        "PhoneNumber": phone,
        "CampaignName": campaign,
        "Status": "Pending",
        "DialStatus": "NotDialed" if attempts == 0 else "not_answered",
        "Disposition": "",
        "AgentName": "",
        "Attempts": attempts,
        "CallDuration": "",
        "CreatedDate": "2026-11-01 09:00:00",
        "UpdatedDate": updated,
    }
    return record | fields


def register_json(store: Store, campaign: str, records: list[dict], unique_id: str):
    """A success callback body of `records` written beside the database and registered (not
    ingested); returns the registration."""
    folder = store.path.parent / (store.path.stem + ".deliveries")
    folder.mkdir(exist_ok=True)
    part = folder / f"{unique_id}.part"
    doc = {"status": "success", "uniqueId": unique_id, "campaignName": campaign, "data": records}
    part.write_bytes(json.dumps(doc).encode())
    return register_raw(store, folder, part, "application/json")


def deliver_json(store: Store, campaign: str, records: list[dict], unique_id: str) -> int:
    """`register_json`, then ingested unless it repeats a body already received; its id."""
    raw = register_json(store, campaign, records, unique_id)
    if not raw.duplicate:
        ingest_delivery(store, raw.id)
    return raw.id

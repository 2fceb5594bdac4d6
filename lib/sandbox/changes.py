"""Changing a campaign's leads at run time: what happens in a real account between two syncs.

POST /_sandbox/leads (admin token, like every /_sandbox route) with a JSON object:

    {"campaign": "Renewals_Q4",
     "at": "2026-12-04 11:30:00",          # optional: the new states' UpdatedDate (default now)
     "change": [
        {"lead": "100042", "calls": 2, "DialStatus": "answered", "Status": "Success",
         "Disposition": "Interested", "AgentName": "Asha Rao", "CallDuration": "00:03:20"},
        {"lead": "100043", "Disposition": "Call Back"}          # an edit, no new call
     ],
     "add": 3}                                                  # new, never dialled leads

Each change writes a new version of the lead: its state as the API delivers it now, with
`calls` added to Attempts (default 0: an edit without a call), the wire fields given replaced
(any of WIRE_FIELDS but LeadID, CampaignName, CreatedDate, UpdatedDate and Attempts) and
UpdatedDate = `at`. `add` appends that many leads, numbered after the campaign's highest
LeadID: Pending, NotDialed, 0 attempts, created and updated at `at`. `at` must not be after the
data's now (the new states are visible at once) and must be after the current state of every
changed lead; a lead may be changed once per request. Every field is validated before anything
is written; a bad request (400) changes nothing.

The answer: `{"status": "ok", "campaign", "at", "records": [...]}`, the new versions in the wire
format (CloudAgent's names and dates, whatever the delivery style). Later versions the generator
made for a lead (`update_fraction`) stay and win once the clock reaches them, as a later call
would; `update_fraction` 0 keeps a campaign's data still except for these changes.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import pyarrow as pa
import pyarrow.compute as pc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lib.fields import API_TIMESTAMP_FORMAT
from lib.sandbox.data import CampaignData
from lib.sandbox.datagen import EPOCH, INT_FIELDS, SCHEMA, WIRE_FIELDS, local_seconds

if TYPE_CHECKING:
    from lib.sandbox.app import Sandbox

FIXED_FIELDS = ("LeadID", "CampaignName", "CreatedDate", "UpdatedDate", "Attempts")
CHANGEABLE_FIELDS = tuple(name for name in WIRE_FIELDS if name not in FIXED_FIELDS)
MAX_CALLS = 10  # per change: calls between two syncs
MAX_ADDED = 10_000  # leads per request


def _stamp(seconds: int) -> str:
    return (EPOCH + timedelta(seconds=seconds)).strftime(API_TIMESTAMP_FORMAT)


def _at_seconds(value: object, now_s: int) -> int:
    if value is None:
        return now_s
    try:
        at_s = local_seconds(datetime.strptime(str(value), API_TIMESTAMP_FORMAT))
    except ValueError:
        raise ValueError(f"at must be YYYY-MM-DD HH:MM:SS, not {value!r}") from None
    if at_s > now_s:
        raise ValueError(f"at ({value}) is after the data's now ({_stamp(now_s)})")
    return at_s


def _checked_fields(change: dict) -> dict:
    """The wire fields a change sets, type-checked (Priority an int, the rest strings)."""
    fields = {name: value for name, value in change.items() if name not in ("lead", "calls")}
    if unknown := sorted(set(fields) - set(CHANGEABLE_FIELDS)):
        raise ValueError(
            f"cannot set {', '.join(unknown)}: a change sets {', '.join(CHANGEABLE_FIELDS)}"
        )
    for name, value in fields.items():
        wanted = int if name in INT_FIELDS else str
        if type(value) is not wanted:
            raise ValueError(f"{name} must be a JSON {'number' if wanted is int else 'string'}")
    return fields


def _calls(change: dict) -> int:
    calls = change.get("calls", 0)
    if type(calls) is not int or not 0 <= calls <= MAX_CALLS:
        raise ValueError(f"calls must be a whole number from 0 to {MAX_CALLS}, not {calls!r}")
    return calls


def _current_records(data: CampaignData, now_s: int) -> dict[str, dict]:
    """LeadID -> the lead's state the API delivers at `now_s` (wire fields)."""
    rows = pa.array(data.current_rows(now_s), pa.int64())
    return {record["LeadID"]: record for record in data.table.take(rows).to_pylist()}


def _added(data: CampaignData, campaign: str, count: int, at: str) -> list[dict]:
    numbers = pc.cast(data.table.column("LeadID"), pa.int64(), safe=False)
    first = int(pc.max(numbers).as_py() or 0) + 1 if len(data.table) else 1
    return [
        {"LeadID": str(number), "PhoneNumber": f"9{number % 10**9:09d}",
         "Name": f"Added lead {number}", "CampaignName": campaign, "Status": "Pending",
         "DialStatus": "NotDialed", "Disposition": "", "Comments": "", "AgentID": "",
         "AgentName": "", "Attempts": 0, "Priority": 1, "UCID": "", "CreatedDate": at,
         "UpdatedDate": at, "CallDuration": "00:00:00"}
        for number in range(first, first + count)
    ]  # fmt: skip


def new_versions(
    data: CampaignData, campaign: str, body: dict, now_s: int
) -> tuple[str, list[dict]]:
    """`at` and the records `body` asks for (validated; ValueError names what is wrong)."""
    unknown = sorted(set(body) - {"campaign", "at", "change", "add"})
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)}")
    at_s = _at_seconds(body.get("at"), now_s)
    at = _stamp(at_s)
    changes, add = body.get("change", []), body.get("add", 0)
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise ValueError("change must be a list of objects")
    if type(add) is not int or not 0 <= add <= MAX_ADDED:
        raise ValueError(f"add must be a whole number from 0 to {MAX_ADDED}")
    current = _current_records(data, now_s) if changes else {}
    records, seen = [], set()
    for change in changes:
        lead = change.get("lead")
        if not isinstance(lead, str) or lead not in current:
            raise ValueError(f"lead {lead!r} is not a lead of {campaign!r} (LeadID as a string)")
        if lead in seen:
            raise ValueError(f"lead {lead} is changed twice in one request")
        seen.add(lead)
        calls, fields, before = _calls(change), _checked_fields(change), current[lead]
        if local_seconds(datetime.strptime(before["UpdatedDate"], API_TIMESTAMP_FORMAT)) >= at_s:
            stamp = before["UpdatedDate"]
            raise ValueError(f"lead {lead} is already updated at {stamp}; at is {at}")
        records.append(
            {**before, **fields, "Attempts": before["Attempts"] + calls, "UpdatedDate": at}
        )
    return at, records + _added(data, campaign, add, at)


def change_leads(sandbox: Sandbox, body: dict) -> dict:
    """Applies `body` to the campaign's data (one request at a time per sandbox); the API
    delivers the new versions from the next request on."""
    campaign = body.get("campaign")
    if not isinstance(campaign, str) or campaign not in sandbox.config.campaigns:
        raise ValueError(f"campaign {campaign!r} is not a campaign of this sandbox")
    sandbox.campaign_data(campaign)  # generated first, outside the lock it takes
    with sandbox._data_lock:  # a whole read-change-replace, so no change is lost
        data = sandbox._data[campaign]
        at, records = new_versions(data, campaign, body, sandbox.now_s())
        if records:
            added = pa.Table.from_pylist(records, schema=SCHEMA)
            sandbox._data[campaign] = CampaignData(pa.concat_tables([data.table, added]))
    return {"status": "ok", "campaign": campaign, "at": at, "records": records}


def leads_route(sandbox: Sandbox, read_body):
    """The POST /_sandbox/leads handler; `read_body` reads the request body within the
    sandbox's size limit."""

    async def route(request: Request) -> Response:
        try:
            body = json.loads(await read_body(request))
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            return JSONResponse(await anyio.to_thread.run_sync(change_leads, sandbox, body))
        except ValueError as exc:
            return JSONResponse({"status": "error", "message": str(exc)}, 400)

    return route

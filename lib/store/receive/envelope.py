"""Envelope interpretation: where, in a parsed JSON document, the records, a file link, the
uniqueId and the campaign are (variants (a) to (f) in the package docstring), and the JSON
decoding every path shares."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lib.fields import column_for, name_key
from lib.store.catalog import MAX_CAMPAIGN_NAME
from lib.store.receive.types import DeliveryRejected

# Keys, compared after `name_key` folding (case and separators ignored). Assumptions (I/S).
RECORD_KEYS: tuple[str, ...] = ("data", "details", "records")
LINK_KEYS: tuple[str, ...] = ("fileurl", "downloadurl", "failedfilepath", "url")  # "url" last
UNIQUE_ID_KEYS: tuple[str, ...] = ("uniqueid", "transactionid")
CAMPAIGN_KEYS: tuple[str, ...] = ("campaignname",)
ERROR_STATUSES = frozenset({"error", "fail", "failed", "failure"})


def _fold(mapping: dict) -> dict[str, Any]:
    """name_key -> original key (the first one wins when two keys fold to the same)."""
    folded: dict[str, Any] = {}
    for key in mapping:
        if isinstance(key, str):
            folded.setdefault(name_key(key), key)
    return folded


def find_key(mapping: dict, wanted: Iterable[str]) -> str | None:
    folded = _fold(mapping)
    for key in wanted:
        if key in folded:
            return folded[key]
    return None


def _scalar_text(value, limit: int = 200) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:limit] or None


def unique_id_and_campaign(*containers) -> tuple[str | None, str | None]:
    unique_id = campaign = None
    for container in containers:
        if not isinstance(container, dict):
            continue
        if unique_id is None and (key := find_key(container, UNIQUE_ID_KEYS)) is not None:
            unique_id = _scalar_text(container[key])
        if campaign is None and (key := find_key(container, CAMPAIGN_KEYS)) is not None:
            # Kept one character past the longest usable name: ingest then refuses a longer
            # one (lib.store.ingest.write) instead of storing its leads under a cut name.
            campaign = _scalar_text(container[key], MAX_CAMPAIGN_NAME + 1)
    return unique_id, campaign


def records_slot(doc) -> tuple[dict, str] | None:
    """Where the records live: (container, key), decided by key names only (not value types)."""
    if not isinstance(doc, dict):
        return None
    key = find_key(doc, RECORD_KEYS)
    if key is None:
        return None
    value = doc[key]
    if isinstance(value, dict) and (inner := find_key(value, RECORD_KEYS)) is not None:
        return value, inner
    return doc, key


def link_in(*containers, keys: tuple[str, ...] = LINK_KEYS) -> str | None:
    for container in containers:
        if isinstance(container, dict) and (key := find_key(container, keys)) is not None:
            value = container[key]
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def looks_like_record(mapping: dict) -> bool:
    return any(
        isinstance(key, str) and column_for(key) in ("lead_id", "phone_number") for key in mapping
    )


@dataclass
class Found:
    records: list | None = None
    link: str | None = None
    unique_id: str | None = None
    campaign_name: str | None = None
    where: str = ""


def _reject_no_records(doc: dict) -> None:
    status_key = find_key(doc, ("status",))
    status = _scalar_text(doc.get(status_key)) if status_key else None
    if status and status.lower() in ERROR_STATUSES:
        message_key = find_key(doc, ("message", "msg", "error"))
        message = _scalar_text(doc.get(message_key)) if message_key else None
        # A URL is kept only to its host: one the sender echoes (callBackUrl) holds the secret.
        message = re.sub(r"(https?://[^/\s]+)\S*", r"\1/...", message or "", flags=re.I)
        detail = re.sub(r"[^\w .,:;'()/-]", "", message)[:120]
        raise DeliveryRejected(400, f"the delivery reports an error: {detail or status}")
    raise DeliveryRejected(
        400, "no records found: expected a list under data, details or records, or a file link"
    )


def interpret(doc) -> Found:
    """Finds the records (or a file link) in a parsed body, by the rules in the package doc."""
    if isinstance(doc, list):
        return Found(records=doc, where="list")
    if not isinstance(doc, dict):
        raise DeliveryRejected(400, "the body must be a JSON object or a list of records")
    slot = records_slot(doc)
    top_value = doc[find_key(doc, RECORD_KEYS)] if slot is not None else None
    unique_id, campaign = unique_id_and_campaign(doc, top_value)
    link = link_in(doc, top_value)
    if slot is not None:
        container, key = slot
        value = container[key]
        where = name_key(key)
        if isinstance(value, str):
            try:  # a JSON text inside the JSON (double encoding)
                value = json.loads(value, parse_constant=constant_as_text)
            except (ValueError, RecursionError):
                raise DeliveryRejected(
                    400, f"the value of {where} is not a list of records"
                ) from None
        if value is None or value == []:
            if link:
                return Found(link=link, unique_id=unique_id, campaign_name=campaign)
            return Found(records=[], unique_id=unique_id, campaign_name=campaign, where=where)
        if isinstance(value, dict):
            if container is doc and not looks_like_record(value):
                if link:
                    return Found(link=link, unique_id=unique_id, campaign_name=campaign)
                _reject_no_records(doc)
            value = [value]
        if not isinstance(value, list):
            raise DeliveryRejected(400, f"the value of {where} is not a list of records")
        return Found(records=value, unique_id=unique_id, campaign_name=campaign, where=where)
    # A lone record may carry a plain "url" field of its own; fileUrl & co. are always links.
    specific = link_in(doc, top_value, keys=LINK_KEYS[:-1])
    if link and (specific or not looks_like_record(doc)):
        return Found(link=link, unique_id=unique_id, campaign_name=campaign)
    if looks_like_record(doc):
        return Found(records=[doc], unique_id=unique_id, campaign_name=campaign, where="record")
    _reject_no_records(doc)
    raise AssertionError("unreachable")


def constant_as_text(name: str) -> str:
    """NaN, Infinity and -Infinity (not JSON, but some writers emit them) as that text: what
    DuckDB's reader makes of them on the fast path, so every shape of a body reads the same."""
    return name


def load_json_bytes(data: bytes, what: str):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DeliveryRejected(400, f"the {what} is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=constant_as_text)
    except json.JSONDecodeError as exc:
        raise DeliveryRejected(
            400, f"the {what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError):
        raise DeliveryRejected(
            400, f"the {what} is not valid JSON (or nested too deeply)"
        ) from None

"""The entry point, `parse_delivery`: how a body becomes a `ParsedDelivery`. The shape is sniffed,
then the body goes the JSON way (the fast slice, else the generic `json.loads`), the form way (a
data field goes the JSON way again) or, for a file link found in either, the download way (a
linked JSON file goes the JSON way again). Those paths call each other, so their control flow
lives here; the mechanisms are in the sibling modules."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from pathlib import Path

from lib.store.receive.csv_check import check_csv_complete
from lib.store.receive.envelope import (
    RECORD_KEYS,
    Found,
    find_key,
    interpret,
    load_json_bytes,
    looks_like_record,
    records_slot,
    unique_id_and_campaign,
)
from lib.store.receive.files import (
    BOM,
    DEFAULT_MAX_BYTES,
    HEAD_BYTES,
    artefact,
    first_byte,
    read_range,
)
from lib.store.receive.form import decoded_values, percent_decode, split_form
from lib.store.receive.json_slice import slice_records
from lib.store.receive.links import gunzip_in_place
from lib.store.receive.types import (
    DeliveryRejected,
    Fetcher,
    ParsedDelivery,
    RecordsFile,
    check_content_type,
    media_type,
)

# json.loads of a body costs ~10x its size in memory: bodies in an odd shape above this are
# refused, and the process runs one such parse at a time (the form path's decoding too), so two
# large odd deliveries arriving together cannot add up to more than the machine has.
GENERIC_MAX_BYTES = 512 * 1024 * 1024
_ONE_GENERAL_PARSE = threading.Lock()


def parse_delivery(
    path,
    content_type: str | None,
    *,
    fetch_file: Fetcher | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    fast: bool = True,
) -> ParsedDelivery:
    """Finds the records of a delivery body; raises DeliveryRejected(400) when there are none.

    `fetch_file(url, dest)` downloads a linked file (see `make_fetcher`); without it, links are
    refused. The caller must call `.cleanup()` on the result when done with it.
    """
    body = Path(path)
    check_content_type(content_type)
    media, _ = media_type(content_type)
    first = first_byte(body)
    if first == b"":
        raise DeliveryRejected(400, "empty body")
    # Mislabelled bodies are common: a body starting with { or [ is JSON whatever the header
    # says, and `name=...` is a form (no JSON text can start that way).
    looks_like_form = re.match(rb"[\w.%+\-\[\]]+=", read_range(body, 0, 256)) is not None
    is_form = media == "application/x-www-form-urlencoded" or looks_like_form
    if is_form and first not in (b"{", b"["):
        return _parse_form_file(body, fetch_file=fetch_file, max_bytes=max_bytes)
    return _parse_json_file(
        body, variant="json", fetch_file=fetch_file, max_bytes=max_bytes, fast=fast
    )


def _parse_json_file(
    body: Path,
    *,
    variant: str,
    fetch_file: Fetcher | None,
    max_bytes: int,
    fast: bool,
    split: bool = True,
) -> ParsedDelivery:
    first = first_byte(body)
    temp_files: list[Path] = []

    def generic() -> ParsedDelivery:
        return _parse_json_file(
            body, variant=variant, fetch_file=fetch_file, max_bytes=max_bytes, fast=False
        )

    def one_slice() -> ParsedDelivery:
        return _parse_json_file(
            body, variant=variant, fetch_file=fetch_file, max_bytes=max_bytes, fast=True,
            split=False,
        )  # fmt: skip

    if fast and first == b"[":
        return ParsedDelivery(None, None, RecordsFile(body, "json"), variant + "/list", generic)
    if (
        fast
        and first == b"{"
        and (sliced := slice_records(body, variant, split, one_slice, generic)) is not None
    ):
        return sliced
    size = body.stat().st_size
    if size > GENERIC_MAX_BYTES:
        raise DeliveryRejected(
            413, "the body is too large for its shape: send the records as a list under data"
        )
    if first == b"{" and _ndjson(read_range(body, 0, HEAD_BYTES)):
        return ParsedDelivery(None, None, RecordsFile(body, "ndjson"), variant + "/ndjson")
    with _ONE_GENERAL_PARSE:
        doc = load_json_bytes(body.read_bytes(), "body")
        if isinstance(doc, str):  # the whole body JSON-encoded twice
            doc = load_json_bytes(doc.encode("utf-8"), "body")
        found = interpret(doc)
        del doc
        if found.link is None:
            records_file = _write_records(found.records, body, temp_files)
            found.records = None  # the objects go before the next parse may start
    if found.link is not None:
        linked = _follow_link(body, found.link, fetch_file, max_bytes, found)
        linked.variant = variant + "/" + linked.variant
        linked.unique_id = found.unique_id or linked.unique_id
        linked.campaign_name = found.campaign_name or linked.campaign_name
        return linked
    return ParsedDelivery(
        found.unique_id,
        found.campaign_name,
        records_file,
        f"{variant}/{found.where}",
        None,
        temp_files,
    )


def _ndjson(head: bytes) -> bool:
    """True when the body (its first bytes) is newline-delimited JSON objects (several records,
    one per line)."""
    text_head = head.removeprefix(BOM)
    line, newline, rest = text_head.partition(b"\n")
    if not newline or not rest.strip().startswith(b"{"):
        return False
    try:
        first = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(first, dict) and looks_like_record(first) and records_slot(first) is None


def _write_records(records: list, body: Path, temp_files: list[Path]) -> RecordsFile:
    for record in records:
        if not isinstance(record, dict):
            raise DeliveryRejected(400, "every record must be a JSON object")
    out = artefact(body, ".records.json")
    temp_files.append(out)
    try:
        text = json.dumps(records, ensure_ascii=False, separators=(",", ":"))  # C encoder
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(text)
    except UnicodeEncodeError:  # lone surrogates from \\ud800-style escapes
        raise DeliveryRejected(400, "the records hold invalid unicode escapes") from None
    except (ValueError, RecursionError):
        raise DeliveryRejected(400, "the records are nested too deeply") from None
    return RecordsFile(out, "json")


def _parse_form_file(body: Path, *, fetch_file: Fetcher | None, max_bytes: int) -> ParsedDelivery:
    """`a=1&data=<JSON>`: the fields are split and percent-decoded (vectorised for a large data
    field); a data field goes through the JSON path, otherwise the fields are the record."""
    if body.stat().st_size > GENERIC_MAX_BYTES:
        raise DeliveryRejected(413, "the form body is too large: send the records as JSON")
    with _ONE_GENERAL_PARSE:
        raw_fields = split_form(body)
        data_key = find_key(raw_fields, RECORD_KEYS)
        if data_key is not None:
            inner = artefact(body, ".form.json")
            inner.write_bytes(percent_decode(raw_fields.pop(data_key)))
    if data_key is not None:
        try:
            parsed = _parse_json_file(
                inner, variant="form", fetch_file=fetch_file, max_bytes=max_bytes, fast=True
            )
        except DeliveryRejected as rejected:
            inner.unlink()
            if rejected.message.startswith("the body "):
                rejected.message = "the form field data " + rejected.message[len("the body ") :]
            raise
        parsed.temp_files.append(inner)
        _chain_fallback(parsed, inner)
        others = decoded_values(raw_fields)
        unique_id, campaign = unique_id_and_campaign(others)
        parsed.unique_id = parsed.unique_id or unique_id
        parsed.campaign_name = parsed.campaign_name or campaign
        return parsed
    fields = decoded_values(raw_fields)
    found = interpret(fields)
    if found.link is not None:
        linked = _follow_link(body, found.link, fetch_file, max_bytes, found)
        linked.variant = "form/" + linked.variant
        linked.unique_id = found.unique_id or linked.unique_id
        linked.campaign_name = found.campaign_name or linked.campaign_name
        return linked
    temp_files: list[Path] = []
    records_file = _write_records(found.records, body, temp_files)
    return ParsedDelivery(
        found.unique_id, found.campaign_name, records_file, "form/fields", None, temp_files
    )


def _chain_fallback(parsed: ParsedDelivery, keep: Path) -> None:
    """A fallback of a derived file must keep that file alive and clean it up afterwards."""
    if parsed.fallback is None:
        return
    original = parsed.fallback

    def fallback() -> ParsedDelivery:
        again = original()
        again.temp_files.append(keep)
        return again

    parsed.fallback = fallback


def _follow_link(
    body: Path, url: str, fetch_file: Fetcher | None, max_bytes: int, found: Found | None = None
):
    if fetch_file is None:
        raise DeliveryRejected(400, "file links are not accepted here")
    target = artefact(body, ".download")
    try:
        fetch_file(url, target)
        if target.stat().st_size > max_bytes:
            raise DeliveryRejected(413, "the linked file is over the size limit")
        if read_range(target, 0, 2) == b"\x1f\x8b":  # a .gz file (not transfer-encoded)
            gunzip_in_place(target, max_bytes)
        first = first_byte(target)
        if first in (b"[", b"{"):
            parsed = _parse_json_file(
                target, variant="link", fetch_file=None, max_bytes=max_bytes, fast=True
            )
            _chain_fallback(parsed, target)
        elif first == b"":
            raise DeliveryRejected(400, "the linked file is empty")
        else:
            check_csv_complete(target)
            parsed = ParsedDelivery(None, None, RecordsFile(target, "csv"), "link/csv")
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        if isinstance(exc, DeliveryRejected) and found is not None:
            exc.unique_id, exc.campaign_name = found.unique_id, found.campaign_name
        raise
    parsed.temp_files.append(target)
    return parsed

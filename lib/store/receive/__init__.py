"""Receiving CloudAgent deliveries: the raw body persisted first, then parsed into a records file.

CloudAgent's delivery format is undocumented (cloudagent-api.md), so every plausible variant is
accepted, and the assumptions live here:

(a) JSON `{"status": .., "uniqueId": .., "campaignName": .., "data": [records]}` (the default);
(b) form-encoded `data=<that JSON text>` (how CloudAgent's per-call callback posts);
(c) the records under `details` or `records` instead of `data`, or nested one level deeper
    (`{"data": {"records": [...]}}`);
(d) a single record object instead of a list;
(e) a bare top-level list of records;
(f) a link (`fileUrl`, `file_url`, `url`, `downloadUrl`, `failedFilePath`) to a CSV or JSON file,
    downloaded over http(s) from an allowed host only, streamed to disk, size- and time-limited.

Parsing never builds Python objects for a large body in the default shape: the byte range of the
records array is located (head and tail of the file only), the cut is proven to be the top-level
records value, and the slice is written as a file holding a top-level JSON array, the shape
DuckDB's `read_json` reads fastest; a large one as several such files, cut between records, which
DuckDB reads in parallel (`_split_cuts`). Anything else goes through `json.loads` (the generic
path).
What ingest reads is always a `RecordsFile`: a JSON array, newline-delimited JSON, or CSV.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import numpy as np

from lib.fields import LEAD_FIELDS, column_for, name_key

logger = logging.getLogger(__name__)

# Content types the callback route accepts (a missing header is accepted too: the body is sniffed).
ACCEPTED_CONTENT_TYPES: tuple[str, ...] = (
    "application/json",
    "text/json",
    "application/*+json",
    "text/plain",  # when it holds JSON
    "application/x-www-form-urlencoded",
)
_ACCEPTED_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})

# Keys, compared after `name_key` folding (case and separators ignored). Assumptions (I/S).
RECORD_KEYS: tuple[str, ...] = ("data", "details", "records")
LINK_KEYS: tuple[str, ...] = ("fileurl", "downloadurl", "failedfilepath", "url")  # "url" last
UNIQUE_ID_KEYS: tuple[str, ...] = ("uniqueid", "transactionid")
CAMPAIGN_KEYS: tuple[str, ...] = ("campaignname",)
ERROR_STATUSES = frozenset({"error", "fail", "failed", "failure"})

DEFAULT_MAX_BYTES = 1024 * 1024 * 1024  # same default as DIALSTATUS_MAX_BODY_MB
DEFAULT_DOWNLOAD_TIMEOUT_S = 120.0
# json.loads of a body costs ~10x its size in memory: bodies in an odd shape above this are refused.
GENERIC_MAX_BYTES = 512 * 1024 * 1024
# The fast path looks for the records key in the first and for the array's end in the last bytes.
_HEAD_BYTES = 64 * 1024
_TAIL_BYTES = 64 * 1024
_MAX_CUT_TRIES = 64
_MAX_REDIRECTS = 5
_BOM = b"\xef\xbb\xbf"
_RECORDS_KEY_RE = re.compile(rb'"(?:data|details|records)"\s*:\s*\[', re.IGNORECASE)
# A records slice of at least _SPLIT_MIN_BYTES is written as up to max(2, cores) array files of
# at least that size each, cut where one record ends and the next begins: `}`, `,`, `{` and the
# start of a key (or `}`). The pattern may also match inside a string value, or between nested
# objects; such a cut leaves a piece that is not a complete array (an unterminated string or
# bracket), DuckDB refuses it and ingest reads the one-file slice instead (see `_split_cuts`).
_SPLIT_MIN_BYTES = 16 * 1024 * 1024
_SPLIT_WINDOW_BYTES = 1024 * 1024
_RECORD_BOUNDARY_RE = re.compile(rb'\}[ \t\r\n]*,[ \t\r\n]*\{[ \t\r\n]*(?:"[^"\\:,}\] \t\r\n]|\})')
_DELIVERY_FILE_RE = re.compile(r"^(\d+)\.body$")


Fetcher = Callable[[str, Path], None]  # downloads url to the given path, or raises DeliveryRejected


class DeliveryRejected(Exception):
    """A delivery that cannot be accepted; `message` is short, safe to return to the sender."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        # Whose delivery it was, when known (a broken file link: the envelope named them).
        self.unique_id: str | None = None
        self.campaign_name: str | None = None


@dataclass(frozen=True)
class RawDelivery:
    id: int
    path: Path
    sha256: str
    size: int
    duplicate: bool


@dataclass(frozen=True)
class RecordsFile:
    """A file of records: `json` = one top-level array of objects, `ndjson`, or `csv` (header).

    A large records array may come as several `json` files (`parts`, `path` is the first): the
    array cut between top-level records, each piece a valid array of its own. DuckDB reads one
    array file on one thread; several files are read in parallel.
    """

    path: Path
    format: Literal["json", "ndjson", "csv"]
    parts: tuple[Path, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        return self.parts or (self.path,)


@dataclass
class ParsedDelivery:
    unique_id: str | None
    campaign_name: str | None
    records_source: RecordsFile
    variant: str  # e.g. "json/data", "form/json/records", "link/csv": for logs and tests
    # Set when records_source is a byte slice no parser has checked yet: if DuckDB cannot read it,
    # ingest calls this for the same delivery parsed the safe way (json.loads of the whole body).
    fallback: Callable[[], ParsedDelivery] | None = None
    temp_files: list[Path] = field(default_factory=list)

    def cleanup(self) -> None:
        """Deletes the files parsing made (slices, decoded forms, downloads); never the body."""
        for path in self.temp_files:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.temp_files.clear()


# -- content type --------------------------------------------------------------------------


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    media, *rest = content_type.split(";")
    params = {}
    for item in rest:
        name, _, value = item.partition("=")
        params[name.strip().lower()] = value.strip().strip('"').lower()
    return media.strip().lower(), params


def _is_json_media(media: str) -> bool:
    return media in ("application/json", "text/json", "text/plain") or (
        media.startswith("application/") and media.endswith("+json")
    )


def check_content_type(content_type: str | None) -> None:
    """Raises DeliveryRejected(415) unless the type is JSON or form-encoded (or not given)."""
    media, params = _media_type(content_type)
    if not media:
        return  # no header: the body is sniffed
    printable = re.sub(r"[^\w.+/-]", "?", media)[:60]
    if media.startswith("multipart/"):
        raise DeliveryRejected(
            415, "multipart bodies are not accepted: send JSON or a form field data=<JSON>"
        )
    if not (_is_json_media(media) or media == "application/x-www-form-urlencoded"):
        raise DeliveryRejected(
            415,
            f"unsupported content type {printable}: send application/json or "
            "application/x-www-form-urlencoded",
        )
    charset = params.get("charset")
    if charset and charset not in _ACCEPTED_CHARSETS:
        raise DeliveryRejected(415, "only UTF-8 bodies are accepted")


# -- raw persistence -----------------------------------------------------------------------


def deliveries_dir_for(store) -> Path:
    """The deliveries folder beside a store's database (the rule of Settings.deliveries_dir)."""
    return store.path.parent / (store.path.stem + ".deliveries")


def _sha256_and_fsync(path: Path) -> tuple[str, int]:
    """The file's sha256 and size, and the file on disk: the flush runs on another thread while
    this one hashes (hashlib and fsync both release the GIL), and is waited for."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb+") as handle:
        flushed: list[BaseException | None] = []

        def flush() -> None:
            try:
                os.fsync(handle.fileno())
                flushed.append(None)
            except BaseException as exc:  # re-raised below
                flushed.append(exc)

        flusher = threading.Thread(target=flush, name="delivery-fsync", daemon=True)
        flusher.start()
        try:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        finally:
            flusher.join()
        if flushed[0] is not None:
            raise flushed[0]
    return digest.hexdigest(), size


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def register_raw(store, deliveries_dir, tmp_path, content_type: str | None) -> RawDelivery:
    """Persists a received body: fsync, atomic rename to `<id>.body`, then its raw_deliveries row.

    Once this returns, a crash loses nothing: `ingest.ingest_pending` finishes the work (a crash
    between the rename and the row leaves a `<id>.body` without a row, which it adopts). A body
    whose sha256 matches a delivery already received or ingested is recorded as 'duplicate' and
    its file deleted.
    """
    deliveries_dir = Path(deliveries_dir)
    deliveries_dir.mkdir(parents=True, exist_ok=True)
    sha, size = _sha256_and_fsync(Path(tmp_path))
    media = (content_type or "")[:200] or None
    return _register_file(store, deliveries_dir, Path(tmp_path), sha, size, media)


def _register_file(store, deliveries_dir: Path, source: Path, sha: str, size: int, media):
    with store.writing() as cursor:
        while True:  # never overwrite a body file, even one the sequence has forgotten
            delivery_id = cursor.execute("SELECT nextval('delivery_ids')").fetchone()[0]
            final = deliveries_dir / f"{delivery_id}.body"
            if not final.exists():
                break
        seen = cursor.execute(
            "SELECT id FROM raw_deliveries WHERE sha256 = ? AND state IN ('ingested', 'received') "
            "ORDER BY id LIMIT 1",
            [sha],
        ).fetchone()
        if seen is not None:
            cursor.execute(
                "INSERT INTO raw_deliveries (id, sha256, content_type, size_bytes, path, state, "
                "error) VALUES (?, ?, ?, ?, ?, 'duplicate', ?)",
                [delivery_id, sha, media, size, str(final), f"same body as delivery {seen[0]}"],
            )
            with contextlib.suppress(FileNotFoundError):
                source.unlink()
            return RawDelivery(delivery_id, final, sha, size, duplicate=True)
        os.replace(source, final)
        _fsync_dir(deliveries_dir)
        cursor.execute(
            "INSERT INTO raw_deliveries (id, sha256, content_type, size_bytes, path, state) "
            "VALUES (?, ?, ?, ?, ?, 'received')",
            [delivery_id, sha, media, size, str(final)],
        )
    return RawDelivery(delivery_id, final, sha, size, duplicate=False)


def adopt_orphans(store, deliveries_dir) -> list[RawDelivery]:
    """Registers `<n>.body` files that have no raw_deliveries row (a crash between file and row).

    Each gets a fresh id (the sequence may not have kept the one in its name) and is renamed.
    """
    deliveries_dir = Path(deliveries_dir)
    if not deliveries_dir.is_dir():
        return []
    with store.cursor() as cursor:
        known = {row[0] for row in cursor.execute("SELECT id FROM raw_deliveries").fetchall()}
    adopted = []
    for path in sorted(deliveries_dir.iterdir()):
        match = _DELIVERY_FILE_RE.match(path.name)
        if match is None or int(match.group(1)) in known:
            continue
        sha, size = _sha256_and_fsync(path)
        raw = _register_file(store, deliveries_dir, path, sha, size, None)
        logger.warning("adopted delivery file %s without a row as delivery %d", path.name, raw.id)
        adopted.append(raw)
    return adopted


# -- parsing -------------------------------------------------------------------------------


def _artefact(body: Path, suffix: str) -> Path:
    """A fresh file beside the body for something parsing derives from it."""
    descriptor, name = tempfile.mkstemp(dir=body.parent, prefix=body.stem + ".", suffix=suffix)
    os.close(descriptor)
    return Path(name)


def _first_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    head = head.removeprefix(_BOM).lstrip(b" \t\r\n")
    return head[:1]


def _fold(mapping: dict) -> dict[str, Any]:
    """name_key -> original key (the first one wins when two keys fold to the same)."""
    folded: dict[str, Any] = {}
    for key in mapping:
        if isinstance(key, str):
            folded.setdefault(name_key(key), key)
    return folded


def _find_key(mapping: dict, wanted: Iterable[str]) -> str | None:
    folded = _fold(mapping)
    for key in wanted:
        if key in folded:
            return folded[key]
    return None


def _scalar_text(value) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:200] or None


def _meta(*containers) -> tuple[str | None, str | None]:
    unique_id = campaign = None
    for container in containers:
        if not isinstance(container, dict):
            continue
        if unique_id is None and (key := _find_key(container, UNIQUE_ID_KEYS)) is not None:
            unique_id = _scalar_text(container[key])
        if campaign is None and (key := _find_key(container, CAMPAIGN_KEYS)) is not None:
            campaign = _scalar_text(container[key])
    return unique_id, campaign


def _records_slot(doc) -> tuple[dict, str] | None:
    """Where the records live: (container, key), decided by key names only (not value types)."""
    if not isinstance(doc, dict):
        return None
    key = _find_key(doc, RECORD_KEYS)
    if key is None:
        return None
    value = doc[key]
    if isinstance(value, dict) and (inner := _find_key(value, RECORD_KEYS)) is not None:
        return value, inner
    return doc, key


def _link_in(*containers, keys: tuple[str, ...] = LINK_KEYS) -> str | None:
    for container in containers:
        if isinstance(container, dict) and (key := _find_key(container, keys)) is not None:
            value = container[key]
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _looks_like_record(mapping: dict) -> bool:
    return any(
        isinstance(key, str) and column_for(key) in ("lead_id", "phone_number") for key in mapping
    )


@dataclass
class _Found:
    records: list | None = None
    link: str | None = None
    unique_id: str | None = None
    campaign_name: str | None = None
    where: str = ""


def _reject_no_records(doc: dict) -> None:
    status_key = _find_key(doc, ("status",))
    status = _scalar_text(doc.get(status_key)) if status_key else None
    if status and status.lower() in ERROR_STATUSES:
        message_key = _find_key(doc, ("message", "msg", "error"))
        message = _scalar_text(doc.get(message_key)) if message_key else None
        detail = re.sub(r"[^\w .,:;'()/-]", "", message or "")[:120]
        raise DeliveryRejected(400, f"the delivery reports an error: {detail or status}")
    raise DeliveryRejected(
        400, "no records found: expected a list under data, details or records, or a file link"
    )


def _interpret(doc) -> _Found:
    """Finds the records (or a file link) in a parsed body, by the rules in the module doc."""
    if isinstance(doc, list):
        return _Found(records=doc, where="list")
    if not isinstance(doc, dict):
        raise DeliveryRejected(400, "the body must be a JSON object or a list of records")
    slot = _records_slot(doc)
    top_value = doc[_find_key(doc, RECORD_KEYS)] if slot is not None else None
    unique_id, campaign = _meta(doc, top_value)
    link = _link_in(doc, top_value)
    if slot is not None:
        container, key = slot
        value = container[key]
        where = name_key(key)
        if isinstance(value, str):
            try:  # a JSON text inside the JSON (double encoding)
                value = json.loads(value, parse_constant=_reject_constant)
            except (ValueError, RecursionError):
                raise DeliveryRejected(
                    400, f"the value of {where} is not a list of records"
                ) from None
        if value is None or value == []:
            if link:
                return _Found(link=link, unique_id=unique_id, campaign_name=campaign)
            return _Found(records=[], unique_id=unique_id, campaign_name=campaign, where=where)
        if isinstance(value, dict):
            if container is doc and not _looks_like_record(value):
                if link:
                    return _Found(link=link, unique_id=unique_id, campaign_name=campaign)
                _reject_no_records(doc)
            value = [value]
        if not isinstance(value, list):
            raise DeliveryRejected(400, f"the value of {where} is not a list of records")
        return _Found(records=value, unique_id=unique_id, campaign_name=campaign, where=where)
    # A lone record may carry a plain "url" field of its own; fileUrl & co. are always links.
    specific = _link_in(doc, top_value, keys=LINK_KEYS[:-1])
    if link and (specific or not _looks_like_record(doc)):
        return _Found(link=link, unique_id=unique_id, campaign_name=campaign)
    if _looks_like_record(doc):
        return _Found(records=[doc], unique_id=unique_id, campaign_name=campaign, where="record")
    _reject_no_records(doc)
    raise AssertionError("unreachable")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _load_json_bytes(data: bytes, what: str):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DeliveryRejected(400, f"the {what} is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DeliveryRejected(
            400, f"the {what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError):
        raise DeliveryRejected(
            400, f"the {what} is not valid JSON (or nested too deeply)"
        ) from None


def _write_records(records: list, body: Path, temp_files: list[Path]) -> RecordsFile:
    for record in records:
        if not isinstance(record, dict):
            raise DeliveryRejected(400, "every record must be a JSON object")
    out = _artefact(body, ".records.json")
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


def _copy_range(
    source: Path, start: int, length: int, target: Path, prefix: bytes = b"", suffix: bytes = b""
) -> None:
    with open(source, "rb") as src, open(target, "wb", buffering=0) as dst:
        dst.write(prefix)
        offset, remaining = start, length
        try:
            while remaining > 0:
                copied = os.copy_file_range(src.fileno(), dst.fileno(), remaining, offset)
                if copied == 0:
                    break
                offset += copied
                remaining -= copied
        except (OSError, AttributeError):
            src.seek(offset)
            dst.seek(offset - start)
            while remaining > 0 and (chunk := src.read(min(remaining, 8 * 1024 * 1024))):
                dst.write(chunk)
                remaining -= len(chunk)
        if remaining:
            raise DeliveryRejected(400, "the body changed while it was read")
        dst.write(suffix)


def _split_cuts(body: Path, start: int, end: int) -> list[tuple[int, int]]:
    """Where to cut the records array body[start..end] (`[`..`]`) into pieces for parallel
    reading: (end of one record's `}`, start of the next record's `{`) pairs, ascending.

    Why a wrong cut cannot change what is stored: the first piece is a prefix of the array plus
    `]`; every later piece repeats the bytes that follow a cut that was right, after a `[`, so a
    parser is in the same state there as in the whole array. At a cut that is not between two
    top-level records the parser is inside a string or a nested bracket, and the piece ends
    unterminated: DuckDB refuses it (the delivery is then read from the one-file slice).
    """
    length = end - start + 1
    pieces = min(max(2, os.cpu_count() or 1), length // _SPLIT_MIN_BYTES)
    cuts: list[tuple[int, int]] = []
    if pieces < 2:
        return cuts
    with open(body, "rb") as handle:
        for index in range(1, pieces):
            target = max(start + index * length // pieces, cuts[-1][1] if cuts else start)
            handle.seek(target)
            window = handle.read(min(_SPLIT_WINDOW_BYTES, end - target))
            found = _RECORD_BOUNDARY_RE.search(window)
            if found is None:
                continue
            close = target + found.start()
            opening = target + window.index(b"{", found.start() + 1)
            cuts.append((close, opening))
    return cuts


def _write_pieces(body: Path, start: int, end: int, cuts, temp_files: list[Path]) -> tuple:
    """The array body[start..end] as one file per piece between the cuts (see _split_cuts)."""
    bounds = [start, *(opening for _, opening in cuts)]
    ends = [*(close for close, _ in cuts), end]
    paths = []
    for index, (first, last) in enumerate(zip(bounds, ends, strict=True)):
        out = _artefact(body, f".part{index + 1}.slice.json")
        temp_files.append(out)
        paths.append(out)
        _copy_range(
            body,
            first,
            last - first + 1,
            out,
            prefix=b"[" if index else b"",
            suffix=b"]" if index < len(cuts) else b"",
        )
    return tuple(paths)


def _fast_slice(body: Path) -> tuple[int, int, dict] | None:
    """Locates the top-level records array of a JSON object body without parsing the records.

    Returns (start, end) byte offsets of the `[`..`]` and the body parsed with the array replaced
    by a sentinel string, or None when the cut cannot be proven.
    """
    size = body.stat().st_size
    with open(body, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
        tail_start = max(0, size - _TAIL_BYTES)
        handle.seek(tail_start)
        tail = handle.read()
    sentinel = "__dialstatus_records_" + secrets.token_hex(8) + "__"
    quoted = b'"' + sentinel.encode() + b'"'
    for match in _RECORDS_KEY_RE.finditer(head):
        start = match.end() - 1
        prefix = head[:start]
        position = len(tail)
        best = None
        # Metadata after the array may hold arrays too (`"errors": []`): a cut there also makes
        # a valid document, so keep going left and take the leftmost valid end. A cut inside the
        # records never parses (what follows would close brackets that were never opened).
        for _ in range(_MAX_CUT_TRIES):
            position = tail.rfind(b"]", 0, position)
            if position < 0 or tail_start + position <= start:
                break
            try:
                doc = json.loads(
                    (prefix + quoted + tail[position + 1 :]).decode("utf-8-sig"),
                    parse_constant=_reject_constant,
                )
            except (ValueError, RecursionError):
                continue
            slot = _records_slot(doc)
            if slot is not None and slot[0][slot[1]] == sentinel:
                best = (start, tail_start + position, doc)
        if best is not None:
            return best  # DuckDB then parses the slice as one array, or ingest falls back
    return None


def _parse_json_file(
    body: Path,
    *,
    variant: str,
    fetch_file: Fetcher | None,
    max_bytes: int,
    fast: bool,
    split: bool = True,
) -> ParsedDelivery:
    first = _first_byte(body)
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
    if fast and first == b"{" and (cut := _fast_slice(body)) is not None:
        start, end, doc = cut
        slot = _records_slot(doc)
        top_value = doc[_find_key(doc, RECORD_KEYS)]
        unique_id, campaign = _meta(doc, top_value)
        link = _link_in(doc, top_value)
        length = end - start + 1
        empty = length <= 64 and re.fullmatch(rb"\[\s*\]", _read_range(body, start, length))
        cuts = _split_cuts(body, start, end) if split and not link else []
        if cuts:
            parts = _write_pieces(body, start, end, cuts, temp_files)
            return ParsedDelivery(
                unique_id,
                campaign,
                RecordsFile(parts[0], "json", parts),
                f"{variant}/{name_key(slot[1])}",
                one_slice,  # a cut DuckDB refuses: the whole slice, then the generic parse
                temp_files,
            )
        if not (link and empty):  # an empty list beside a link: the link holds the records
            out = _artefact(body, ".slice.json")
            temp_files.append(out)
            _copy_range(body, start, length, out)
            return ParsedDelivery(
                unique_id,
                campaign,
                RecordsFile(out, "json"),
                f"{variant}/{name_key(slot[1])}",
                generic,
                temp_files,
            )
    size = body.stat().st_size
    if size > GENERIC_MAX_BYTES:
        raise DeliveryRejected(
            413, "the body is too large for its shape: send the records as a list under data"
        )
    data = body.read_bytes()
    if first == b"{" and _ndjson(data):
        return ParsedDelivery(None, None, RecordsFile(body, "ndjson"), variant + "/ndjson")
    doc = _load_json_bytes(data, "body")
    del data
    if isinstance(doc, str):  # the whole body JSON-encoded twice
        doc = _load_json_bytes(doc.encode("utf-8"), "body")
    found = _interpret(doc)
    if found.link is not None:
        linked = _follow_link(body, found.link, fetch_file, max_bytes, found)
        linked.variant = variant + "/" + linked.variant
        linked.unique_id = found.unique_id or linked.unique_id
        linked.campaign_name = found.campaign_name or linked.campaign_name
        return linked
    records_file = _write_records(found.records, body, temp_files)
    return ParsedDelivery(
        found.unique_id,
        found.campaign_name,
        records_file,
        f"{variant}/{found.where}",
        None,
        temp_files,
    )


def _read_range(path: Path, start: int, length: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(length)


def _ndjson(data: bytes) -> bool:
    """True when the body is newline-delimited JSON objects (several records, one per line)."""
    text_head = data[:_HEAD_BYTES].removeprefix(_BOM)
    line, newline, rest = text_head.partition(b"\n")
    if not newline or not rest.strip().startswith(b"{"):
        return False
    try:
        first = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(first, dict) and _looks_like_record(first) and _records_slot(first) is None


def _parse_form_file(body: Path, *, fetch_file: Fetcher | None, max_bytes: int) -> ParsedDelivery:
    """`a=1&data=<JSON>`: the fields are split and percent-decoded (vectorised for a large data
    field); a data field goes through the JSON path, otherwise the fields are the record."""
    if body.stat().st_size > GENERIC_MAX_BYTES:
        raise DeliveryRejected(413, "the form body is too large: send the records as JSON")
    raw_fields: dict[str, bytes] = {}
    for part in body.read_bytes().split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            raw_fields.setdefault(_utf8(_percent_decode(name)), value)
    data_key = _find_key(raw_fields, RECORD_KEYS)
    if data_key is not None:
        inner = _artefact(body, ".form.json")
        inner.write_bytes(_percent_decode(raw_fields.pop(data_key)))
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
        unique_id, campaign = _meta({k: _utf8(_percent_decode(v)) for k, v in raw_fields.items()})
        parsed.unique_id = parsed.unique_id or unique_id
        parsed.campaign_name = parsed.campaign_name or campaign
        return parsed
    fields = {key: _utf8(_percent_decode(value)) for key, value in raw_fields.items()}
    found = _interpret(fields)
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


_HEX = np.full(256, -1, dtype=np.int16)
for _digit, _value in zip(b"0123456789abcdefABCDEF", [*range(16), *range(10, 16)], strict=True):
    _HEX[_digit] = _value


def _percent_decode(raw: bytes) -> bytes:
    """Form decoding of one name or value: '+' is a space, %XX a byte (strict: a '%' must be
    followed by two hex digits). Vectorised with numpy, so a 300 MB data field takes ~1 s."""
    raw = raw.replace(b"+", b" ")
    if b"%" not in raw:
        return raw
    data = np.frombuffer(raw, dtype=np.uint8)
    marks = np.flatnonzero(data == ord("%"))
    if marks[-1] + 2 >= len(data):
        raise DeliveryRejected(400, "the form body is not valid URL encoding")
    high, low = _HEX[data[marks + 1]], _HEX[data[marks + 2]]
    if (high < 0).any() or (low < 0).any():
        raise DeliveryRejected(400, "the form body is not valid URL encoding")
    decoded = data.copy()
    decoded[marks] = (high * 16 + low).astype(np.uint8)
    keep = np.ones(len(data), dtype=bool)
    keep[marks + 1] = False
    keep[marks + 2] = False
    return decoded[keep].tobytes()


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DeliveryRejected(400, "the form body is not valid UTF-8") from None


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
    body: Path, url: str, fetch_file: Fetcher | None, max_bytes: int, found: _Found | None = None
):
    if fetch_file is None:
        raise DeliveryRejected(400, "file links are not accepted here")
    target = _artefact(body, ".download")
    try:
        fetch_file(url, target)
        if target.stat().st_size > max_bytes:
            raise DeliveryRejected(413, "the linked file is over the size limit")
        if _read_range(target, 0, 2) == b"\x1f\x8b":  # a .gz file (not transfer-encoded)
            _gunzip_in_place(target, max_bytes)
        first = _first_byte(target)
        if first in (b"[", b"{"):
            parsed = _parse_json_file(
                target, variant="link", fetch_file=None, max_bytes=max_bytes, fast=True
            )
            _chain_fallback(parsed, target)
        elif first == b"":
            raise DeliveryRejected(400, "the linked file is empty")
        else:
            _check_csv_complete(target)
            parsed = ParsedDelivery(None, None, RecordsFile(target, "csv"), "link/csv")
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        if isinstance(exc, DeliveryRejected) and found is not None:
            exc.unique_id, exc.campaign_name = found.unique_id, found.campaign_name
        raise
    parsed.temp_files.append(target)
    return parsed


_LINE_BREAK_RE = re.compile(rb"\r\n|\r|\n")
_CSV_DELIMITERS = b",;\t|"
# Every spelling of a known field, folded (`name_key`): a header's last name that is a strict
# prefix of one of these, and not itself one, was cut inside that name.
_KNOWN_FIELD_KEYS: frozenset[str] = frozenset(
    name_key(spelling)
    for lead_field in LEAD_FIELDS
    for spelling in (lead_field.column, lead_field.api_name, *lead_field.aliases)
)


def _check_csv_complete(path: Path) -> None:
    """A CSV file cut short (a sender that wrote half the file with a matching length, so the
    HTTP layer sees nothing wrong) ends without a line break. A file that ends with one is taken
    as whole. Otherwise (RFC 4180 lets the last line go unterminated) the last line must be
    whole: a line after the header cut short has fewer fields than the header or an unclosed
    quote; a header that is the only line (an empty refresh) must be a whole header, see
    `_check_csv_header_whole`. DuckDB would read either kind of cut as a smaller or empty file:
    refuse it instead."""
    size = path.stat().st_size
    tail = _read_range(path, max(0, size - _TAIL_BYTES), _TAIL_BYTES)
    if tail.endswith((b"\n", b"\r")):
        return
    head = _read_range(path, 0, _HEAD_BYTES).removeprefix(_BOM)
    header = _LINE_BREAK_RE.split(head, maxsplit=1)[0]
    if header == head and size <= _HEAD_BYTES:  # one line, unterminated: a header alone
        _check_csv_header_whole(header)
        return
    delimiter = _csv_delimiter(header)
    last = _LINE_BREAK_RE.split(tail)[-1]
    if last.count(b'"') % 2 or len(_csv_fields(last, delimiter)) < len(
        _csv_fields(header, delimiter)
    ):
        raise DeliveryRejected(400, "the linked CSV file is cut short (its last line is partial)")


def _csv_delimiter(line: bytes) -> str:
    """The separator of a CSV line: the most frequent of , ; tab | outside quotes (`,` if none)."""
    outside = re.sub(rb'"[^"]*"?', b"", line)
    counts = {d: outside.count(d) for d in _CSV_DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return chr(best) if counts[best] else ","


def _csv_fields(line: bytes, delimiter: str) -> list[str]:
    return next(csv.reader([line.decode("utf-8", "replace")], delimiter=delimiter), [])


def _check_csv_header_whole(header: bytes) -> None:
    """A file that is one unterminated line is a header (no rows: an empty refresh) if it is a
    whole one: every quote closed, its last name not empty (a cut just after a separator) and
    not the beginning of a known field name (`"PhoneNu`). A cut exactly between two names
    leaves no trace and cannot be told from a shorter header."""
    message = "the linked CSV file is cut short (its header line is partial)"
    if header.count(b'"') % 2:
        raise DeliveryRejected(400, message)
    names = _csv_fields(header, _csv_delimiter(header))
    if not names or not names[-1].strip():
        raise DeliveryRejected(400, message)
    last = name_key(names[-1])
    if (
        last
        and last not in _KNOWN_FIELD_KEYS
        and any(k.startswith(last) for k in _KNOWN_FIELD_KEYS)
    ):
        raise DeliveryRejected(400, message)


def _gunzip_in_place(path: Path, max_bytes: int) -> None:
    plain = path.with_name(path.name + ".plain")
    written = 0
    try:
        with gzip.open(path, "rb") as source, open(plain, "wb") as target:
            while chunk := source.read(1024 * 1024):
                written += len(chunk)
                if written > max_bytes:
                    raise DeliveryRejected(413, "the linked file is over the size limit")
                target.write(chunk)
    except (OSError, EOFError, zlib.error):
        plain.unlink(missing_ok=True)
        raise DeliveryRejected(400, "the linked file is not valid gzip") from None
    except BaseException:
        plain.unlink(missing_ok=True)
        raise
    os.replace(plain, path)


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
    media, _ = _media_type(content_type)
    first = _first_byte(body)
    if first == b"":
        raise DeliveryRejected(400, "empty body")
    # Mislabelled bodies are common: a body starting with { or [ is JSON whatever the header
    # says, and `name=...` is a form (no JSON text can start that way).
    looks_like_form = re.match(rb"[\w.%+\-\[\]]+=", _read_range(body, 0, 256)) is not None
    is_form = media == "application/x-www-form-urlencoded" or looks_like_form
    if is_form and first not in (b"{", b"["):
        return _parse_form_file(body, fetch_file=fetch_file, max_bytes=max_bytes)
    return _parse_json_file(
        body, variant="json", fetch_file=fetch_file, max_bytes=max_bytes, fast=fast
    )


# -- file links ----------------------------------------------------------------------------


def _host_rules(allowed_hosts: Iterable[str]) -> list[tuple[str, int | None]]:
    rules = []
    for entry in allowed_hosts:
        entry = (entry or "").strip()
        if not entry:
            continue
        parts = urlsplit(entry if "//" in entry else "//" + entry)
        if parts.hostname:
            try:
                port = parts.port
            except ValueError:
                continue
            rules.append((parts.hostname.lower().rstrip("."), port))
    return rules


def check_link(url: str, allowed_hosts: Iterable[str]) -> str:
    """The URL if it is http(s) on an allowed host (any port unless the entry names one)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise DeliveryRejected(400, "the file link is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise DeliveryRejected(400, "the file link must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise DeliveryRejected(400, "the file link must not carry credentials")
    host = (parts.hostname or "").lower().rstrip(".")
    for allowed_host, allowed_port in _host_rules(allowed_hosts):
        if host == allowed_host and (allowed_port is None or allowed_port == port):
            return url.strip()
    raise DeliveryRejected(400, "the file link points to a host that is not allowed")


def make_fetcher(
    allowed_hosts: Iterable[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = DEFAULT_DOWNLOAD_TIMEOUT_S,
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Fetcher:
    """A downloader for file links: allowed hosts only (every redirect hop too), streamed to disk,
    at most max_bytes (after decompression), at most timeout_s in all."""
    allowed = tuple(allowed_hosts)

    def fetch(url: str, dest: Path) -> None:
        deadline = time.monotonic() + timeout_s
        current = check_link(url, allowed)
        timeout = httpx.Timeout(min(timeout_s, 30.0))
        with httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers=headers,
            transport=transport,
        ) as client:
            try:
                for _ in range(_MAX_REDIRECTS + 1):
                    with client.stream("GET", current) as response:
                        if response.is_redirect:
                            location = response.headers.get("location", "")
                            current = check_link(urljoin(current, location), allowed)
                            continue
                        if response.status_code != 200:
                            raise DeliveryRejected(
                                502, f"the file link answered HTTP {response.status_code}"
                            )
                        declared = response.headers.get("content-length", "")
                        if declared.isdigit() and int(declared) > max_bytes:
                            raise DeliveryRejected(413, "the linked file is over the size limit")
                        _stream_to(response, dest, max_bytes, deadline)
                        return
                raise DeliveryRejected(502, "the file link redirects too often")
            except httpx.TimeoutException:
                raise DeliveryRejected(504, "the file download timed out") from None
            except httpx.HTTPError as exc:
                raise DeliveryRejected(
                    502, f"the file download failed ({type(exc).__name__})"
                ) from None

    return fetch


def _stream_to(response: httpx.Response, dest: Path, max_bytes: int, deadline: float) -> None:
    written = 0
    with open(dest, "wb") as handle:
        for chunk in response.iter_bytes(1024 * 1024):
            written += len(chunk)
            if written > max_bytes:
                raise DeliveryRejected(413, "the linked file is over the size limit")
            if time.monotonic() > deadline:
                raise DeliveryRejected(504, "the file download timed out")
            handle.write(chunk)


def remove_stale_artefacts(deliveries_dir, keep_ids: Iterable[int] = ()) -> int:
    """Deletes parse artefacts (`<id>.*.slice.json`, `.records.json`, `.form.json`, `.download`)
    left by a crash, except those of the ids given. Returns how many were removed."""
    deliveries_dir = Path(deliveries_dir)
    if not deliveries_dir.is_dir():
        return 0
    keep = {str(i) for i in keep_ids}
    removed = 0
    for path in deliveries_dir.iterdir():
        stem, dot, rest = path.name.partition(".")
        if not (dot and stem.isdigit() and stem not in keep):
            continue
        if rest.endswith((".slice.json", ".records.json", ".form.json", ".download")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed

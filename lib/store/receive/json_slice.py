"""The fast path for a JSON object body: the byte range of its top-level records array is found
from the head and tail of the file alone, proven by parsing the rest, and copied out as a file
holding one JSON array; a large one as several such files, cut between records, which DuckDB
reads in parallel. The records themselves are never parsed here."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from lib.fields import name_key
from lib.store.receive.envelope import (
    RECORD_KEYS,
    constant_as_text,
    find_key,
    link_in,
    records_slot,
    unique_id_and_campaign,
)
from lib.store.receive.files import HEAD_BYTES, TAIL_BYTES, artefact, read_range
from lib.store.receive.types import DeliveryRejected, ParsedDelivery, RecordsFile

_MAX_CUT_TRIES = 64
_RECORDS_KEY_RE = re.compile(rb'"(?:data|details|records)"\s*:\s*\[', re.IGNORECASE)
# A records slice of at least _SPLIT_MIN_BYTES is written as up to max(2, cores) array files of
# at least that size each, cut where one record ends and the next begins: `}`, `,`, `{` and the
# start of a key (or `}`). The pattern may also match inside a string value, or between nested
# objects; such a cut leaves a piece that is not a complete array (an unterminated string or
# bracket), DuckDB refuses it and ingest reads the one-file slice instead (see `_split_cuts`).
_SPLIT_MIN_BYTES = 16 * 1024 * 1024
_SPLIT_WINDOW_BYTES = 1024 * 1024
_RECORD_BOUNDARY_RE = re.compile(rb'\}[ \t\r\n]*,[ \t\r\n]*\{[ \t\r\n]*(?:"[^"\\:,}\] \t\r\n]|\})')


def slice_records(
    body: Path,
    variant: str,
    split: bool,
    one_slice: Callable[[], ParsedDelivery],
    generic: Callable[[], ParsedDelivery],
) -> ParsedDelivery | None:
    """The records of a JSON object body as a slice of its bytes: one array file, or several
    (`split`, a large array). None when the cut cannot be proven, or when the records are an
    empty list beside a file link. The fallback for pieces DuckDB refuses is `one_slice`, for a
    slice it refuses `generic`."""
    cut = _fast_slice(body)
    if cut is None:
        return None
    start, end, doc = cut
    temp_files: list[Path] = []
    slot = records_slot(doc)
    top_value = doc[find_key(doc, RECORD_KEYS)]
    unique_id, campaign = unique_id_and_campaign(doc, top_value)
    link = link_in(doc, top_value)
    length = end - start + 1
    empty = length <= 64 and re.fullmatch(rb"\[\s*\]", read_range(body, start, length))
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
    if link and empty:  # an empty list beside a link: the link holds the records
        return None
    out = artefact(body, ".slice.json")
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
        out = artefact(body, f".part{index + 1}.slice.json")
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
        head = handle.read(HEAD_BYTES)
        tail_start = max(0, size - TAIL_BYTES)
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
                    parse_constant=constant_as_text,
                )
            except (ValueError, RecursionError):
                continue
            slot = records_slot(doc)
            if slot is not None and slot[0][slot[1]] == sentinel:
                best = (start, tail_start + position, doc)
        if best is not None:
            return best  # DuckDB then parses the slice as one array, or ingest falls back
    return None

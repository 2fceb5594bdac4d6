"""A linked CSV file cut short is refused: DuckDB would read it as a smaller (or empty) file."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from lib.fields import LEAD_FIELDS, name_key
from lib.store.receive.files import BOM, HEAD_BYTES, TAIL_BYTES, read_range
from lib.store.receive.types import DeliveryRejected

_LINE_BREAK_RE = re.compile(rb"\r\n|\r|\n")
_CSV_DELIMITERS = b",;\t|"
# Every spelling of a known field, folded (`name_key`): a header's last name that is a strict
# prefix of one of these, and not itself one, was cut inside that name.
_KNOWN_FIELD_KEYS: frozenset[str] = frozenset(
    name_key(spelling)
    for lead_field in LEAD_FIELDS
    for spelling in (lead_field.column, lead_field.api_name, *lead_field.aliases)
)


def check_csv_complete(path: Path) -> None:
    """A CSV file cut short (a sender that wrote half the file with a matching length, so the
    HTTP layer sees nothing wrong) ends without a line break. A file that ends with one is taken
    as whole. Otherwise (RFC 4180 lets the last line go unterminated) the last line must be
    whole: a line after the header cut short has fewer fields than the header or an unclosed
    quote; a header that is the only line (an empty refresh) must be a whole header, see
    `_check_csv_header_whole`. DuckDB would read either kind of cut as a smaller or empty file:
    refuse it instead."""
    size = path.stat().st_size
    tail = read_range(path, max(0, size - TAIL_BYTES), TAIL_BYTES)
    if tail.endswith((b"\n", b"\r")):
        return
    head = read_range(path, 0, HEAD_BYTES).removeprefix(BOM)
    header = _LINE_BREAK_RE.split(head, maxsplit=1)[0]
    if header == head and size <= HEAD_BYTES:  # one line, unterminated: a header alone
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

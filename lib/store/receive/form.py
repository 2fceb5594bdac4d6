"""Form bodies (`a=1&data=<JSON>`, how CloudAgent's per-call callback posts): the fields split,
and percent-decoded strictly and fast enough for a data field of hundreds of MB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lib.store.receive.types import DeliveryRejected


def split_form(body: Path) -> dict[str, bytes]:
    """The fields of a form body, the first of each name: names decoded, values still encoded
    (a large data value is decoded once, on its own)."""
    raw_fields: dict[str, bytes] = {}
    for part in body.read_bytes().split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            raw_fields.setdefault(decode_utf8(percent_decode(name)), value)
    return raw_fields


def decoded_values(raw_fields: dict[str, bytes]) -> dict[str, str]:
    """Every field's value decoded to text (for the small fields beside a data field)."""
    return {name: decode_utf8(percent_decode(value)) for name, value in raw_fields.items()}


_HEX = np.full(256, -1, dtype=np.int16)
for _digit, _value in zip(b"0123456789abcdefABCDEF", [*range(16), *range(10, 16)], strict=True):
    _HEX[_digit] = _value


def percent_decode(raw: bytes) -> bytes:
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


def decode_utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DeliveryRejected(400, "the form body is not valid UTF-8") from None

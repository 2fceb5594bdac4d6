"""The body file on disk: reading a few of its bytes, and the artefact files parsing derives
beside it (named `<id>.<random><suffix>`, see `raw.remove_stale_artefacts`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DEFAULT_MAX_BYTES = 1024 * 1024 * 1024  # same default as DIALSTATUS_MAX_BODY_MB
# Sniffing reads at most this much of a body's head or tail (the records key, the array's end,
# a CSV header or last line).
HEAD_BYTES = 64 * 1024
TAIL_BYTES = 64 * 1024
BOM = b"\xef\xbb\xbf"


def artefact(body: Path, suffix: str) -> Path:
    """A fresh file beside the body for something parsing derives from it."""
    descriptor, name = tempfile.mkstemp(dir=body.parent, prefix=body.stem + ".", suffix=suffix)
    os.close(descriptor)
    return Path(name)


def first_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    head = head.removeprefix(BOM).lstrip(b" \t\r\n")
    return head[:1]


def read_range(path: Path, start: int, length: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read(length)

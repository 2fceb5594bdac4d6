"""The types every receive module shares: the rejection, the persisted body, the records file
ingest reads and the parse result; and the content-type rule the callback route applies first."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

_ACCEPTED_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


# How the reason for a delivery given up after its ingest kept being interrupted begins: a later
# copy of that body is a duplicate of it, answered at once, not read again (lib.store.ingest).
GAVE_UP_PREFIX = "ingest was interrupted"

Fetcher = Callable[[str, Path], None]  # downloads url to the given path, or raises DeliveryRejected


# Failures that say nothing about the delivery itself (a file host's 5xx or timeout, the
# machine's trouble): the delivery is kept and tried again, within its attempts.
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


class DeliveryRejected(Exception):
    """A delivery that cannot be accepted; `message` is short, safe to return to the sender.

    `transient` (by default: a 500, 502, 503 or 504) means trying again later may succeed.
    """

    def __init__(self, status_code: int, message: str, *, transient: bool | None = None) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.transient = status_code in _TRANSIENT_STATUSES if transient is None else transient
        # Whose delivery it was, when known (a broken file link: the envelope named them).
        self.unique_id: str | None = None
        self.campaign_name: str | None = None


@dataclass(frozen=True)
class RawDelivery:
    id: int
    path: Path
    sha256: str
    size: int
    duplicate_of: int | None = None  # the earlier delivery with the same body, if any

    @property
    def duplicate(self) -> bool:
        return self.duplicate_of is not None


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


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
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
    media, params = media_type(content_type)
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

"""The sandbox's view of one campaign: which lead versions are visible now, and the API filters
(`select`); `delivered` writes the selection in the configured styles (styles.py).

Implemented with numpy over arrays prepared once per campaign, on purpose independent of the
dashboard's SQL (lib/fields.py), so tests can check one against the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lib.fields import API_TIMESTAMP_FORMAT
from lib.sandbox.config import SandboxConfig
from lib.sandbox.styles import styled

# Lead status filter values -> raw Status values they select (lower-cased, trimmed).
# Pending also covers leads with no status yet (and anything unrecognised).
STATUS_SUCCESS, STATUS_FAIL, STATUS_PENDING = 0, 1, 2
_STATUS_WORDS = {"success": STATUS_SUCCESS, "fail": STATUS_FAIL}

# The API's dialstatus grouping of raw dial outcomes (letters only, lower case).
BUCKET_ANSWERED, BUCKET_NO_ANSWER, BUCKET_DISCONNECTED, BUCKET_FAIL, BUCKET_NOT_DIALLED = range(5)
_BUCKET_WORDS = {
    "answered": BUCKET_ANSWERED,
    "notanswered": BUCKET_NO_ANSWER,
    "noanswer": BUCKET_NO_ANSWER,
    "ring": BUCKET_NO_ANSWER,
    "ringing": BUCKET_NO_ANSWER,
    "userdisconnected": BUCKET_DISCONNECTED,
    "": BUCKET_NOT_DIALLED,
    "notdialed": BUCKET_NOT_DIALLED,
    "notdialled": BUCKET_NOT_DIALLED,
}
STATUS_FILTERS = {"all": None, "success": STATUS_SUCCESS, "fail": STATUS_FAIL,
                  "pending": STATUS_PENDING}  # fmt: skip
DIAL_FILTERS = {
    "all": None,
    "answered": BUCKET_ANSWERED,
    "noanswer": BUCKET_NO_ANSWER,
    "user_disconnected": BUCKET_DISCONNECTED,
    "fail": BUCKET_FAIL,
}


def _letters(text: str) -> str:
    return "".join(ch for ch in text.lower() if "a" <= ch <= "z")


def _codes(column: pa.ChunkedArray, classify) -> np.ndarray:
    """Per-row codes from a per-distinct-value classification (the dictionary is small)."""
    if pa.types.is_dictionary(column.type):
        encoded = column.unify_dictionaries().combine_chunks()
    else:
        encoded = pc.dictionary_encode(column).combine_chunks()
    mapping = np.array([classify(v) for v in encoded.dictionary.to_pylist()], dtype=np.int8)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return mapping[indices] if len(mapping) else np.zeros(len(indices), dtype=np.int8)


def _seconds(column: pa.ChunkedArray) -> np.ndarray:
    """ "YYYY-MM-DD HH:MM:SS" -> seconds on the same wall clock (zone-less)."""
    parsed = pc.strptime(column, format=API_TIMESTAMP_FORMAT, unit="s", error_is_null=True)
    return pc.fill_null(parsed.cast(pa.int64()), -(2**62)).to_numpy()


@dataclass(frozen=True)
class Selection:
    status: int | None = None  # STATUS_* or None for All
    dial_bucket: int | None = None  # BUCKET_* or None for All
    disposition: str | None = None  # exact value, None for ALL
    sortby: int = 0
    from_s: int | None = None  # local wall-clock seconds, inclusive
    to_s: int | None = None


class CampaignData:
    """All versions of a campaign's leads, with the arrays the filters need."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        n = table.num_rows
        lead = pc.dictionary_encode(table.column("LeadID")).combine_chunks().indices.to_numpy()
        self.created_s = _seconds(table.column("CreatedDate"))
        self.updated_s = _seconds(table.column("UpdatedDate"))
        # Rows sorted by lead, then by update time: a lead's versions are adjacent, oldest first.
        self._order = np.lexsort((self.updated_s, lead))
        lead_sorted = lead[self._order]
        self._updated_sorted = self.updated_s[self._order]
        self._same_lead_next = np.zeros(n, dtype=bool)
        if n > 1:
            self._same_lead_next[:-1] = lead_sorted[1:] == lead_sorted[:-1]
        self.status_code = _codes(
            table.column("Status"),
            lambda v: _STATUS_WORDS.get((v or "").strip().lower(), STATUS_PENDING),
        )
        self.bucket_code = _codes(
            table.column("DialStatus"), lambda v: _BUCKET_WORDS.get(_letters(v or ""), BUCKET_FAIL)
        )
        self._disposition = table.column("Disposition")

    @property
    def lead_count(self) -> int:
        return int((~self._same_lead_next).sum())

    def current_rows(self, now_s: int) -> np.ndarray:
        """Row numbers of each lead's newest version with UpdatedDate <= now_s."""
        visible = self._updated_sorted <= now_s
        next_visible = np.zeros_like(visible)
        next_visible[:-1] = visible[1:]
        newest = visible & ~(self._same_lead_next & next_visible)
        return self._order[newest]

    def select(self, selection: Selection, now_s: int) -> pa.Table:
        """The records the API would deliver for `selection` at local time `now_s`."""
        rows = np.sort(self.current_rows(now_s))
        keep = np.ones(len(rows), dtype=bool)
        if selection.status is not None:
            keep &= self.status_code[rows] == selection.status
        if selection.dial_bucket is not None:
            keep &= self.bucket_code[rows] == selection.dial_bucket
        if selection.sortby in (1, 2):
            stamps = (self.created_s if selection.sortby == 1 else self.updated_s)[rows]
            if selection.from_s is not None:
                keep &= stamps >= selection.from_s
            if selection.to_s is not None:
                keep &= stamps <= selection.to_s
        rows = rows[keep]
        if selection.disposition is not None:
            values = pc.take(self._disposition, pa.array(rows))
            matches = pc.fill_null(pc.equal(values, selection.disposition), False)
            rows = rows[matches.to_numpy(zero_copy_only=False)]
        return self.table.take(pa.array(rows, pa.int64()))

    def delivered(self, selection: Selection, now_s: int, config: SandboxConfig) -> pa.Table:
        """`select`'s records written with config's field names and dates (the filters always
        work on the data, whatever the style)."""
        table = self.select(selection, now_s)
        return styled(table, config.field_style, config.date_style, config.timezone)

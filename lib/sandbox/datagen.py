"""Deterministic, vectorised demo lead data in CloudAgent's wire format.

`generate_campaign(name, n_leads, seed, now)` returns a pyarrow Table with the wire field names
(docs/ARCHITECTURE.md, "Lead records on the wire"). No per-lead Python loop: every column is
drawn with numpy and turned into strings with pyarrow dictionary decoding, so millions of leads
take seconds. The same (name, n_leads, seed, now) always gives the same table.

The table holds every VERSION of a lead: one row per lead as of `now`, plus a second row for
about 10% of leads whose later redial outcome becomes visible over the hours after `now`
(UpdatedDate > now). A server shows, at its current time T, each lead's newest row with
UpdatedDate <= T, so incremental sync (sortby=2 from a watermark) finds new data as time passes.

Times are the account's local wall clock (IST by default), written without a zone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lib.config import DEFAULT_TIMEZONE

WIRE_FIELDS: tuple[str, ...] = (
    "LeadID", "PhoneNumber", "Name", "CampaignName", "Status", "DialStatus", "Disposition",
    "Comments", "AgentID", "AgentName", "Attempts", "Priority", "UCID", "CreatedDate",
    "UpdatedDate", "CallDuration",
)  # fmt: skip
INT_FIELDS = ("Attempts", "Priority")
# Few distinct values: dictionary-encoded (DuckDB reads them as VARCHAR, to_pylist gives str).
DICTIONARY_FIELDS = (
    "Name", "CampaignName", "Status", "DialStatus", "Disposition", "Comments", "AgentID",
    "AgentName",
)  # fmt: skip
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())


def _field_type(name: str) -> pa.DataType:
    if name in INT_FIELDS:
        return pa.int32()
    return _DICTIONARY if name in DICTIONARY_FIELDS else pa.string()


SCHEMA = pa.schema([(name, _field_type(name)) for name in WIRE_FIELDS])

# Raw dial outcomes other than "answered", with their relative weights.
_UNANSWERED = (
    ("not_answered", 0.40), ("ring", 0.12), ("user_disconnected", 0.10), ("Busy", 0.14),
    ("Congestion", 0.06), ("invalid_number", 0.10), ("exception", 0.08),
)  # fmt: skip
_DIAL_VOCAB = ("answered", *(name for name, _ in _UNANSWERED), "NotDialed", "")
_ANSWERED, _NOT_DIALED, _EMPTY = 0, len(_DIAL_VOCAB) - 2, len(_DIAL_VOCAB) - 1
_INVALID_NUMBER = _DIAL_VOCAB.index("invalid_number")
_STATUS_VOCAB = ("Success", "Fail", "Pending", "")
_SUCCESS, _FAIL, _PENDING, _NO_STATUS = range(4)

_DISPOSITION_POOL = (
    "Interested", "Call Back", "Not Interested", "Wrong Number", "DNC", "Sale Closed",
    "Already Customer", "Language Barrier", "Follow Up", "Payment Promised", "Busy - Call Later",
    "Feedback Given", "Escalated",
)  # fmt: skip
_WRAP_UP = ("Wrap up time exceeded :30", "Wrap up time exceeded :45", "Wrap up time exceeded :60")
_COMMENTS = (
    "", "customer asked for details on email", "call back after 6 pm", "spoke to family member",
    "requested Hindi speaking agent", "price concern", "will visit branch",
    "interested, send quote",
)  # fmt: skip
_COMMENT_WEIGHTS = (0.7, *([0.3 / (len(_COMMENTS) - 1)] * (len(_COMMENTS) - 1)))
_FIRST_NAMES = (
    "Aarav", "Vivaan", "Aditya", "Vihaan", "Arjun", "Sai", "Reyansh", "Krishna", "Ishaan",
    "Rohan", "Rahul", "Amit", "Suresh", "Ramesh", "Vikram", "Anil", "Sanjay", "Manoj", "Deepak",
    "Karthik", "Pranav", "Harsh", "Nikhil", "Gaurav", "Abdul", "Imran", "Joseph", "Gurpreet",
    "Ananya", "Diya", "Aadhya", "Saanvi", "Priya", "Pooja", "Neha", "Sneha", "Kavya", "Anjali",
    "Divya", "Lakshmi", "Meera", "Sunita", "Rekha", "Swati", "Shreya", "Nisha", "Fatima",
    "Ayesha", "Mary", "Harpreet", "Keerthi", "Bhavana", "Ritu", "Tanvi", "Isha", "Jyoti",
)  # fmt: skip
_LAST_NAMES = (
    "Sharma", "Verma", "Gupta", "Singh", "Kumar", "Patel", "Shah", "Mehta", "Reddy", "Rao",
    "Naidu", "Iyer", "Iyengar", "Nair", "Menon", "Pillai", "Das", "Bose", "Chatterjee",
    "Banerjee", "Mukherjee", "Ghosh", "Joshi", "Kulkarni", "Deshpande", "Patil", "Jadhav",
    "Khan", "Shaikh", "Ansari", "D'Souza", "Fernandes", "Gill", "Sandhu", "Yadav", "Mishra",
    "Pandey", "Tiwari", "Chauhan", "Agarwal",
)  # fmt: skip

_FULL_NAMES = tuple(f"{first} {last}" for first in _FIRST_NAMES for last in _LAST_NAMES)

# Hour-of-day weights for call-centre activity (IST): quiet nights, peaks at 11:00 and 16:00.
_HOUR_WEIGHTS = np.array(
    [0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.15, 0.45, 0.9, 1.2, 1.35,
     1.2, 0.95, 1.0, 1.2, 1.35, 1.2, 1.0, 0.8, 0.35, 0.15, 0.08, 0.04]
)  # fmt: skip
_WEEKDAY_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 0.95, 0.55, 0.25])  # Mon..Sun
_HISTORY_DAYS = 42  # CreatedDate spread over the past ~6 weeks
DAY_S = 86_400
EPOCH = datetime(1970, 1, 1)  # local seconds and day numbers count from it (no zone)


def stable_hash(text: str) -> int:
    """A process-independent 64-bit hash (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


@dataclass(frozen=True)
class CampaignProfile:
    """What makes one campaign look different from another; depends on the name only."""

    answer_rate: float  # share of dialled leads whose last attempt was answered
    never_dialled: float  # share of leads not dialled yet
    max_tries: int
    dispositions: tuple[str, ...]
    disposition_weights: tuple[float, ...]
    agents: tuple[tuple[str, str], ...]  # (AgentID, AgentName)
    lead_id_base: int


def _agent_id(first: str, last: str, number: int) -> str:
    surname = last.lower().replace("'", "")
    return f"{first.lower()}_{surname}{number:02d}"


def campaign_profile(name: str) -> CampaignProfile:
    rng = np.random.default_rng([stable_hash(name), 1])
    picked = rng.choice(len(_DISPOSITION_POOL), size=int(rng.integers(5, 9)), replace=False)
    dispositions = (*(_DISPOSITION_POOL[i] for i in sorted(picked)), _WRAP_UP[rng.integers(0, 3)])
    weights = rng.dirichlet(np.full(len(dispositions), 2.0))
    weights[-1] = min(weights[-1], 0.06)  # wrap-up timeouts are a minority
    n_agents = int(rng.integers(8, 21))
    picked_names = rng.choice(len(_FIRST_NAMES) * len(_LAST_NAMES), size=n_agents, replace=False)
    agents = tuple(
        (
            _agent_id(
                _FIRST_NAMES[i // len(_LAST_NAMES)], _LAST_NAMES[i % len(_LAST_NAMES)], k + 1
            ),
            _FULL_NAMES[i],
        )
        for k, i in enumerate(picked_names.tolist())
    )
    return CampaignProfile(
        answer_rate=float(rng.uniform(0.20, 0.45)),
        never_dialled=float(rng.uniform(0.05, 0.15)),
        max_tries=int(rng.integers(3, 6)),
        dispositions=dispositions,
        disposition_weights=tuple(float(w) for w in weights / weights.sum()),
        agents=agents,
        lead_id_base=int(rng.integers(1, 90)) * 1_000_000,
    )


_VOCABULARIES: dict[tuple[str, ...], pa.Array] = {}


def _vocabulary(values) -> pa.Array:
    """One shared Arrow array per vocabulary, so every chunk has the very same dictionary."""
    key = tuple(values)
    array = _VOCABULARIES.get(key)
    if array is None:
        if len(set(key)) != len(key):
            raise ValueError("a dictionary vocabulary must not repeat values")
        if len(_VOCABULARIES) > 256:
            _VOCABULARIES.clear()
        array = _VOCABULARIES[key] = pa.array(key, pa.string())
    return array


def _decode(codes: np.ndarray, vocabulary) -> pa.Array:
    """Codes -> a dictionary-encoded string column (no per-value copy of the strings)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32, copy=False)), _vocabulary(vocabulary)
    )


_CLOCK_TEXT: np.ndarray | None = None


def clock_table() -> np.ndarray:
    """All 86,400 b"HH:MM:SS" values, indexed by second of the day."""
    global _CLOCK_TEXT
    if _CLOCK_TEXT is None:
        _CLOCK_TEXT = np.array(
            [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY_S)], dtype="S8"
        )
    return _CLOCK_TEXT


def _fixed_width(records: np.ndarray) -> pa.Array:
    """A string array over a contiguous numpy array of fixed-width byte records (no copy)."""
    n, width = len(records), records.dtype.itemsize
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = pa.py_buffer(np.ascontiguousarray(records).view(np.uint8))
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), data])


def joined_text(*parts: np.ndarray) -> pa.Array:
    """Row-wise concatenation of fixed-width byte columns ("S<n>", every value n bytes long) as
    one string array: the dates are assembled this way, several times faster than strftime."""
    out = np.empty(len(parts[0]), dtype=[(f"p{i}", part.dtype) for i, part in enumerate(parts)])
    for i, part in enumerate(parts):
        out[f"p{i}"] = part
    return _fixed_width(out)


def per_key(keys: np.ndarray, value: Callable[[int], object], dtype) -> np.ndarray:
    """value(key) for every row, computed once per key from the smallest key to the largest
    (days or hours of a few weeks: hundreds of calls, then one lookup per row)."""
    first = int(keys.min())
    table = np.array([value(first + k) for k in range(int(keys.max()) - first + 1)], dtype=dtype)
    return table[keys - first]


def day_text(days: np.ndarray, day_format: str) -> np.ndarray:
    """Day numbers (since 1970-01-01) -> fixed-width bytes in `day_format` (numeric fields only:
    every value must have the same length)."""
    return per_key(days, lambda day: (EPOCH + timedelta(days=day)).strftime(day_format), "S")


def format_local(seconds: np.ndarray) -> pa.Array:
    """Local epoch seconds -> "YYYY-MM-DD HH:MM:SS"."""
    if len(seconds) == 0:
        return pa.array([], pa.string())
    days = seconds // DAY_S
    return joined_text(day_text(days, "%Y-%m-%d "), clock_table()[seconds - days * DAY_S])


def format_duration(seconds: np.ndarray) -> pa.Array:
    """Seconds -> "HH:MM:SS" (durations under a day)."""
    return _fixed_width(clock_table()[np.clip(seconds, 0, DAY_S - 1)])


def local_naive(now: datetime | None, timezone: str) -> datetime:
    """`now` as the account's naive local time (naive input is taken as already local)."""
    if now is None:
        now = datetime.now(UTC)
    if now.tzinfo is not None and now.utcoffset() is not None:
        now = now.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    return now.replace(microsecond=0)


def local_seconds(value: datetime) -> int:
    """Naive local datetime -> seconds since 1970-01-01 00:00 on the same wall clock."""
    return int((value - EPOCH).total_seconds())


_BINS = 1 << 16


def _categorical(rng: np.random.Generator, weights, n: int) -> np.ndarray:
    """n draws of category indices with the given weights (a 65,536-bin lookup: much faster
    than Generator.choice with p=..., and exact to 1/65,536, plenty for demo data)."""
    w = np.asarray(weights, dtype=np.float64)
    cdf = np.cumsum(w / w.sum())
    table = np.searchsorted(cdf, (np.arange(_BINS) + 0.5) / _BINS, side="right")
    table = np.minimum(table, len(w) - 1).astype(np.int16)
    return table[rng.integers(0, _BINS, size=n, dtype=np.uint16)]


def _chance(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    return rng.random(n, dtype=np.float32) < p


def _business_hours(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Moves times outside 09:00-20:00 into the next business window (call-centre hours)."""
    second_of_day = t % DAY_S
    outside = np.flatnonzero((second_of_day < 9 * 3600) | (second_of_day >= 20 * 3600))
    moved = t[outside] - second_of_day[outside] + 9 * 3600
    moved += np.where(second_of_day[outside] >= 20 * 3600, DAY_S, 0)
    moved += rng.integers(0, 3 * 3600, size=len(outside))
    t = t.copy()
    t[outside] = moved
    return t


def _created_times(rng: np.random.Generator, n: int, now_s: int) -> np.ndarray:
    """Upload times over the past ~6 weeks, weekdays busier, business-hour peaks."""
    today = now_s // DAY_S
    day_offsets = np.arange(_HISTORY_DAYS)
    weekday = (today - day_offsets + 3) % 7  # 1970-01-01 was a Thursday (3 with Monday = 0)
    days = today - _categorical(rng, _WEEKDAY_WEIGHTS[weekday], n).astype(np.int64)
    hours = _categorical(rng, _HOUR_WEIGHTS, n).astype(np.int64)
    t = days * DAY_S + hours * 3600 + rng.integers(0, 3600, size=n)
    return np.where(t > now_s, t - 7 * DAY_S, t)  # never in the future; keeps the weekday


def _outcomes(
    rng: np.random.Generator,
    profile: CampaignProfile,
    dialled: np.ndarray,
    min_attempts: np.ndarray,
    avoid: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Dial status, status, attempts, disposition, agent and duration codes for each lead.

    `avoid`: a previous dial outcome per lead that must not repeat (answered <-> not answered).
    """
    n = len(dialled)
    unanswered = 1 + _categorical(rng, [w for _, w in _UNANSWERED], n).astype(np.int8)
    answered = _chance(rng, profile.answer_rate, n)
    dial = np.where(answered, np.int8(_ANSWERED), unanswered)
    if avoid is not None:
        repeat = dial == avoid
        dial[repeat] = np.where(avoid[repeat] == _ANSWERED, 1, _ANSWERED)
        answered = dial == _ANSWERED
    never = np.flatnonzero(~dialled)
    dial[never] = np.where(_chance(rng, 0.5, len(never)), _NOT_DIALED, _EMPTY)
    answered &= dialled

    tries = profile.max_tries
    attempts = rng.integers(1, tries + 1, size=n, dtype=np.int8)
    calls = np.flatnonzero(answered)
    k = len(calls)
    attempts[calls] = np.minimum(rng.geometric(0.55, size=k), tries)  # answered early, mostly
    invalid = dial == _INVALID_NUMBER
    attempts[invalid] = 1
    attempts = np.maximum(attempts, min_attempts.astype(np.int8, copy=False))
    attempts = np.where(dialled, np.minimum(attempts, 5), 0).astype(np.int8)

    status = np.where((attempts >= tries) | invalid, np.int8(_FAIL), np.int8(_PENDING))
    status[calls] = np.where(_chance(rng, 0.92, k), _SUCCESS, _PENDING)
    status[never] = np.where(_chance(rng, 0.6, len(never)), _PENDING, _NO_STATUS)

    # Only answered calls have a disposition, an agent, comments and a duration.
    disposition = np.zeros(n, dtype=np.int16)  # 0 = none
    disposition[calls] = 1 + _categorical(rng, profile.disposition_weights, k)
    agent = np.zeros(n, dtype=np.int16)
    agent[calls] = 1 + rng.integers(0, len(profile.agents), size=k, dtype=np.int16)
    comment = np.zeros(n, dtype=np.int16)
    comment[calls] = _categorical(rng, _COMMENT_WEIGHTS, k)
    duration = np.zeros(n, dtype=np.int32)
    duration[calls] = np.clip(rng.lognormal(np.log(140), 0.8, size=k), 5, 3600)
    ucid = np.zeros(n, dtype=np.int64)
    ucid[dialled] = rng.integers(10**15, 10**16, size=int(dialled.sum()), dtype=np.int64)
    return {
        "dial": dial,
        "status": status,
        "attempts": attempts.astype(np.int32),
        "disposition": disposition,
        "agent": agent,
        "comment": comment,
        "duration": duration,
        "ucid": ucid,
    }


def _columns(
    profile: CampaignProfile,
    name: str,
    lead_ids: pa.Array,
    phones: pa.Array,
    names: pa.Array,
    priority: np.ndarray,
    created: np.ndarray,
    updated: np.ndarray,
    out: dict[str, np.ndarray],
) -> dict[str, pa.Array]:
    n = len(created)
    ucid_text = pc.cast(pa.array(out["ucid"]), pa.string())
    ucid_text = pc.if_else(pa.array(out["ucid"] == 0), "", ucid_text)
    return {
        "LeadID": lead_ids,
        "PhoneNumber": phones,
        "Name": names,
        "CampaignName": _decode(np.zeros(n, dtype=np.int32), [name]),
        "Status": _decode(out["status"], _STATUS_VOCAB),
        "DialStatus": _decode(out["dial"], _DIAL_VOCAB),
        "Disposition": _decode(out["disposition"], ("", *profile.dispositions)),
        "Comments": _decode(out["comment"], _COMMENTS),
        "AgentID": _decode(out["agent"], ("", *(a for a, _ in profile.agents))),
        "AgentName": _decode(out["agent"], ("", *(b for _, b in profile.agents))),
        "Attempts": pa.array(out["attempts"], pa.int32()),
        "Priority": pa.array(priority.astype(np.int32), pa.int32()),
        "UCID": ucid_text,
        "CreatedDate": format_local(created),
        "UpdatedDate": format_local(updated),
        "CallDuration": format_duration(out["duration"]),
    }


def generate_campaign(
    name: str,
    n_leads: int,
    seed: int = 0,
    now: datetime | None = None,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    update_fraction: float = 0.10,
    update_horizon_h: float = 6.0,
) -> pa.Table:
    """Every version of `n_leads` leads of campaign `name` (see the module docstring).

    `now` (aware, or naive = already local) is the data's present: first versions have
    UpdatedDate <= now; second versions (about `update_fraction` of leads) have UpdatedDate in
    (now, now + update_horizon_h]. Rows are in LeadID order, first versions before second ones.
    """
    if n_leads < 0:
        raise ValueError("n_leads must not be negative")
    profile = campaign_profile(name)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, stable_hash(name) & 0xFFFFFFFF, n_leads])
    now_s = local_seconds(local_naive(now, timezone))
    n = n_leads

    lead_number = profile.lead_id_base + np.arange(1, n + 1, dtype=np.int64)
    lead_ids = pc.cast(pa.array(lead_number), pa.string())
    phones = pc.cast(pa.array(rng.integers(6_000_000_000, 10_000_000_000, size=n)), pa.string())
    names = _decode(rng.integers(0, len(_FULL_NAMES), size=n), _FULL_NAMES)
    priority = rng.choice(np.arange(1, 6), size=n, p=[0.35, 0.3, 0.2, 0.1, 0.05])
    created = _created_times(rng, n, now_s)
    dialled = rng.random(n) >= profile.never_dialled
    first = _outcomes(rng, profile, dialled, np.zeros(n, dtype=np.int64))

    # First version's last update: hours to days after upload, in calling hours, not after now.
    delay = rng.exponential(8 * 3600, size=n).astype(np.int64) + rng.integers(60, 1800, size=n)
    updated = _business_hours(rng, created + delay)
    late = updated > now_s
    fallback = created + ((now_s - created) * rng.random(n)).astype(np.int64)
    updated = np.where(late, fallback, updated)
    updated = np.where(dialled, np.maximum(updated, created), created)

    columns = _columns(profile, name, lead_ids, phones, names, priority, created, updated, first)
    table = pa.table(columns, schema=SCHEMA)

    # Second versions: a redial after `now` with a different outcome.
    again = np.flatnonzero(rng.random(n) < update_fraction)
    if len(again) == 0:
        return table
    m = len(again)
    second = _outcomes(
        rng,
        profile,
        np.ones(m, dtype=bool),
        first["attempts"][again] + 1,
        avoid=first["dial"][again],
    )
    horizon = max(60, int(update_horizon_h * 3600))
    later = now_s + rng.integers(60, horizon + 1, size=m)
    index = pa.array(again)
    columns2 = _columns(
        profile,
        name,
        pc.take(lead_ids, index),
        pc.take(phones, index),
        pc.take(names, index),
        priority[again],
        created[again],
        later,
        second,
    )
    return pa.concat_tables([table, pa.table(columns2, schema=SCHEMA)])

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

WIRE_FIELDS: tuple[str, ...] = (
    "LeadID", "PhoneNumber", "Name", "CampaignName", "Status", "DialStatus", "Disposition",
    "Comments", "AgentID", "AgentName", "Attempts", "Priority", "UCID", "CreatedDate",
    "UpdatedDate", "CallDuration",
)  # fmt: skip
INT_FIELDS = ("Attempts", "Priority")

SCHEMA = pa.schema(
    [(name, pa.int32() if name in INT_FIELDS else pa.string()) for name in WIRE_FIELDS]
)

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
    "", "", "", "customer asked for details on email", "call back after 6 pm",
    "spoke to family member", "requested Hindi speaking agent", "price concern",
    "will visit branch", "interested, send quote",
)  # fmt: skip
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
_DAY = 86_400


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
    first = rng.choice(len(_FIRST_NAMES), size=n_agents)
    last = rng.choice(len(_LAST_NAMES), size=n_agents)
    agents = tuple(
        (
            _agent_id(_FIRST_NAMES[f], _LAST_NAMES[g], k + 1),
            f"{_FIRST_NAMES[f]} {_LAST_NAMES[g]}",
        )
        for k, (f, g) in enumerate(zip(first, last, strict=True))
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


def _decode(codes: np.ndarray, vocabulary) -> pa.Array:
    """Vectorised code -> string (a take from the vocabulary; 5x faster than a dict cast)."""
    return pa.array(list(vocabulary), pa.string()).take(codes.astype(np.int32, copy=False))


_CLOCK_STRINGS: pa.Array | None = None


def _clock_strings() -> pa.Array:
    """All 86,400 "HH:MM:SS" strings, indexed by second of the day."""
    global _CLOCK_STRINGS
    if _CLOCK_STRINGS is None:
        seconds = np.arange(_DAY)
        _CLOCK_STRINGS = pa.array(
            [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in seconds.tolist()]
        )
    return _CLOCK_STRINGS


def _clock_text(seconds_of_day: np.ndarray) -> pa.Array:
    return pc.take(_clock_strings(), pa.array(seconds_of_day.astype(np.int32, copy=False)))


def format_local(seconds: np.ndarray) -> pa.Array:
    """Local epoch seconds -> "YYYY-MM-DD HH:MM:SS" (far faster than strftime per value)."""
    days = seconds // _DAY
    first = int(days.min()) if len(days) else 0
    span = int(days.max()) - first + 1 if len(days) else 1
    day_names = [
        (datetime(1970, 1, 1) + timedelta(days=first + k)).strftime("%Y-%m-%d ")
        for k in range(span)
    ]
    dates = _decode(days - first, day_names)
    return pc.binary_join_element_wise(dates, _clock_text(seconds - days * _DAY), "")


def format_duration(seconds: np.ndarray) -> pa.Array:
    return _clock_text(np.clip(seconds, 0, _DAY - 1))


def local_naive(now: datetime | None, timezone: str) -> datetime:
    """`now` as the account's naive local time (naive input is taken as already local)."""
    if now is None:
        now = datetime.now(UTC)
    if now.tzinfo is not None and now.utcoffset() is not None:
        now = now.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    return now.replace(microsecond=0)


def local_seconds(value: datetime) -> int:
    """Naive local datetime -> seconds since 1970-01-01 00:00 on the same wall clock."""
    return int((value - datetime(1970, 1, 1)).total_seconds())


def _business_hours(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Moves times outside 09:00-20:00 into the next business window (call-centre hours)."""
    day = t // _DAY
    hour = (t % _DAY) // 3600
    early = hour < 9
    late = hour >= 20
    jitter = rng.integers(0, 3 * 3600, size=len(t))
    t = np.where(early, day * _DAY + 9 * 3600 + jitter, t)
    return np.where(late, (day + 1) * _DAY + 9 * 3600 + jitter, t)


def _created_times(rng: np.random.Generator, n: int, now_s: int) -> np.ndarray:
    """Upload times over the past ~6 weeks, weekdays busier, business-hour peaks."""
    today = now_s // _DAY
    day_offsets = np.arange(_HISTORY_DAYS)
    weekday = (today - day_offsets + 3) % 7  # 1970-01-01 was a Thursday (3 with Monday = 0)
    day_weights = _WEEKDAY_WEIGHTS[weekday]
    days = today - rng.choice(day_offsets, size=n, p=day_weights / day_weights.sum())
    hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    t = days * _DAY + hours * 3600 + rng.integers(0, 3600, size=n)
    return np.where(t > now_s, t - 7 * _DAY, t)  # never in the future; keeps the weekday


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
    weights = np.array([w for _, w in _UNANSWERED])
    unanswered = 1 + rng.choice(len(_UNANSWERED), size=n, p=weights / weights.sum())
    answered = rng.random(n) < profile.answer_rate
    dial = np.where(answered, _ANSWERED, unanswered)
    if avoid is not None:
        dial = np.where(dial == avoid, np.where(avoid == _ANSWERED, 1, _ANSWERED), dial)
        answered = dial == _ANSWERED
    never = np.where(rng.random(n) < 0.5, _NOT_DIALED, _EMPTY)
    dial = np.where(dialled, dial, never)

    tries = profile.max_tries
    attempts = np.where(
        answered,
        np.minimum(rng.geometric(0.55, size=n), tries),  # answered early, mostly
        rng.integers(1, tries + 1, size=n),
    )
    attempts = np.where(dial == _INVALID_NUMBER, 1, attempts)
    attempts = np.maximum(attempts, min_attempts)
    attempts = np.where(dialled, np.minimum(attempts, 5), 0)

    exhausted = (attempts >= tries) | (dial == _INVALID_NUMBER)
    status = np.where(
        answered,
        np.where(rng.random(n) < 0.92, _SUCCESS, _PENDING),
        np.where(exhausted, _FAIL, _PENDING),
    )
    status = np.where(dialled, status, np.where(rng.random(n) < 0.6, _PENDING, _NO_STATUS)).astype(
        np.int32
    )

    # Only answered calls have a disposition, an agent, comments and a duration.
    calls = np.flatnonzero(dialled & (dial == _ANSWERED))
    k = len(calls)
    disposition = np.zeros(n, dtype=np.int32)  # 0 = none
    disposition[calls] = 1 + rng.choice(
        len(profile.dispositions), size=k, p=np.array(profile.disposition_weights)
    )
    agent = np.zeros(n, dtype=np.int32)
    agent[calls] = 1 + rng.integers(0, len(profile.agents), size=k)
    comment = np.zeros(n, dtype=np.int32)
    comment[calls] = rng.integers(0, len(_COMMENTS), size=k)
    duration = np.zeros(n, dtype=np.int64)
    duration[calls] = np.clip(rng.lognormal(np.log(140), 0.8, size=k), 5, 3600)
    ucid = np.where(dialled, rng.integers(10**15, 10**16, size=n, dtype=np.int64), 0)
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
    timezone: str = "Asia/Kolkata",
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

"""The dashboard's global filters: URL parameters <-> `Filters` -> SQL WHERE with bound parameters.

Public URL parameters (what a shared link carries; values are raw, never display labels):
`campaign` (repeatable), `range` (a preset below), `from`/`to` (YYYY-MM-DD, inclusive calendar
days in the account's time zone, only with `range=custom`), `basis` (`updated`|`created`: which
date the range applies to), `status`, `dialstatus`, `disposition`, `agent` (the agent's name, or
its id when the name is empty; `(no agent)` for none) and `progress` (`PROGRESS_STATES`), each
repeatable.

Everything here is pure (no Streamlit): `parse_query_params` never raises, whatever it is given,
and `where_clause` only ever emits bound parameters, never a value spliced into SQL text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from lib.config import DEFAULT_TIMEZONE
from lib.fields import DIAL_BUCKETS, LEAD_STATUSES
from lib.view.labels import BASIS_LABELS, RANGE_LABELS

# Preset ranges keep their meaning when a link is opened later ("last_7d" = the 7 days ending on
# the day the link is opened); custom ranges are absolute dates.
RANGE_PRESETS: tuple[str, ...] = (
    "today",
    "yesterday",
    "last_7d",
    "last_30d",
    "this_month",
    "last_month",
    "all",
    "custom",
)
DEFAULT_RANGE = "all"
BASES: tuple[str, ...] = ("updated", "created")
BASIS_COLUMNS: dict[str, str] = {"updated": "updated_at", "created": "created_at"}
DEFAULT_BASIS = "updated"

# Lead progress (every lead in exactly one; lib/view/metrics/relation.py PROGRESS_SQL decides).
PROGRESS_STATES: tuple[str, ...] = ("not_dialled", "retrying", "out_of_tries", "success", "failed")
PROGRESS_HELP: dict[str, str] = {
    "not_dialled": "no attempt yet",
    "retrying": "Pending with tries left",
    "out_of_tries": "Pending with the attempts allowed used up",
    "success": "lead status Success",
    "failed": "lead status Failed",
}
NO_AGENT = "(no agent)"  # the agent filter's value for leads with neither name nor id

# The public parameter names, which are also the sidebar widgets' keys.
P_CAMPAIGN, P_RANGE, P_FROM, P_TO = "campaign", "range", "from", "to"
P_BASIS, P_STATUS, P_DIALSTATUS, P_DISPOSITION = "basis", "status", "dialstatus", "disposition"
P_AGENT, P_PROGRESS = "agent", "progress"
PARAM_NAMES: tuple[str, ...] = (
    P_CAMPAIGN,
    P_RANGE,
    P_FROM,
    P_TO,
    P_BASIS,
    P_STATUS,
    P_DIALSTATUS,
    P_DISPOSITION,
    P_AGENT,
    P_PROGRESS,
)

# Defensive limits for hostile links; far above anything a person builds by hand.
MAX_VALUES_PER_PARAM = 200
MAX_VALUE_CHARS = 500
DATE_BOUNDS = (date(1990, 1, 1), date(2200, 12, 31))
_MIN_DATE, _MAX_DATE = DATE_BOUNDS


@dataclass(frozen=True)
class Filters:
    """One validated view of the data. Empty tuples mean "no restriction"."""

    campaigns: tuple[str, ...] = ()
    range: str = DEFAULT_RANGE
    date_from: date | None = None  # only with range == "custom"
    date_to: date | None = None  # inclusive; only with range == "custom"
    basis: str = DEFAULT_BASIS
    statuses: tuple[str, ...] = ()
    dial_buckets: tuple[str, ...] = ()
    dispositions: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    progress: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> Filters:
        return dataclasses.replace(self, **changes)

    @property
    def basis_column(self) -> str:
        return BASIS_COLUMNS[self.basis]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [item for item in value if isinstance(item, str)]
    return []


def shown(value: str, limit: int = 40) -> str:
    """A value quoted for a notice: shortened, control characters made visible."""
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(text)


def _listing(values: Sequence[str], limit: int = 3) -> str:
    parts = [shown(v) for v in values[:limit]]
    if len(values) > limit:
        parts.append(f"and {len(values) - limit} more")
    return ", ".join(parts)


def _parse_date(text: str) -> date | None:
    """An ISO date (YYYY-MM-DD; the other ISO forms Streamlit's date widget reads from a URL are
    accepted too, so the link and the widget always agree) within DATE_BOUNDS."""
    try:
        value = date.fromisoformat(text.strip())
    except ValueError:
        try:
            value = datetime.fromisoformat(text.strip()).date()
        except ValueError:
            return None
    return value if _MIN_DATE <= value <= _MAX_DATE else None


def _clean_values(name: str, raw: Any, notices: list[str]) -> list[str]:
    values = _as_list(raw)
    if len(values) > MAX_VALUES_PER_PARAM:
        notices.append(
            f"The link gives {name} {len(values)} times; only the first "
            f"{MAX_VALUES_PER_PARAM} values were read."
        )
        values = values[:MAX_VALUES_PER_PARAM]
    kept: list[str] = []
    too_long = 0
    for value in values:
        if value == "":
            continue  # `?status=` means "cleared", like Streamlit's own bound widgets
        if len(value) > MAX_VALUE_CHARS or "\x00" in value:
            too_long += 1
            continue
        if value not in kept:
            kept.append(value)
    if too_long:
        notices.append(f"Ignored {too_long} unreadable {name} value(s) (too long or binary).")
    return kept


def _pick_known(
    name: str,
    values: list[str],
    known: Iterable[str] | None,
    notices: list[str],
    *,
    what: str,
) -> tuple[str, ...]:
    if known is None:
        return tuple(values)
    exact = set(known)  # exact, like the bound widgets: the link and the sidebar agree
    kept: list[str] = []
    unknown: list[str] = []
    for value in values:
        if value not in exact:
            unknown.append(value)
        elif value not in kept:
            kept.append(value)
    if unknown:
        notices.append(f"Ignored unknown {what} in the link ({name}=): {_listing(unknown)}.")
    return tuple(kept)


def parse_query_params(
    params: Mapping[str, Any],
    known_campaigns: Iterable[str] | None,
    known_dispositions: Iterable[str] | None,
    today: date,
    known_agents: Iterable[str] | None = None,
) -> tuple[Filters, list[str]]:
    """Validated filters and human-readable notices for everything ignored. Never raises.

    `params` maps a parameter name to its values (a list, or one string). Unknown parameter names
    are left alone (Streamlit and other features have their own). `known_*` = None accepts any
    value. Custom dates must lie within DATE_BOUNDS (the sidebar's date pickers use the same).
    `today` (the account-zone date) is part of the contract for callers; presets are resolved
    later by `date_span`, so a link keeps its meaning whenever it is opened.
    """
    notices: list[str] = []
    try:
        known = (known_campaigns, known_dispositions, known_agents)
        return _parse(params, known, today, notices), notices
    except Exception as exc:  # pragma: no cover - belt and braces: a link must never crash a page
        notices.append(f"The link's filters could not be read ({type(exc).__name__}); reset.")
        return Filters(), notices


def _single(name: str, params: Mapping[str, Any], notices: list[str]) -> str | None:
    values = _clean_values(name, params.get(name), notices)
    return values[-1] if values else None  # like Streamlit: a repeated single value -> the last


def _parse(
    params: Mapping[str, Any],
    known: tuple[Iterable[str] | None, ...],
    today: date,
    notices: list[str],
) -> Filters:
    if not isinstance(params, Mapping):
        return Filters()
    known_campaigns, known_dispositions, known_agents = known
    campaigns = _pick_known(
        P_CAMPAIGN,
        _clean_values(P_CAMPAIGN, params.get(P_CAMPAIGN), notices),
        known_campaigns,
        notices,
        what="campaign(s)",
    )

    range_value = _single(P_RANGE, params, notices)
    if range_value is None:
        range_value = DEFAULT_RANGE
    elif range_value not in RANGE_PRESETS:
        notices.append(
            f"Ignored range {shown(range_value)}: use one of {', '.join(RANGE_PRESETS)}."
        )
        range_value = DEFAULT_RANGE

    date_from = date_to = None
    raw_from, raw_to = _single(P_FROM, params, notices), _single(P_TO, params, notices)
    if raw_from is not None or raw_to is not None:
        if range_value != "custom":
            notices.append("Ignored from/to: they apply only with range=custom.")
        else:
            for label, raw in ((P_FROM, raw_from), (P_TO, raw_to)):
                if raw is None:
                    continue
                parsed = _parse_date(raw)
                if parsed is None:
                    notices.append(
                        f"Ignored {label} {shown(raw)}: expected a date YYYY-MM-DD from "
                        f"{_MIN_DATE} to {_MAX_DATE}."
                    )
                elif label == P_FROM:
                    date_from = parsed
                else:
                    date_to = parsed
            if date_from is not None and date_to is not None and date_from > date_to:
                notices.append(
                    f"Ignored the custom dates: from ({date_from}) is after to ({date_to})."
                )
                date_from = date_to = None

    basis = _single(P_BASIS, params, notices)
    if basis is None:
        basis = DEFAULT_BASIS
    elif basis not in BASES:
        notices.append(f"Ignored basis {shown(basis)}: use updated or created.")
        basis = DEFAULT_BASIS

    statuses = _pick_known(
        P_STATUS,
        _clean_values(P_STATUS, params.get(P_STATUS), notices),
        LEAD_STATUSES,
        notices,
        what="lead status(es)",
    )
    buckets = _pick_known(
        P_DIALSTATUS,
        _clean_values(P_DIALSTATUS, params.get(P_DIALSTATUS), notices),
        DIAL_BUCKETS,
        notices,
        what="dial status(es)",
    )
    dispositions = _pick_known(
        P_DISPOSITION,
        _clean_values(P_DISPOSITION, params.get(P_DISPOSITION), notices),
        known_dispositions,
        notices,
        what="disposition(s)",
    )
    agents = _pick_known(
        P_AGENT,
        _clean_values(P_AGENT, params.get(P_AGENT), notices),
        known_agents,
        notices,
        what="agent(s)",
    )
    progress = _pick_known(
        P_PROGRESS,
        _clean_values(P_PROGRESS, params.get(P_PROGRESS), notices),
        PROGRESS_STATES,
        notices,
        what="progress state(s)",
    )
    del today  # see the docstring: presets are resolved by date_span, not here
    return Filters(
        campaigns=campaigns,
        range=range_value,
        date_from=date_from,
        date_to=date_to,
        basis=basis,
        statuses=statuses,
        dial_buckets=buckets,
        dispositions=dispositions,
        agents=agents,
        progress=progress,
    )


# -- dates -----------------------------------------------------------------------------------


def date_span(filters: Filters, today: date) -> tuple[date | None, date | None] | None:
    """Calendar days [start, end_exclusive) of the range; None = no date restriction.

    One side may be None for a custom range with only `from` or only `to`.
    """
    preset = filters.range
    if preset == "today":
        return today, today + timedelta(days=1)
    if preset == "yesterday":
        return today - timedelta(days=1), today
    if preset == "last_7d":
        return today - timedelta(days=6), today + timedelta(days=1)
    if preset == "last_30d":
        return today - timedelta(days=29), today + timedelta(days=1)
    if preset == "this_month":
        return today.replace(day=1), today + timedelta(days=1)
    if preset == "last_month":
        first_this = today.replace(day=1)
        return (first_this - timedelta(days=1)).replace(day=1), first_this
    if preset == "custom":
        if filters.date_from is None and filters.date_to is None:
            return None
        end = filters.date_to + timedelta(days=1) if filters.date_to is not None else None
        return filters.date_from, end
    return None


def _at_midnight(day: date | None, tz: str) -> datetime | None:
    return None if day is None else datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))


def date_window(
    filters: Filters, today: date, tz: str = DEFAULT_TIMEZONE
) -> tuple[datetime | None, datetime | None] | None:
    """[start, end_exclusive) as aware datetimes at local midnight in `tz`; None = all dates."""
    span = date_span(filters, today)
    if span is None:
        return None
    return _at_midnight(span[0], tz), _at_midnight(span[1], tz)


def previous_span(filters: Filters, today: date) -> tuple[date, date] | None:
    """The period of equal length (in calendar days) just before the range, for deltas."""
    span = date_span(filters, today)
    if span is None or span[0] is None or span[1] is None:
        return None
    length = span[1] - span[0]
    return span[0] - length, span[0]


def previous_filters(filters: Filters, today: date) -> Filters | None:
    """The same filters over the previous period (as an absolute custom range), or None."""
    span = previous_span(filters, today)
    if span is None:
        return None
    return filters.replace(range="custom", date_from=span[0], date_to=span[1] - timedelta(days=1))


def today_in(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


# -- SQL ---------------------------------------------------------------------------------------


def where_clause(
    filters: Filters, today: date, tz: str = DEFAULT_TIMEZONE, *, prefix: str = "f_"
) -> tuple[str, dict[str, Any]]:
    """A SQL condition over the `leads` columns and its named parameters (`$f_...`). With
    agents or progress chosen, the relation must also have the `agent` and `progress` columns
    (lib/view/metrics/relation.py adds them).

    Every value travels as a bound parameter; lists as one LIST parameter with `list_contains`.
    The column names are constants of this module, never user input.
    """
    parts: list[str] = []
    params: dict[str, Any] = {}

    def add(sql: str, name: str, value: Any) -> None:
        key = prefix + name
        parts.append(sql.replace("$?", "$" + key))
        params[key] = value

    if filters.campaigns:
        add("list_contains($?, campaign_name)", "campaigns", list(filters.campaigns))
    window = date_window(filters, today, tz)
    if window is not None:
        column = filters.basis_column
        if window[0] is not None:
            add(f"{column} >= $?", "start", window[0])
        if window[1] is not None:
            add(f"{column} < $?", "end", window[1])
    if filters.statuses:
        add("list_contains($?, lead_status)", "statuses", list(filters.statuses))
    if filters.dial_buckets:
        add("list_contains($?, dial_bucket)", "buckets", list(filters.dial_buckets))
    if filters.dispositions:
        add("list_contains($?, disposition)", "dispositions", list(filters.dispositions))
    if filters.agents:
        add(f"list_contains($?, coalesce(agent, '{NO_AGENT}'))", "agents", list(filters.agents))
    if filters.progress:
        add("list_contains($?, progress)", "progress", list(filters.progress))
    return (" AND ".join(parts) if parts else "TRUE"), params


# -- links and widget state ------------------------------------------------------------------


def to_params(filters: Filters) -> list[tuple[str, str]]:
    """The filters as (name, value) pairs: range and basis always, the rest when set."""
    pairs: list[tuple[str, str]] = [(P_CAMPAIGN, c) for c in filters.campaigns]
    pairs.append((P_RANGE, filters.range))
    if filters.range == "custom":
        if filters.date_from is not None:
            pairs.append((P_FROM, filters.date_from.isoformat()))
        if filters.date_to is not None:
            pairs.append((P_TO, filters.date_to.isoformat()))
    pairs.append((P_BASIS, filters.basis))
    pairs += [(P_STATUS, s) for s in filters.statuses]
    pairs += [(P_DIALSTATUS, b) for b in filters.dial_buckets]
    pairs += [(P_DISPOSITION, d) for d in filters.dispositions]
    pairs += [(P_AGENT, a) for a in filters.agents]
    pairs += [(P_PROGRESS, p) for p in filters.progress]
    return pairs


def to_query_string(filters: Filters) -> str:
    """`campaign=A&range=last_7d&...`, every value percent-encoded (UTF-8)."""
    return urlencode(to_params(filters), quote_via=quote, safe="")


def widget_values(filters: Filters) -> dict[str, Any]:
    """The sidebar widgets' session-state values for these filters (keys = parameter names)."""
    return {
        P_CAMPAIGN: list(filters.campaigns),
        P_RANGE: filters.range,
        P_FROM: filters.date_from,
        P_TO: filters.date_to,
        P_BASIS: filters.basis,
        P_STATUS: list(filters.statuses),
        P_DIALSTATUS: list(filters.dial_buckets),
        P_DISPOSITION: list(filters.dispositions),
        P_AGENT: list(filters.agents),
        P_PROGRESS: list(filters.progress),
    }


def params_from_widgets(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Widget values (as in session state) back to URL-style parameters, for one validation."""
    params: dict[str, list[str]] = {}
    for name in (P_CAMPAIGN, P_STATUS, P_DIALSTATUS, P_DISPOSITION, P_AGENT, P_PROGRESS):
        params[name] = [str(v) for v in (values.get(name) or [])]
    for name in (P_RANGE, P_BASIS):
        value = values.get(name)
        params[name] = [str(value)] if value else []
    for name in (P_FROM, P_TO):
        value = values.get(name)
        params[name] = [value.isoformat()] if isinstance(value, date) else []
    return params


def describe(filters: Filters, today: date) -> str:
    """A one-line human description of the date range, e.g. 'Last 7 days: 2 Jun - 8 Jun 2025'."""
    span = date_span(filters, today)
    label = RANGE_LABELS.get(filters.range, filters.range)
    if span is None:
        return f"{label} (by {BASIS_LABELS[filters.basis].lower()})"

    def fmt(day: date) -> str:
        return f"{day.day} {day:%b %Y}"

    start, end = span
    if start is not None and end is not None:
        last = end - timedelta(days=1)
        days = fmt(start) if last == start else f"{fmt(start)} to {fmt(last)}"
    elif start is not None:
        days = f"from {fmt(start)}"
    else:
        days = f"until {fmt(end - timedelta(days=1))}"  # type: ignore[operator]
    return f"{label}: {days} (by {BASIS_LABELS[filters.basis].lower()})"

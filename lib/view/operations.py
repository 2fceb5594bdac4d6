"""What operators change from the pages, on this process's store and sync engine: the campaigns
to sync, the disposition categories, the dialing policy, the hand-made API request, the field and
value mappings, re-ingest and the connection check. Pages call these instead of
reaching `lib.store` or `lib.cloudagent` themselves (the import rule,
docs/ARCHITECTURE.md)."""

from __future__ import annotations

from datetime import date, datetime, time

import pandas as pd

from lib import connection_check, fields
from lib.cloudagent import (
    ALL_DISPOSITIONS,
    CloudAgentError,
    DialStatusFilter,
    DialStatusRequest,
    LeadStatus,
    SortBy,
)
from lib.server import ingest_options
from lib.services import get_services
from lib.store import catalog, mappings, policy, reingest
from lib.view import access, metrics

CATEGORIES = catalog.CATEGORIES
MAX_CAMPAIGN_NAME = catalog.MAX_CAMPAIGN_NAME

# The hand-made request's choices, in the API's own values.
SORT_CHOICES: dict[SortBy, str] = {
    SortBy.ALL: "0: all data",
    SortBy.CREATED: "1: by created date",
    SortBy.UPDATED: "2: by updated date",
}
STATUS_CHOICES: tuple[LeadStatus, ...] = tuple(LeadStatus)
DIAL_CHOICES: tuple[DialStatusFilter, ...] = tuple(DialStatusFilter)
EVERY_DISPOSITION = ALL_DISPOSITIONS


DialPolicy = policy.DialPolicy
PolicyError = policy.PolicyError
MAX_ATTEMPTS_ALLOWED = policy.MAX_ATTEMPTS_ALLOWED


# -- the campaign catalog ------------------------------------------------------------------------


def enabled_campaigns() -> list[str]:
    return catalog.list_campaigns(get_services().store, enabled_only=True)


def campaign_table() -> pd.DataFrame:
    return catalog.campaign_table(get_services().store)


def add_campaign(name: str) -> bool:
    """Adds a campaign to sync and queues its first refresh; False when it was listed already.
    ValueError (shown as is) for a name CloudAgent cannot have."""
    services = get_services()
    added = catalog.add_campaign(services.store, name)
    if added and services.sync is not None:
        services.sync.request_sync(campaign=name.strip(), trigger="ui")
    return added


def remove_campaign(name: str) -> str:
    """Stops syncing a campaign; says what was done (disabled or removed)."""
    return catalog.remove_campaign(get_services().store, name)


# -- disposition categories ----------------------------------------------------------------------


def disposition_map() -> pd.DataFrame:
    return catalog.disposition_map(get_services().store)


def save_disposition_categories(mapping: dict[str, str]) -> int:
    return catalog.save_disposition_categories(get_services().store, mapping)


def forget_disposition_categories(names: list[str]) -> int:
    return catalog.forget_disposition_categories(get_services().store, names)


# -- the hand-made request -----------------------------------------------------------------------


# -- the dialing policy ------------------------------------------------------------------------


def dial_policy() -> policy.DialPolicy:
    """The calling window and the stale threshold every viewer's pages use."""
    return policy.dial_policy(get_services().store)


def save_dial_policy(window_start: int, window_end: int, stale_days: int) -> None:
    """PolicyError (shown as is) for a window that does not start before it ends, or a
    threshold out of 1-365 days; nothing stored then."""
    chosen = policy.DialPolicy(int(window_start), int(window_end), int(stale_days))
    policy.save_dial_policy(get_services().store, chosen, by=access.signed_in_as())


def attempts_allowed_table() -> pd.DataFrame:
    """Per campaign: the attempts allowed an operator set (empty = inferred) and the highest
    attempts seen, which is used when none is set."""
    store = get_services().store
    with store.cursor() as cursor:
        frame = metrics.attempts_allowed(cursor)
    campaigns = [*catalog.list_campaigns(store), *frame["campaign"]]
    listed = pd.Series(list(dict.fromkeys(campaigns)), dtype="object", name="campaign")
    return (
        listed.to_frame()
        .merge(frame.astype({"campaign": "object"}), on="campaign", how="left")
        .astype({"attempts allowed": "Int64", "highest seen": "Int64"})
    )


def save_attempts_allowed(allowed: dict[str, int | None]) -> None:
    """Sets or clears (None) each campaign's tries; PolicyError naming the campaign at fault."""
    policy.save_attempts_allowed(get_services().store, allowed, by=access.signed_in_as())


def send_manual_request(
    *,
    campaign: str,
    sortby: SortBy,
    from_day: date | None,
    from_time: time,
    to_day: date | None,
    to_time: time,
    status: LeadStatus,
    dial_status: DialStatusFilter,
    disposition: str,
) -> int:
    """Queues one Campaign Dial Status request with exactly these parameters (dates in the
    account's zone); returns its request id. ValueError with the reason when it is invalid."""
    services = get_services()
    if services.sync is None:
        raise ValueError(f"sending needs the sync engine: {services.no_sync_reason}")
    zone = services.settings.zone
    try:
        request = DialStatusRequest(
            campaign_name=campaign or "",
            callback_url="",
            from_date=datetime.combine(from_day, from_time, tzinfo=zone) if from_day else None,
            to_date=datetime.combine(to_day, to_time, tzinfo=zone) if to_day else None,
            sortby=sortby,
            status=status,
            dial_status=dial_status,
            dispositions=disposition or ALL_DISPOSITIONS,
        )
        return services.sync.send_manual(request)
    except CloudAgentError as exc:
        raise ValueError(str(exc)) from None


# -- meeting a real account: field mapping, value mapping, re-ingest, connection check ------------

MAPPING_TARGETS = fields.MAPPING_TARGETS
DIAL_BUCKETS = fields.DIAL_BUCKETS
LEAD_STATUSES = fields.LEAD_STATUSES


def field_mapping_table() -> pd.DataFrame:
    """Every delivered field seen in recent deliveries or mapped by hand, with its column: the
    Settings table (pre-filled from detection; secrets.toml's rows cannot be edited here)."""
    store = get_services().store
    rows = {row["field"]: row for row in mappings.field_mapping_rows(store)}
    with store.cursor() as cursor:
        seen = metrics.seen_fields(cursor)
    table = []
    for name in dict.fromkeys([*seen, *rows]):
        row = rows.get(name)
        if row is not None:
            table.append({"field": name, "column": row["target"], "set in": row["source"]})
        else:
            detected = mappings.suggested_field_mapping([name]).get(name)
            table.append({"field": name, "column": detected or fields.EXTRA_TARGET,
                          "set in": "detected"})  # fmt: skip
    return pd.DataFrame(table, columns=["field", "column", "set in"])


def save_field_mapping(mapping: dict[str, str | None]) -> None:
    """Stores the operators' field mapping (None removes a row); ValueError naming the fields
    or column at fault, nothing stored."""
    mappings.save_field_mapping(get_services().store, mapping, by=access.signed_in_as())


def value_mapping_table() -> pd.DataFrame:
    """Delivered dial status and status values outside the known vocabulary (from recent
    deliveries' reports) and those mapped by hand, with the bucket each counts in."""
    store = get_services().store
    saved = {(r["kind"], r["value"]): r for r in mappings.value_mapping_rows(store)}
    with store.cursor() as cursor:
        seen = metrics.seen_unknown_values(cursor)
    table = []
    for key in dict.fromkeys([*seen, *saved]):
        row = saved.get(key)
        table.append({
            "field": key[0],
            "value": key[1],
            "counted as": row["bucket"] if row else seen[key],
            "set in": "settings" if row else "default",
        })  # fmt: skip
    return pd.DataFrame(table, columns=["field", "value", "counted as", "set in"])


def save_value_mapping(kind: str, mapping: dict[str, str | None]) -> None:
    mappings.save_value_mapping(get_services().store, kind, mapping, by=access.signed_in_as())


def start_reingest(campaign: str | None, since_day: date | None) -> reingest.ReplayProgress:
    """Starts re-parsing the kept deliveries (received since the start of `since_day` in the
    account's zone, or all) with the current mapping, in the background; ValueError while one
    runs."""
    services = get_services()
    zone = services.settings.zone
    since = datetime.combine(since_day, time(0, 0), tzinfo=zone) if since_day else None
    try:
        return reingest.start_replay(
            services.store,
            campaign=campaign or None,
            since=since,
            requested_by=access.signed_in_as(),
            **ingest_options(services.settings),
        )
    except reingest.ReplayRunning as exc:
        raise ValueError(str(exc)) from None


def reingest_progress() -> reingest.ReplayProgress | None:
    return reingest.latest_run(get_services().store)


def start_connection_check(campaign: str) -> connection_check.CheckResult:
    """ValueError when a check runs already or cannot run (no engine, no campaign)."""
    try:
        return connection_check.start_check(get_services(), campaign)
    except connection_check.CheckRunning as exc:
        raise ValueError(str(exc)) from None


def latest_connection_check() -> connection_check.CheckResult | None:
    return connection_check.latest_check()


def delivery_body_for_download(delivery_id: int) -> bytes | None:
    """The raw body with the apiKey and the callback secret removed (operators only)."""
    services = get_services()
    settings = services.settings
    hidden = (settings.cloudagent.api_key, settings.callback_secret)
    with services.store.cursor() as cursor:
        return metrics.redacted_body(cursor, delivery_id, hidden)

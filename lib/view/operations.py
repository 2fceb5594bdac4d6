"""What operators change from the pages, on this process's store and sync engine: the campaigns
to sync, the disposition categories, and the hand-made API request. Pages call these instead of
reaching `lib.store` or `lib.cloudagent` themselves (the import rule,
docs/ARCHITECTURE.md)."""

from __future__ import annotations

from datetime import date, datetime, time

import pandas as pd

from lib.cloudagent import (
    ALL_DISPOSITIONS,
    CloudAgentError,
    DialStatusFilter,
    DialStatusRequest,
    LeadStatus,
    SortBy,
)
from lib.services import get_services
from lib.store import catalog

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
        raise ValueError("sending needs the sync engine (run the server launcher)")
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

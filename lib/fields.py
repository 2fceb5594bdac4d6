"""The lead record vocabulary: CloudAgent field names, their aliases, and the dial-status buckets.

Every module that reads or writes lead fields (sandbox generator, delivery parser, store, metrics)
takes names from here, so one assumption about CloudAgent's field names lives in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LeadField:
    column: str  # column in the DuckDB `leads` table
    api_name: str  # CloudAgent's PascalCase name (assumed house style, cloudagent-api.md)
    aliases: tuple[str, ...] = ()  # other spellings seen in CloudAgent APIs and lead tables


LEAD_FIELDS: tuple[LeadField, ...] = (
    LeadField("lead_id", "LeadID", ("id", "lead_id", "leadid")),
    LeadField("phone_number", "PhoneNumber", ("phone", "phoneno", "mobile", "number")),
    LeadField("name", "Name", ("customername", "leadname")),
    LeadField("campaign_name", "CampaignName", ("campaign",)),
    LeadField("status", "Status", ("leadstatus",)),
    LeadField("dial_status", "DialStatus", ("dialstatus",)),
    LeadField("disposition", "Disposition", ()),
    LeadField("comments", "Comments", ("comment",)),
    LeadField("agent_id", "AgentID", ()),
    LeadField("agent_name", "AgentName", ()),
    LeadField("attempts", "Attempts", ("currenttrail", "tries", "attempt", "dialattempts")),
    LeadField("priority", "Priority", ()),
    LeadField("ucid", "UCID", ()),
    LeadField("call_duration", "CallDuration", ("duration",)),
    LeadField("created_at", "CreatedDate", ("datecreated", "createdat", "createdon", "created")),
    LeadField("updated_at", "UpdatedDate", ("dateupdated", "updatedat", "updatedon", "updated")),
)

# Format of CloudAgent's zone-less timestamps (account local time) and durations.
API_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def name_key(name: str) -> str:
    """Folds `PhoneNumber`, `phoneNumber`, `phone_number` and `Phone-Number` to one key."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_COLUMN_BY_KEY: dict[str, str] = {}
for _field in LEAD_FIELDS:
    for _spelling in (_field.column, _field.api_name, *_field.aliases):
        _COLUMN_BY_KEY.setdefault(name_key(_spelling), _field.column)


def column_for(name: str) -> str | None:
    """The `leads` column a delivered field name maps to, or None for an extra field."""
    return _COLUMN_BY_KEY.get(name_key(name))


# What an operator may map a delivered field to (`[fields]` in secrets.toml, the Settings page):
# the LeadField columns above (names kept stable: operators' settings refer to them), or
# EXTRA_TARGET to keep a field out of every column (it stays in `extra`).
EXTRA_TARGET = "extra"
MAPPING_TARGETS: tuple[str, ...] = (*(f.column for f in LEAD_FIELDS), EXTRA_TARGET)


class FieldMappingError(ValueError):
    """A field mapping that cannot be used; the message names the fields and columns at fault."""


def check_field_mapping(mapping: dict[str, str], where: str = "the field mapping") -> None:
    """Raises FieldMappingError for a target that is no column, or two fields sent to one."""
    claimed: dict[str, str] = {}
    for field_name, target in mapping.items():
        if not str(field_name).strip():
            raise FieldMappingError(f"{where}: a delivered field name is empty")
        if target not in MAPPING_TARGETS:
            raise FieldMappingError(
                f"{where}: {field_name!r} is mapped to {target!r}, which is not a dashboard "
                f"column (one of {', '.join(MAPPING_TARGETS)})"
            )
        if target == EXTRA_TARGET:
            continue
        if target in claimed:
            raise FieldMappingError(
                f"{where}: {claimed[target]!r} and {field_name!r} are both mapped to {target!r}; "
                "map one of them elsewhere"
            )
        claimed[target] = field_name


# Dial-status buckets, as the API's `dialstatus` filter groups them, plus never-dialled leads.
DIAL_BUCKETS: tuple[str, ...] = ("answered", "NoAnswer", "user_disconnected", "Fail", "Not dialled")
LEAD_STATUSES: tuple[str, ...] = ("Success", "Fail", "Pending")

_NO_ANSWER_KEYS = (
    "notanswered", "noanswer", "unanswered", "ring", "ringing", "noresponse", "notanswer",
    "ringnoanswer", "ringtimeout",
)  # fmt: skip
_DISCONNECTED_KEYS = ("userdisconnected", "customerdisconnected", "callerdisconnected")
_NOT_DIALLED_KEYS = ("", "notdialed", "notdialled", "new", "none", "null")
_ANSWERED_KEYS = ("answered", "answer", "connected")


_FAIL_KEYS = ("busy", "congestion", "invalidnumber", "exception", "failed", "fail")
_STATUS_KEYS = ("", "success", "successful", "fail", "failed", "failure", "pending")


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def dial_bucket_sql(raw: str) -> str:
    """SQL expression that maps a raw CloudAgent dial status column to its bucket."""
    key = _dial_key(raw)
    return (
        f"CASE WHEN {key} IN ({_sql_list(_NOT_DIALLED_KEYS)}) THEN 'Not dialled' "
        f"WHEN {key} IN ({_sql_list(_ANSWERED_KEYS)}) THEN 'answered' "
        f"WHEN {key} IN ({_sql_list(_NO_ANSWER_KEYS)}) THEN 'NoAnswer' "
        f"WHEN {key} IN ({_sql_list(_DISCONNECTED_KEYS)}) THEN 'user_disconnected' "
        "ELSE 'Fail' END"
    )


def lead_status_sql(raw: str) -> str:
    """SQL expression for the lead status: Success, Fail, or Pending (empty and unknown values)."""
    key = _status_key(raw)
    return (
        f"CASE WHEN {key} IN ('success', 'successful') THEN 'Success' "
        f"WHEN {key} IN ('fail', 'failed', 'failure') THEN 'Fail' ELSE 'Pending' END"
    )


def _dial_key(raw: str) -> str:
    return f"regexp_replace(lower(coalesce({raw}, '')), '[^a-z]', '', 'g')"


def _status_key(raw: str) -> str:
    return f"lower(trim(coalesce({raw}, '')))"


def dial_status_known_sql(raw: str) -> str:
    """SQL: true when a dial status is in the vocabulary (any other value counts as Fail)."""
    known = (*_NOT_DIALLED_KEYS, *_ANSWERED_KEYS, *_NO_ANSWER_KEYS, *_DISCONNECTED_KEYS,
             *_FAIL_KEYS)  # fmt: skip
    return f"({_dial_key(raw)} IN ({_sql_list(known)}))"


def lead_status_known_sql(raw: str) -> str:
    """SQL: true when a status is in the vocabulary (any other value counts as Pending)."""
    return f"({_status_key(raw)} IN ({_sql_list(_STATUS_KEYS)}))"

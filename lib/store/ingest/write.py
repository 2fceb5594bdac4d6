"""Writing the mapped rows into `leads` so that the newest `updated_at` wins.

Both record the lead history (lib/store/events.py): the general write before it overwrites,
the direct one (every lead first seen) after.

Direct write: when the delivery's campaign has no stored leads yet (a first full load), the
mapped rows go into `leads` with a plain INSERT (`leads` has no index to maintain). A record
without campaign or key (a NOT NULL violation), a lead twice in the delivery, or a record of
another campaign (which may be stored) rolls it back to the general write.

General write: the mapped rows go to TEMP TABLE _batch, which is checked (campaign and key
present) and de-duplicated (newest updated_at wins), joined once to the stored leads with the
history's events (`record_changes`, TEMP TABLE _changes: which rows are new, which stored rows
they replace), then written as an UPDATE of the stored leads it is newer than (by rowid) plus an
INSERT of the leads not stored yet: the result of
`INSERT .. ON CONFLICT DO UPDATE .. WHERE excluded.updated_at >= leads.updated_at`, measured
faster here (DuckDB 2 runs ON CONFLICT as a MERGE with an extra hash aggregate). A late, older
delivery never overwrites newer data.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from lib.store.catalog import validate_campaign_name
from lib.store.events import REPLACED_LEADS, WRITTEN_LEADS, record_changes, record_first_loads
from lib.store.ingest.mapping import LEADS_COLUMNS, Source, has_key_field, mapped_select
from lib.store.ingest.phases import Phases
from lib.store.receive import DeliveryRejected, ParsedDelivery
from lib.store.summary import begin_summary_delta

_UPDATE_COLUMNS = tuple(c for c in LEADS_COLUMNS if c not in ("campaign_name", "lead_key"))
# An identical copy of a stored lead (a resent refresh) is not written again: it counts as
# unchanged, and the lead keeps the delivery that brought its state.
_CHANGED = " OR ".join(
    f"b.{c} IS DISTINCT FROM leads.{c}" for c in _UPDATE_COLUMNS if c != "delivery_id"
)


@dataclass
class Loaded:
    rows: int
    per_campaign: list[tuple[str, object]]  # (campaign, newest updated_at) among stored rows
    new: int = 0  # leads not stored before
    updated: int = 0  # stored leads this delivery changed (as new or newer, not identical)
    relation: str = "_batch"  # the delivery's mapped rows, for its report
    written: str = WRITTEN_LEADS  # the states written, for the summary (the general write's)
    recount: bool = False  # the summary recounts its campaigns (begin_summary_delta's answer)

    @property
    def unchanged(self) -> int:
        """Leads of the delivery not written: older than, or identical to, the one stored."""
        return max(0, self.rows - self.new - self.updated)


def restart_transaction(cursor) -> None:
    """Drops everything this transaction did (a failed statement aborts it in DuckDB)."""
    cursor.execute("ROLLBACK")
    cursor.execute("BEGIN")


def write_leads(
    cursor,
    source: Source,
    delivery: ParsedDelivery,
    delivery_id: int,
    phases: Phases,
    summary: bool,
) -> Loaded:
    """Writes the delivery's rows (the direct write when it may, else the general one); with
    `summary`, the general write records what the rows it overwrites counted in the summary."""
    if not source.keys:
        nothing = "(SELECT * FROM leads WHERE FALSE)"
        return Loaded(0, [], relation=nothing, written=nothing)
    if not has_key_field(source.keys, source.mapping):
        raise DeliveryRejected(400, "the records have neither a lead id nor a phone number field")
    select = mapped_select(source, delivery_id, delivery.campaign_name)
    loaded = None
    if _first_load(cursor, delivery.campaign_name):
        loaded = _direct(cursor, select, delivery_id, delivery.campaign_name)
        phases.mark("direct insert" if loaded else "direct insert refused")
    if loaded is None:
        loaded = _general(cursor, select, delivery_id, phases, summary)
    for campaign, _ in loaded.per_campaign:
        _refuse_unusable_campaign(campaign)
    return loaded


def _refuse_unusable_campaign(campaign: str) -> None:
    """A campaign name the dashboard could not list, filter or link to (the rule of the Settings
    page's names: at most 200 characters, no control characters, nothing to strip around it)
    refuses the delivery; the caller's transaction then stores none of it."""
    shown = repr(campaign[:60]) + ("..." if len(campaign) > 60 else "")
    try:
        usable = validate_campaign_name(campaign)
    except ValueError as exc:
        raise DeliveryRejected(400, f"the campaign name {shown} is refused: {exc}") from None
    if usable != campaign:
        raise DeliveryRejected(
            400, f"the campaign name {shown} is refused: it has a tab, line break or other "
            "space around it"
        )  # fmt: skip


def _first_load(cursor, campaign: str | None) -> bool:
    if campaign is None:
        return False
    return not cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM leads WHERE campaign_name = ?)", [campaign]
    ).fetchone()[0]


def _direct(cursor, select: tuple[str, list], delivery_id: int, campaign: str) -> Loaded | None:
    sql, params = select
    columns = ", ".join(LEADS_COLUMNS)
    try:
        rows = cursor.execute(f"INSERT INTO leads ({columns}) {sql}", params).fetchone()[0]
    except duckdb.ConstraintException:
        restart_transaction(cursor)
        return None
    others, repeated = cursor.execute(
        "SELECT count(*) FILTER (WHERE campaign_name <> ?), count(*) - count(DISTINCT lead_key) "
        "FROM leads WHERE delivery_id = ?",
        [campaign, delivery_id],
    ).fetchone()
    if others or repeated:
        restart_transaction(cursor)
        return None
    record_first_loads(cursor, delivery_id)
    per_campaign = cursor.execute(
        "SELECT campaign_name, max(updated_at) FROM leads "
        "WHERE delivery_id = ? GROUP BY campaign_name ORDER BY 1",
        [delivery_id],
    ).fetchall()
    written = f"(SELECT * FROM leads WHERE delivery_id = {int(delivery_id)})"
    return Loaded(rows, per_campaign, new=rows, relation=written, written=written)


def _general(
    cursor, select: tuple[str, list], delivery_id: int, phases: Phases, summary: bool
) -> Loaded:
    sql, params = select
    cursor.execute(f"CREATE TEMP TABLE _batch AS {sql}", params)
    phases.mark("map")
    rows = _check_batch(cursor, phases)
    sets = ", ".join(f"{c} = b.{c}" for c in _UPDATE_COLUMNS)
    columns = ", ".join(LEADS_COLUMNS)
    newer = (
        "leads.campaign_name = b.campaign_name AND leads.lead_key = b.lead_key "
        "AND (b.updated_at >= leads.updated_at OR leads.updated_at IS NULL) "
        f"AND ({_CHANGED})"
    )
    # The history, before the overwrite; its staged rows (_changes) name the leads to write.
    record_changes(cursor, "_batch", newer, delivery_id)
    # What the rows about to be overwritten counted in the summary (or: recount afterwards).
    recount = summary and begin_summary_delta(cursor, REPLACED_LEADS)
    updated = cursor.execute(
        f"UPDATE leads SET {sets} FROM (SELECT c._l_row, b.* FROM _changes AS c "
        "JOIN _batch AS b ON b.rowid = c._b_row WHERE c._l_row IS NOT NULL) AS b "
        "WHERE leads.rowid = b._l_row"
    ).fetchone()
    new = cursor.execute(
        f"INSERT INTO leads ({columns}) SELECT {columns} FROM _batch AS b WHERE b.rowid IN "
        "(SELECT _b_row FROM _changes WHERE _l_row IS NULL)"
    ).fetchone()
    phases.mark("update+insert")
    per_campaign = cursor.execute(
        "SELECT campaign_name, max(updated_at) FROM _batch GROUP BY campaign_name ORDER BY 1"
    ).fetchall()
    return Loaded(rows, per_campaign, new=new[0], updated=updated[0], recount=recount)


def _check_batch(cursor, phases: Phases) -> int:
    """Refuses a batch with records lacking a campaign or a key; keeps the newest state of a
    lead delivered twice. Returns the number of distinct leads."""
    total, no_campaign, no_key, distinct = cursor.execute(
        "SELECT count(*), count(*) FILTER (WHERE campaign_name IS NULL), "
        "count(*) FILTER (WHERE lead_key IS NULL), "
        "count(DISTINCT (campaign_name, lead_key)) FROM _batch"
    ).fetchone()
    if no_campaign:
        raise DeliveryRejected(
            400, f"{no_campaign} of {total} records have no campaign name (nor has the delivery)"
        )
    if no_key:
        raise DeliveryRejected(
            400, f"{no_key} of {total} records have neither a lead id nor a phone number"
        )
    if distinct < total:  # the same lead twice in one delivery: its newest state wins
        cursor.execute(
            "CREATE TEMP TABLE _dedup AS SELECT * FROM _batch QUALIFY row_number() OVER "
            "(PARTITION BY campaign_name, lead_key ORDER BY updated_at DESC NULLS LAST) = 1"
        )
        cursor.execute("DROP TABLE _batch")
        cursor.execute("ALTER TABLE _dedup RENAME TO _batch")
    phases.mark("check")
    return distinct

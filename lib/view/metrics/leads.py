"""Lead rows: the Leads page's one page of rows, the exports (CSV, Excel), one lead's full
record; phone numbers masked unless the settings show them. The only queries that return rows."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from lib.fields import API_TIMESTAMP_FORMAT
from lib.store.ingest.records import sql_literal
from lib.store.lead_sql import AGENT_SQL
from lib.view import export, numbers
from lib.view.filters import Filters, where_clause
from lib.view.labels import DIAL_STATUS_LABELS, LEAD_STATUS_LABELS
from lib.view.metrics.relation import fetch_frame, lead_relation, local_today

LEAD_SORTS: dict[str, str] = {
    "Last updated (newest first)": "updated_at DESC NULLS LAST, campaign_name, lead_key",
    "Created (newest first)": "created_at DESC NULLS LAST, campaign_name, lead_key",
    "Most attempts first": "attempts DESC NULLS LAST, updated_at DESC NULLS LAST, lead_key",
    "Name (A to Z)": "name ASC NULLS LAST, campaign_name, lead_key",
}


DEFAULT_SORT = next(iter(LEAD_SORTS))


_DIGITS = "regexp_replace(coalesce(phone_number, ''), '[^0-9]', '', 'g')"


MASKED_PHONE_SQL = (
    f"CASE WHEN phone_number IS NULL THEN NULL WHEN length({_DIGITS}) <= 4 THEN {_DIGITS} "
    f"ELSE repeat('•', length({_DIGITS}) - 4) || right({_DIGITS}, 4) END"
)


def phone_sql(show_phones: bool) -> str:
    return "phone_number" if show_phones else MASKED_PHONE_SQL


def labelled_sql(column: str, labels: Mapping[str, str]) -> str:
    """`column`'s values as the labels people read (lib/view/labels.py), in SQL; a value with
    no label stays itself."""
    cases = " ".join(
        f"WHEN {sql_literal(raw)} THEN {sql_literal(text)}" for raw, text in labels.items()
    )
    return f"CASE {column} {cases} ELSE {column} END"


# A lead's statuses on screen: its lead status and dial status by their labels (as the filters
# and charts name them), then the dial status exactly as CloudAgent sent it.
STATUS_COLUMNS_SQL = (
    f'{labelled_sql("lead_status", LEAD_STATUS_LABELS)} AS "Status", '
    f'{labelled_sql("dial_bucket", DIAL_STATUS_LABELS)} AS "Dial status"'
)


def mask_phone(phone: str | None) -> str | None:
    """Python twin of MASKED_PHONE_SQL (for values outside the leads table)."""
    if phone is None:
        return None
    digits = "".join(ch for ch in str(phone) if ch.isdigit() and ch.isascii())
    return digits if len(digits) <= 4 else "•" * (len(digits) - 4) + digits[-4:]


def _search_condition(search: str | None) -> tuple[str, dict[str, Any]]:
    text = (search or "").strip()
    if not text:
        return "TRUE", {}
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    columns = ("phone_number", "name", "comments", "agent_id", "agent_name")
    sql = " OR ".join(f"{c} ILIKE $search ESCAPE '\\'" for c in columns)
    return f"({sql})", {"search": f"%{escaped}%"}


def _lead_rows_sql(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None,
    search: str | None,
    show_phones: bool,
    on_screen: bool = True,
) -> tuple[str, dict[str, Any]]:
    """The lead rows. On screen: statuses by their labels, times typed (the page draws them in
    the account's zone), and the internal key for the record; in the exports: the values as
    stored, times as local-time text, no key."""
    where, params = where_clause(filters, local_today(tz, today), tz)
    condition, search_params = _search_condition(search)
    if on_screen:
        statuses = f'{STATUS_COLUMNS_SQL}, dial_status AS "CloudAgent dial status"'
        times = 'created_at AS "Created", updated_at AS "Updated"'
    else:
        statuses = (
            'lead_status AS "Status", dial_status AS "Dial status", dial_bucket AS "Dial bucket"'
        )
        times = (
            f"strftime(created_at, '{API_TIMESTAMP_FORMAT}') AS \"Created\", "
            f"strftime(updated_at, '{API_TIMESTAMP_FORMAT}') AS \"Updated\""
        )
    sql = f"""
        SELECT campaign_name AS "Campaign", {phone_sql(show_phones)} AS "Phone",
               name AS "Name", {statuses}, disposition AS "Disposition",
               attempts AS "Attempts", {AGENT_SQL} AS "Agent",
               CAST(to_seconds(call_duration_s) AS VARCHAR) AS "Talk time",
               {times}, comments AS "Comments"{", lead_key" if on_screen else ""}
        FROM {lead_relation(cursor, filters)} WHERE {where} AND {condition}
    """
    return sql, {**params, **search_params}


def lead_count(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    search: str | None = None,
) -> int:
    where, params = where_clause(filters, local_today(tz, today), tz)
    condition, search_params = _search_condition(search)
    sql = f"SELECT count(*) FROM {lead_relation(cursor, filters)} WHERE {where} AND {condition}"
    return int(cursor.execute(sql, {**params, **search_params}).fetchone()[0])


def lead_page(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
    sort: str = DEFAULT_SORT,
    show_phones: bool = False,
) -> pd.DataFrame:
    """One page of lead rows (LIMIT/OFFSET in SQL), as the page shows them."""
    sql, params = _lead_rows_sql(cursor, filters, tz, today, search, show_phones)
    order = LEAD_SORTS.get(sort, LEAD_SORTS[DEFAULT_SORT])
    params.update(limit=max(1, int(limit)), offset=max(0, int(offset)))
    return fetch_frame(cursor, f"{sql} ORDER BY {order} LIMIT $limit OFFSET $offset", params)


def _export_sql(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None,
    search: str | None,
    show_phones: bool,
) -> tuple[str, dict[str, Any]]:
    """Every filtered lead row (the exports), in the default order, without the internal key."""
    sql, params = _lead_rows_sql(cursor, filters, tz, today, search, show_phones, on_screen=False)
    return f"{sql} ORDER BY {LEAD_SORTS[DEFAULT_SORT]}", params


def export_csv(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    search: str | None = None,
    show_phones: bool = False,
) -> bytes:
    """Every filtered lead as CSV, streamed by DuckDB with formula-like text neutralised
    (lib/view/export.py)."""
    sql, params = _export_sql(cursor, filters, tz, today, search, show_phones)
    return export.csv_bytes(cursor, sql, params)


EXCEL_MAX_ROWS = 1_048_575  # one header row + this many rows is Excel's sheet limit
_EXCEL_BATCH = 10_000


def excel_notice(
    total: int, max_rows: int = EXCEL_MAX_ROWS, number_format: str = numbers.DEFAULT_FORMAT
) -> str | None:
    """What the Excel export leaves out, in words (counts in `number_format`); None when every
    lead fits."""
    if total <= max_rows:
        return None

    def n(value: int) -> str:
        return numbers.count(value, number_format)

    return (
        f"Excel holds {n(max_rows)} rows: the Excel file leaves out {n(total - max_rows)} of "
        f"{n(total)} leads (the last in the export's order). The CSV export has them all."
    )


def export_xlsx(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    tz: str,
    today: date | None = None,
    *,
    search: str | None = None,
    show_phones: bool = False,
    max_rows: int = EXCEL_MAX_ROWS,
) -> bytes:
    """The filtered leads as an .xlsx workbook, at most `max_rows` of them (Excel's limit; a
    "Note" sheet says how many were left out). Rows are read in batches and xlsxwriter writes
    them in constant memory; cells are typed text and numbers, never formulas."""
    import xlsxwriter

    sql, params = _export_sql(cursor, filters, tz, today, search, show_phones)
    total = int(cursor.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])
    with tempfile.TemporaryDirectory(prefix="dialstatus-export-") as folder:
        path = Path(folder) / "leads.xlsx"
        workbook = xlsxwriter.Workbook(
            str(path),
            {"constant_memory": True, "strings_to_urls": False, "strings_to_formulas": False},
        )
        worksheet = workbook.add_worksheet("Leads")
        result = cursor.execute(f"{sql} LIMIT $excel_rows", {**params, "excel_rows": max_rows})
        worksheet.write_row(
            0, 0, [d[0] for d in result.description], workbook.add_format({"bold": True})
        )
        worksheet.freeze_panes(1, 0)
        index = 1
        while batch := result.fetchmany(_EXCEL_BATCH):
            for values in batch:
                worksheet.write_row(index, 0, values)
                index += 1
        notice = excel_notice(total, max_rows)
        if notice is not None:
            workbook.add_worksheet("Note").write(0, 0, notice)
        workbook.close()
        return path.read_bytes()


_SENSITIVE_EXTRA = ("phone", "mobile", "msisdn", "number", "contact")


def lead_record(
    cursor: duckdb.DuckDBPyConnection, campaign: str, lead_key: str, show_phones: bool = False
) -> dict[str, Any] | None:
    """One lead's full stored record (every column, times typed; `extra` decoded), phones masked
    unless shown."""
    cursor.execute(
        f"SELECT * REPLACE ({phone_sql(show_phones)} AS phone_number) FROM leads "
        "WHERE campaign_name = $c AND lead_key = $k",
        {"c": campaign, "k": lead_key},
    )
    row = cursor.fetchone()
    if row is None:
        return None
    names = [d[0] for d in cursor.description]
    record = dict(zip(names, row, strict=True))
    if not show_phones and record.get("lead_key") and record.get("lead_id") is None:
        # Without a lead id the key is "phone|created": mask its phone part.
        phone, _, rest = str(record["lead_key"]).partition("|")
        record["lead_key"] = f"{mask_phone(phone)}|{rest}" if rest else mask_phone(phone)
    extra = record.get("extra")
    if isinstance(extra, str):
        with contextlib.suppress(ValueError):
            extra = json.loads(extra)
    if isinstance(extra, dict) and not show_phones:
        extra = {
            k: (mask_phone(str(v)) if any(s in k.lower() for s in _SENSITIVE_EXTRA) and v else v)
            for k, v in extra.items()
        }
    record["extra"] = extra
    return record

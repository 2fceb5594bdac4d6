"""Leads (`/leads`): the filtered lead rows, paginated in SQL, searchable, exportable; a selected
lead's full record and its timeline (every observed state, from the lead history)."""

import math
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from lib.view import export, metrics, tables, ui
from lib.view.metrics import history

current = ui.view()
ui.page_header(
    "Leads",
    "The leads behind the numbers. Phone numbers show their last 4 digits only"
    if not current.show_phones
    else "The leads behind the numbers.",
)
if ui.empty_state():
    st.stop()

search_col, sort_col, size_col = st.columns([3, 2, 1])
search = search_col.text_input(
    "Search",
    key="leads_search",
    placeholder="Phone, name, comments or agent",
    help="Matches any part of the phone number, name, comments, agent id or agent name.",
)
sort = sort_col.selectbox("Sort by", list(metrics.LEAD_SORTS), key="leads_sort")
size = size_col.selectbox("Rows per page", [25, 50, 100, 200], index=1, key="leads_page_size")

total = ui.query(metrics.lead_count, search=search)
if total == 0 and not search:
    ui.empty_state(lead_count=0)
    st.stop()

# Back to page 1 whenever the selection changes.
signature = (current.filters, search, sort, size)
if st.session_state.get("_leads_signature") != signature:
    st.session_state["_leads_signature"] = signature
    st.session_state.pop("leads_page", None)

table_slot = st.container()
pages = max(1, math.ceil(total / size))
page_number = st.pagination(pages, key="leads_page")
offset = (page_number - 1) * size
rows = ui.query(
    metrics.lead_page,
    search=search,
    limit=size,
    offset=offset,
    sort=sort,
    show_phones=current.show_phones,
)

with table_slot:
    if total == 0:
        st.info("No lead matches the search.", icon=":material/search_off:")
    else:
        event = st.dataframe(  # Attempts formatted by the Styler; values stay numbers
            ui.shown(rows.drop(columns=["lead_key"]), counts=["Attempts"], others=False),
            key="leads_table",
            on_select="rerun",
            selection_mode="single-row",
            hide_index=True,
            placeholder="",  # a missing value is a blank cell, not "None"
            column_config=tables.column_config(
                rows,
                current.tz,
                {
                    "Attempts": st.column_config.NumberColumn(),
                    "Comments": st.column_config.TextColumn(width="large"),
                },
            ),
        )
        st.caption(
            f"Rows {ui.fmt_count(offset + 1)} to {ui.fmt_count(offset + len(rows))} of "
            f"{ui.fmt_count(total)} · times in {current.tz}"
            " · select a row to see the lead's full record"
        )

filters, tz, today, show = current.filters, current.tz, current.today, current.show_phones
exported = {"search": search or None, "show_phones": show}

# Built on click (a callable), streamed by DuckDB to a temporary file; only the file's bytes
# are held, not the rows.
left, right, _ = st.columns([1, 1, 4])
left.download_button(
    "Export CSV",
    data=lambda: ui.read(metrics.export_csv, filters, tz, today, **exported),
    file_name="leads.csv",
    mime="text/csv",
    key="leads_export_csv",
    on_click="ignore",
    icon=":material/download:",
    help=f"All {ui.fmt_count(total)} filtered leads, not just this page.",
)
right.download_button(
    "Export Excel",
    data=lambda: ui.read(metrics.export_xlsx, filters, tz, today, **exported),
    file_name="leads.xlsx",
    mime=export.XLSX_MIME,
    key="leads_export_xlsx",
    on_click="ignore",
    icon=":material/download:",
    help=f"All {ui.fmt_count(total)} filtered leads (Excel holds up to "
    f"{ui.fmt_count(metrics.EXCEL_MAX_ROWS)} rows).",
)
excel_notice = metrics.excel_notice(total)  # counts in the default (indian) grouping
if excel_notice is not None:
    st.warning(ui.md_escape(excel_notice), icon=":material/table_rows:")

selection = st.session_state.get("leads_table")
selected_rows = []
if selection is not None and total:
    try:
        selected_rows = list(selection["selection"]["rows"])
    except (KeyError, TypeError):
        selected_rows = []
if selected_rows and 0 <= selected_rows[0] < len(rows):
    chosen = rows.iloc[selected_rows[0]]
    record = ui.read(
        metrics.lead_record, chosen["Campaign"], chosen["lead_key"], current.show_phones
    )
    if record is not None:
        zone = ZoneInfo(current.tz)
        st.subheader("Lead record", anchor=False)
        extra = record.pop("extra", None)
        fields = pd.DataFrame(
            {
                "Field": [tables.header(name) for name in record],
                "Value": [tables.cell_text(k, v, zone) for k, v in record.items()],
            }
        )
        st.dataframe(fields, hide_index=True, key="lead_record_table")
        if extra:
            st.caption("Other fields CloudAgent delivered:")
            st.json(extra, expanded=True)
        st.subheader("Timeline", anchor=False)
        timeline = ui.read(history.lead_timeline, chosen["Campaign"], chosen["lead_key"])
        if timeline.empty:
            st.info(
                f"**{history.NO_HISTORY}** for this lead. {history.HISTORY_START_CAPTION}",
                icon=":material/history:",
            )
        else:
            st.dataframe(
                ui.shown(timeline, counts=["Attempts"], others=False),
                hide_index=True,
                placeholder="",
                key="lead_timeline_table",
                column_config=tables.column_config(timeline, current.tz),
            )
            st.caption(
                f"Every observed state of this lead, newest first; times are its last call's "
                f"(UpdatedDate) in {ui.md_escape(current.tz)}. Change: the dials observed since "
                "the state before (the increase of its attempt count between syncs; several "
                "calls between two syncs count as all of them, at the time of the last one), "
                f"or First seen. {history.HISTORY_START_CAPTION}"
            )

"""Overview (`/`): KPI tiles, what changed since a chosen time (the URL's `since`), dial-status
and disposition breakdowns per campaign, comparison."""

from datetime import timedelta

import streamlit as st

from lib.view import charts, metrics, ui
from lib.view.filters import P_DIALSTATUS, P_DISPOSITION, Filters
from lib.view.metrics import history

current = ui.view()
ui.page_header("Overview", "Every selected campaign at once. " + metrics.SMALL_SAMPLE_HELP)

counts = ui.query(metrics.kpi_counts)
if ui.empty_state(lead_count=counts["leads"]):
    st.stop()

ui.kpi_tiles(metrics.kpi_values(counts))

st.subheader("What changed", anchor=False)
asked_since = st.query_params.get_all(history.P_SINCE)  # before the picker drops a bad one
since_notice = history.since_notice(asked_since)
if since_notice:
    st.warning(ui.md_escape(since_notice), icon=":material/link_off:")
picked = st.datetime_input(
    "Since",
    value=history.default_since(current.today),
    min_value=history.SINCE_BOUNDS[0],
    max_value=history.SINCE_BOUNDS[1],
    step=timedelta(hours=1),
    format="YYYY-MM-DD",
    key=history.P_SINCE,
    bind="query-params",
    width=260,
    help=f"A date and hour in {current.tz}; default: yesterday "
    f"{history.DEFAULT_SINCE_HOUR}:00. Part of the link, e.g. "
    f"`{history.P_SINCE}=2026-12-03T18:00`.",
)
since = history.in_zone(picked or history.default_since(current.today), current.tz)
by_campaign = Filters(campaigns=current.filters.campaigns)  # one cache entry per campaign set
start = ui.query(history.history_start, by_campaign)
if start is None:
    st.info(
        f"**{history.NO_HISTORY}.** {history.HISTORY_START_CAPTION}",
        icon=":material/history:",
    )
else:
    changed = ui.query(history.what_changed, by_campaign, since=since)
    if changed.empty:
        st.info(
            "No campaign in the selection has leads or observed changes.", icon=":material/info:"
        )
    else:
        st.dataframe(  # counts formatted by the Styler (a column_config format would win)
            ui.shown(changed, counts=list(history.CHANGE_HELP)),
            hide_index=True,
            key="overview_what_changed",
            column_config={
                name: st.column_config.NumberColumn(name, help=help_text)
                for name, help_text in history.CHANGE_HELP.items()
            },
        )
    st.caption(
        ui.md_escape(
            f"Changes observed since {history.describe_since(since, current.tz)} "
            f"({current.tz}), per campaign of the sidebar's campaign filter (the other filters "
            "describe leads' current state and do not apply here). "
            f"{history.DIALS_CAPTION} A lead's first observed state counts as a new lead "
            f"only. {history.HISTORY_START_CAPTION} First observed: "
            f"{history.describe_since(start, current.tz)}."
        )
    )

mode = st.segmented_control(
    "Bars show",
    ["Counts", "100%"],
    default="Counts",
    required=True,
    key="overview_bar_mode",
    help="Counts compare volumes; 100% compares each campaign's mix.",
)
percent = mode == "100%"
lumped = (
    f"The {metrics.CHART_TOP} campaigns with the most leads; the rest as "
    f"{metrics.OTHER_CAMPAIGNS}. "
)

st.subheader("Dial status by campaign", anchor=False)
buckets = ui.query(metrics.dial_buckets_by_campaign)
ui.chart(
    ui.figure(charts.dial_bucket_bars, buckets, percent),
    ui.with_percent(buckets.drop(columns=["is_other"])),
    key="overview_dial_chart",
    file_name="dial_status_by_campaign.csv",
    filter_key=P_DIALSTATUS,
)
st.caption((lumped if buckets["is_other"].any() else "") + ui.CLICK_HINT[P_DIALSTATUS])

st.subheader("Dispositions by campaign", anchor=False)
dispositions = ui.query(metrics.dispositions_by_campaign, top=8)
if dispositions.empty:
    st.info("No lead in the selection has a disposition yet.", icon=":material/info:")
else:
    ui.chart(
        ui.figure(charts.disposition_bars, dispositions, percent),
        ui.with_percent(dispositions.drop(columns=["is_other"])),
        key="overview_disposition_chart",
        file_name="dispositions_by_campaign.csv",
        filter_key=P_DISPOSITION,
    )
    st.caption(
        "Leads that have a disposition; the 8 most frequent, the rest as Other. "
        + ui.CLICK_HINT[P_DISPOSITION]
    )

st.subheader("Campaign comparison", anchor=False)
ui.choice_notice(
    metrics.P_RANK, st.query_params.get_all(metrics.P_RANK), metrics.KPI_NAMES, "a KPI"
)
rank_by = st.selectbox(
    "Rank by",
    metrics.KPI_NAMES,
    index=metrics.KPI_NAMES.index(metrics.RANK_BY_DEFAULT),
    key=metrics.P_RANK,
    bind="query-params",
    width=260,
    help=f"Campaigns in order of this KPI, highest first. A rate whose denominator is under "
    f"{metrics.SMALL_SAMPLE} is ranked after the others and marked. Part of the link, e.g. "
    f"`{metrics.P_RANK}=Answer rate`.",
)
per_campaign = metrics.rank_campaigns(ui.query(metrics.campaign_kpis), rank_by)
table = metrics.comparison_table(per_campaign)
ranked = metrics.ranked_chart_frame(per_campaign, rank_by)
ui.chart(
    ui.figure(charts.ranked_bars, ranked, rank_by, metrics.kpi_named(rank_by).is_rate),
    ranked,
    key="overview_rank_chart",
    file_name="campaign_ranking.csv",
)
ui.comparison(table, key="overview_comparison")
if per_campaign["is_other"].any():
    st.caption(lumped + "Pick a campaign in the sidebar to see it on its own.")
ui.numbers(table, key="overview_comparison_table", file_name="campaign_comparison.csv")
ui.show_leads_link()

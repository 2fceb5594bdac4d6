"""Overview (`/`): KPI tiles, dial-status and disposition breakdowns per campaign, comparison."""

import streamlit as st

from lib.view import charts, metrics, ui
from lib.view.filters import P_DIALSTATUS, P_DISPOSITION

current = ui.view()
ui.page_header("Overview", "Every selected campaign at once. " + metrics.SMALL_SAMPLE_HELP)

counts = ui.query(metrics.kpi_counts)
if ui.empty_state(lead_count=counts["leads"]):
    st.stop()

ui.kpi_tiles(metrics.kpi_values(counts))

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
per_campaign = ui.query(metrics.campaign_kpis)
table = metrics.comparison_table(per_campaign)
ui.comparison(table, key="overview_comparison")
if per_campaign["is_other"].any():
    st.caption(lumped + "Pick a campaign in the sidebar to see it on its own.")
ui.numbers(table, key="overview_comparison_table", file_name="campaign_comparison.csv")
ui.show_leads_link()

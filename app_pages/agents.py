"""Agents (`/agents`): per-agent results (sortable, CSV and Excel), conversions per agent
(clicking a bar filters by that agent) and talk time per campaign."""

import streamlit as st

from lib.view import agent_charts, metrics, ui
from lib.view.filters import NO_AGENT, P_AGENT

ui.page_header(
    "Agents",
    "Who converts, and how long calls last. Each lead counts for the agent who took its last "
    f"call (the agent's name, or its id when the name is empty; {NO_AGENT} = neither).",
)
if ui.empty_state():
    st.stop()

table = ui.query(metrics.agent_table, number_format=ui.number_format())
if ui.empty_state(lead_count=int(table["Leads handled"].sum())):
    st.stop()

st.subheader("Agents", anchor=False)
percent = {"Conversion rate", "Wrap-up timeouts"}
seconds = {"Median talk time", "P90 talk time"}
config = {}
for name, help_text in metrics.AGENT_HELP.items():
    if name in percent:
        config[name] = st.column_config.NumberColumn(name, format="%.1f%%", help=help_text)
    elif name in seconds:  # counts and seconds formatted by the Styler below
        config[name] = st.column_config.NumberColumn(name, help=help_text)
    elif name in ("Agent", "Top dispositions"):
        config[name] = st.column_config.TextColumn(name, help=help_text)
    else:
        config[name] = st.column_config.NumberColumn(name, help=help_text)
st.dataframe(
    ui.shown(
        table,
        decimals=dict.fromkeys(seconds, 1),
        suffixes=dict.fromkeys(seconds, " s"),
    ),
    hide_index=True,
    key="agents_table",
    column_config=config,
)
st.caption(
    "Click a column header to sort; hover it for its definition. Conversion rate = "
    "Conversions / Answered. Talk time = CallDuration of answered leads (median and 90th "
    'percentile, in seconds). Wrap-up timeouts = dispositions starting with "Wrap up time '
    "exceeded\" among the agent's leads that have a disposition."
)
ui.downloads(
    table,
    key="agents_export",
    file_stem="agents",
    sheet="Agents",
    help="The table above, with its column names.",
    labels=("Export CSV", "Export Excel"),
)

st.subheader("Conversions by agent", anchor=False)
conversions = ui.query(metrics.agent_conversions)
ui.chart(
    ui.figure(agent_charts.conversion_bars, conversions),
    conversions.drop(columns=["is_other"]),
    key="agents_conversion_chart",
    file_name="conversions_by_agent.csv",
    filter_key=P_AGENT,
)
st.caption(
    f"Bars: conversions (Sale category); diamonds: conversion rate (conversions / answered, "
    f"right axis). The {metrics.CHART_TOP} agents with the most conversions"
    + (f", the rest summed as {metrics.OTHER}" if conversions["is_other"].any() else "")
    + ". Click an agent's bar to filter the dashboard by that agent."
)

st.subheader("Talk time by campaign", anchor=False)
talk = ui.query(metrics.talk_time_by_campaign)
if talk.empty:
    st.info(
        "No lead in the selection was answered, so there is no talk time yet.",
        icon=":material/info:",
    )
    st.stop()
total = talk[talk["is_total"]].iloc[0]
short_help = metrics.TALK_HELP["Short answered calls"]
st.metric(
    f"Short answered calls (under {metrics.SHORT_CALL_SECONDS} s)",
    ui.fmt_count(total["Short answered calls"]),
    delta=f"{ui.fmt_pct(total['Short calls share'] / 100)} of answered",
    delta_color="off",
    delta_arrow="off",
    help=short_help + " " + metrics.TALK_HELP["Short calls share"],
    border=True,
)
st.caption(
    f"Short answered calls (under {metrics.SHORT_CALL_SECONDS} s): possible hang-ups or abandons "
    f"— {ui.fmt_count(total['Short answered calls'])}, "
    f"{ui.fmt_pct(total['Short calls share'] / 100)} of {ui.fmt_count(total['Answered'])} "
    "answered leads."
)
bands = ui.query(metrics.talk_time_bands)
if not bands.empty:
    ui.chart(
        ui.figure(agent_charts.talk_time_bars, bands),
        ui.with_percent(bands.drop(columns=["is_other"])),
        key="agents_talk_chart",
        file_name="talk_time_by_campaign.csv",
    )
    st.caption(
        "Talk time = CallDuration of answered leads, in bands: "
        + ", ".join(metrics.TALK_BAND_LABELS)
        + f". The {metrics.CHART_TOP} campaigns with the most answered leads"
        + (f", the rest as {metrics.OTHER_CAMPAIGNS}" if bands["is_other"].any() else "")
        + "."
    )
shown = talk.drop(columns=["is_total", "is_other"])
talk_seconds = [name for name in shown.columns if "talk time" in name]
st.dataframe(  # counts and seconds formatted by the Styler (a column_config format would win)
    ui.shown(
        shown,
        decimals=dict.fromkeys(talk_seconds, 1),
        suffixes=dict.fromkeys(talk_seconds, " s"),
    ),
    hide_index=True,
    key="agents_talk_table",
    column_config={
        name: st.column_config.NumberColumn(
            name,
            format="%.1f%%" if "share" in name else None,
            help=help_text,
        )
        if name != "Campaign"
        else st.column_config.TextColumn(name, help=help_text)
        for name, help_text in metrics.TALK_HELP.items()
    },
)
ui.downloads(shown, key="agents_talk", file_stem="talk_time_per_campaign", sheet="Talk time")
ui.show_leads_link()

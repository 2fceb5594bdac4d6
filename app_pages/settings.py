"""Settings (`/settings`): campaigns to sync, and the disposition category map."""

import pandas as pd
import streamlit as st

from lib.view import access, operations, ui

current = ui.view()
ui.page_header("Settings", "Stored in the database; changes apply to everyone at once.")

st.subheader("Campaigns to sync", anchor=False)
st.caption(
    "Campaign names exactly as in CloudAgent. Removing a campaign stops syncing it; its stored "
    "leads stay. A campaign from the configuration is disabled rather than deleted, so a restart "
    "does not bring it back."
)


def _add_campaign() -> None:
    if not access.operator_only("change the campaigns"):
        return
    name = st.session_state.get("settings_new_campaign", "")
    try:
        added = operations.add_campaign(name)
    except ValueError as exc:
        st.session_state["_settings_message"] = ("error", str(exc))
        return
    st.session_state["settings_new_campaign"] = ""
    st.session_state["_settings_message"] = (
        ("success", f"Added {name.strip()!r}.") if added else ("info", "Already in the list.")
    )


def _remove_campaigns() -> None:
    if not access.operator_only("change the campaigns"):
        return
    names = st.session_state.get("settings_remove_campaigns") or []
    results = [f"{n!r} {operations.remove_campaign(n)}" for n in names]
    st.session_state["settings_remove_campaigns"] = []
    if results:
        st.session_state["_settings_message"] = ("success", "; ".join(results) + ".")


message = st.session_state.pop("_settings_message", None)
if message:
    kind, text = message
    getattr(st, kind)(ui.md_escape(text))

table = operations.campaign_table()
if table.empty:
    st.info("No campaign configured yet: add the first one below.", icon=":material/campaign:")
else:
    st.dataframe(table, hide_index=True, key="settings_campaigns_table")

operator = access.is_operator()
if operator:
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.text_input(
            "Add a campaign",
            key="settings_new_campaign",
            placeholder="Campaign name",
            max_chars=operations.MAX_CAMPAIGN_NAME,
        )
        st.button("Add", key="settings_add", on_click=_add_campaign, icon=":material/add:")

    enabled = [
        n for n, e in zip(table.get("campaign", []), table.get("enabled", []), strict=False) if e
    ]
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.multiselect(
            "Remove campaigns", enabled, key="settings_remove_campaigns", placeholder="Choose"
        )
        st.button(
            "Remove",
            key="settings_remove",
            on_click=_remove_campaigns,
            icon=":material/delete:",
            disabled=not enabled,
        )
else:
    access.operator_notice("add or remove campaigns")

st.subheader("Disposition categories", anchor=False)
st.caption(
    "Each disposition counts under one category; Conversions are the Sale category. Unsaved "
    "rows show the category guessed from the name (e.g. `Interested` is a Contact, not a Sale; "
    "`Wrap up time exceeded` is Other). Change a category and save."
)
mapping = operations.disposition_map()


def _save_categories(shown: pd.DataFrame) -> None:
    if not access.operator_only("change the disposition categories"):
        return
    edits = (st.session_state.get("settings_dispositions") or {}).get("edited_rows") or {}
    frame = shown.copy()
    for row, change in edits.items():
        if "category" in change and 0 <= int(row) < len(frame):
            frame.iat[int(row), frame.columns.get_loc("category")] = change["category"]
    try:
        changed = operations.save_disposition_categories(
            dict(zip(frame["disposition"], frame["category"], strict=True))
        )
    except ValueError as exc:
        st.session_state["_settings_message"] = ("error", str(exc))
        return
    st.session_state.pop("settings_dispositions", None)
    st.session_state["_settings_message"] = (
        "success",
        f"Saved the category of {len(frame)} dispositions ({changed} changed).",
    )


def _reset_categories(names: list[str]) -> None:
    if not access.operator_only("change the disposition categories"):
        return
    removed = operations.forget_disposition_categories(names)
    st.session_state.pop("settings_dispositions", None)
    st.session_state["_settings_message"] = ("success", f"Reset {removed} saved categories.")


if mapping.empty:
    st.info("No disposition seen yet: they appear here after the first sync.")
elif not operator:
    st.dataframe(mapping, hide_index=True, key="settings_dispositions_table")
    access.operator_notice("change the categories")
else:
    st.data_editor(
        mapping,
        key="settings_dispositions",
        hide_index=True,
        disabled=["disposition", "source", "leads"],
        column_config={
            "category": st.column_config.SelectboxColumn(
                "category", options=list(operations.CATEGORIES), required=True
            ),
            "source": st.column_config.TextColumn(
                "source", help="saved = stored in the database; guess = from the name"
            ),
        },
    )
    left, right, _ = st.columns([1, 1, 3])
    left.button(
        "Save categories",
        key="settings_save_categories",
        type="primary",
        on_click=_save_categories,
        args=(mapping,),
        help="Stores the category of every disposition listed (guesses included).",
    )
    right.button(
        "Reset to guesses",
        key="settings_reset_categories",
        on_click=_reset_categories,
        args=(list(mapping["disposition"]),),
    )

"""Settings (`/settings`): campaigns to sync, disposition categories, the dialing policy, the
connection check, field and value mappings, re-ingest."""

import pandas as pd
import streamlit as st

from lib.view import access, operations, saved_views, tables, ui
from lib.view.labels import DIAL_STATUS_LABELS, LEAD_STATUS_LABELS

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
    tables.table(table, current.tz, key="settings_campaigns_table")

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
    tables.table(mapping, current.tz, key="settings_dispositions_table")
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

st.subheader("Dialing policy", anchor=False)
st.caption(
    "Used by the Progress and Agents pages for every viewer at once. **Dial attempts allowed** "
    "is CloudAgent's number of tries per campaign: leave it empty to use the highest attempts "
    "seen in the campaign, at most 100 (shown as inferred). The **calling window** is in "
    f"whole hours of the account's zone ({ui.md_escape(current.tz)}); last calls outside it are "
    "listed. A Pending lead that was dialled and not updated for more than the **stale "
    "threshold** counts as stale."
)
current_policy = operations.dial_policy()
allowed_table = operations.attempts_allowed_table()


def _save_policy() -> None:
    if not access.operator_only("change the dialing policy"):
        return
    try:
        operations.save_dial_policy(
            st.session_state["settings_window_start"],
            st.session_state["settings_window_end"],
            st.session_state["settings_stale_days"],
        )
    except operations.PolicyError as exc:
        st.session_state["_settings_message"] = ("error", str(exc))
        return
    st.session_state["_settings_message"] = ("success", "Saved the calling window and threshold.")


def _save_allowed(shown: pd.DataFrame) -> None:
    if not access.operator_only("change the attempts allowed"):
        return
    edits = (st.session_state.get("settings_allowed") or {}).get("edited_rows") or {}
    changes: dict[str, int | None] = {}
    for row, change in edits.items():
        if "attempts allowed" in change and 0 <= int(row) < len(shown):
            value = change["attempts allowed"]
            changes[shown.iat[int(row), 0]] = None if value is None else int(value)
    try:
        operations.save_attempts_allowed(changes)
    except operations.PolicyError as exc:
        st.session_state["_settings_message"] = ("error", str(exc))
        return
    st.session_state.pop("settings_allowed", None)
    st.session_state["_settings_message"] = (
        "success",
        f"Saved the attempts allowed of {len(changes)} campaigns.",
    )


with st.container(horizontal=True, vertical_alignment="bottom"):
    st.number_input(
        "Calling window from (hour)", 0, 23, current_policy.window_start,
        key="settings_window_start", disabled=not operator,
    )  # fmt: skip
    st.number_input(
        "to (hour, exclusive)", 1, 24, current_policy.window_end,
        key="settings_window_end", disabled=not operator,
    )  # fmt: skip
    st.number_input(
        "Stale after (days)", 1, 365, current_policy.stale_days,
        key="settings_stale_days", disabled=not operator,
    )  # fmt: skip
    if operator:
        st.button("Save window and threshold", key="settings_save_policy", on_click=_save_policy)
if not operator:
    access.operator_notice("change the dialing policy")
if allowed_table.empty:
    st.info("No campaign yet: each appears here with its highest attempts seen.")
else:
    st.data_editor(
        allowed_table[["campaign", "attempts allowed", "highest seen"]],
        key="settings_allowed",
        hide_index=True,
        placeholder="",  # empty = inferred, as the column's help says
        disabled=["campaign", "highest seen"] + ([] if operator else ["attempts allowed"]),
        column_config={
            "attempts allowed": st.column_config.NumberColumn(
                "dial attempts allowed", min_value=1, max_value=operations.MAX_ATTEMPTS_ALLOWED,
                step=1, help="Empty = inferred from the highest attempts seen.",
            ),
            "highest seen": st.column_config.NumberColumn(
                "highest attempts seen", help="Used as the attempts allowed when none is set."
            ),
        },
    )  # fmt: skip
    if operator:
        st.button(
            "Save attempts allowed",
            key="settings_save_allowed",
            on_click=_save_allowed,
            args=(allowed_table,),
        )

st.subheader("Connection check", anchor=False)
st.caption(
    "Sends one documented request (the chosen campaign, sortby 2, the last 10 minutes) and "
    "reports each step: whether CloudAgent is reached, accepts the credentials and the "
    "request, calls back, and whether its delivery could be read. It counts against the same "
    "rate limit as every request."
)
_STEP_ICONS = {
    "ok": ":material/check_circle:",
    "warning": ":material/warning:",
    "failed": ":material/cancel:",
    "running": ":material/progress_activity:",
    "waiting": ":material/radio_button_unchecked:",
    "skipped": ":material/remove_circle_outline:",
}


def _start_check() -> None:
    if not access.operator_only("run the connection check"):
        return
    try:
        operations.start_connection_check(st.session_state.get("settings_check_campaign") or "")
    except ValueError as exc:
        st.session_state["_settings_check_error"] = str(exc)


@st.fragment(run_every="1s")
def connection_check_result() -> None:
    """The checklist fills in live while the check runs; the last result stays until the next."""
    result = operations.latest_connection_check()
    if result is None:
        st.caption("No check run since the server started.")
        return
    st.markdown(
        f"**{ui.md_escape(result.campaign)}**, started {result.started_at:%H:%M:%S}"
        + ("" if result.running else f", finished {result.finished_at:%H:%M:%S}")
    )
    for number, step in enumerate(result.steps, start=1):
        line = f"{_STEP_ICONS.get(step.state, '')} **{number}. {step.title}** {step.state}"
        if step.detail:
            line += f": {ui.md_escape(step.detail)}"
        st.markdown(line)
        if step.fix:
            st.caption(f"What to change: {ui.md_escape(step.fix)}")
    if result.unique_id:
        st.caption(f"uniqueId {ui.md_escape(result.unique_id)}")


if operator:
    with st.container(horizontal=True, vertical_alignment="bottom"):
        campaigns = operations.enabled_campaigns()
        st.selectbox(
            "Campaign to check",
            campaigns,
            index=0 if campaigns else None,
            accept_new_options=True,
            key="settings_check_campaign",
        )
        st.button(
            "Run connection check",
            key="settings_run_check",
            on_click=_start_check,
            icon=":material/network_check:",
        )
    problem = st.session_state.pop("_settings_check_error", None)
    if problem:
        st.error(ui.md_escape(problem))
    connection_check_result()
else:
    access.operator_notice("run the connection check")

st.subheader("Field mapping", anchor=False)
st.caption(
    "Which dashboard column each delivered field fills. Pre-filled from what recent deliveries "
    "brought and how their names were recognised; choose another column, or `extra` to keep a "
    "field out of every column. Rows set in secrets.toml (`[fields]`) are shown but changed "
    "there. A fix applies to new deliveries; re-ingest (below) applies it to the past."
)
field_table = operations.field_mapping_table()


def _save_fields(shown: pd.DataFrame) -> None:
    if not access.operator_only("change the field mapping"):
        return
    state = st.session_state.get("settings_fields") or {}
    frame = shown.copy()
    for row, change in (state.get("edited_rows") or {}).items():
        if "column" in change and 0 <= int(row) < len(frame):
            frame.iat[int(row), frame.columns.get_loc("column")] = change["column"]
            frame.iat[int(row), frame.columns.get_loc("set in")] = "settings"
    for added in state.get("added_rows") or []:
        if added.get("field") and added.get("column"):
            frame.loc[len(frame)] = [added["field"], added["column"], "settings"]
    chosen = frame[frame["set in"] == "settings"]
    try:
        operations.save_field_mapping(dict(zip(chosen["field"], chosen["column"], strict=True)))
    except ValueError as exc:
        st.session_state["_settings_message"] = ("error", str(exc))
        return
    st.session_state.pop("settings_fields", None)
    st.session_state["_settings_message"] = (
        "success",
        f"Saved the mapping of {len(chosen)} fields. Re-ingest to apply it to earlier deliveries.",
    )


if field_table.empty and not operator:
    st.info("No delivery read yet: its fields appear here after the first sync.")
elif not operator:
    tables.table(field_table, current.tz, key="settings_fields_table")
    access.operator_notice("change the field mapping")
else:
    st.data_editor(
        field_table,
        key="settings_fields",
        hide_index=True,
        num_rows="add",
        disabled=["set in"],
        column_config={
            "field": st.column_config.TextColumn("delivered field", required=True),
            "column": st.column_config.SelectboxColumn(
                "dashboard column", options=list(operations.MAPPING_TARGETS), required=True
            ),
            "set in": st.column_config.TextColumn(
                "set in", help="detected: recognised by its name; settings: chosen here"
            ),
        },
    )
    st.button(
        "Save field mapping",
        key="settings_save_fields",
        type="primary",
        on_click=_save_fields,
        args=(field_table,),
    )

st.subheader("Dial status and status values", anchor=False)
st.caption(
    "Values CloudAgent sent that are outside the known vocabulary, and the bucket each was "
    "counted in. Choose another bucket to count them there, by its stored value (dial status: "
    + ", ".join(f"`{v}` = {label}" for v, label in DIAL_STATUS_LABELS.items())
    + "; status: "
    + ", ".join(f"`{v}` = {label}" for v, label in LEAD_STATUS_LABELS.items())
    + ")."
)
value_table = operations.value_mapping_table()


def _save_values(shown: pd.DataFrame) -> None:
    if not access.operator_only("change the value mapping"):
        return
    edits = (st.session_state.get("settings_values") or {}).get("edited_rows") or {}
    changed: dict[str, dict[str, str]] = {}
    for row, change in edits.items():
        if "counted as" in change and 0 <= int(row) < len(shown):
            kind, value = shown.iloc[int(row)][["field", "value"]]
            changed.setdefault(kind, {})[value] = change["counted as"]
    try:
        for kind, mapping in changed.items():
            operations.save_value_mapping(kind, mapping)
    except ValueError as exc:
        st.session_state["_settings_message"] = ("error", str(exc))
        return
    st.session_state.pop("settings_values", None)
    count = sum(len(m) for m in changed.values())
    st.session_state["_settings_message"] = ("success", f"Saved {count} value mappings.")


if value_table.empty:
    st.caption("Every value delivered so far is in the known vocabulary.")
elif not operator:
    tables.table(value_table, current.tz, key="settings_values_table")
else:
    st.data_editor(
        value_table,
        key="settings_values",
        hide_index=True,
        disabled=["field", "value", "set in"],
        column_config={
            "counted as": st.column_config.SelectboxColumn(
                "counted as",
                options=list(dict.fromkeys([*operations.DIAL_BUCKETS, *operations.LEAD_STATUSES])),
                required=True,
            )
        },
    )
    st.button(
        "Save value mapping", key="settings_save_values", on_click=_save_values, args=(value_table,)
    )

st.subheader("Re-ingest kept deliveries", anchor=False)
st.caption(
    "Parses every kept delivery again, in the order received, with the current mapping: "
    "without a date, the campaign's leads are rebuilt from scratch (what a fresh database would "
    "hold had the mapping been right from the start); with a date, the deliveries received "
    "since then are read again on top of what is stored. Pages keep serving meanwhile; "
    "progress is on the Sync page. Bodies deleted by retention are skipped."
)


def _start_reingest() -> None:
    if not access.operator_only("re-ingest deliveries"):
        return
    try:
        progress = operations.start_reingest(
            st.session_state.get("settings_reingest_campaign"),
            st.session_state.get("settings_reingest_since"),
        )
    except ValueError as exc:
        st.session_state["_settings_message"] = ("error", str(exc))
        return
    st.session_state["_settings_message"] = (
        "success",
        f"Re-ingest started: {progress.total} deliveries to read again (see the Sync page).",
    )


if operator:
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.selectbox(
            "Campaign",
            operations.enabled_campaigns(),
            index=None,
            placeholder="All campaigns",
            key="settings_reingest_campaign",
        )
        st.date_input("Received since (optional)", value=None, key="settings_reingest_since")
        st.button(
            "Re-ingest", key="settings_reingest", on_click=_start_reingest, icon=":material/replay:"
        )
else:
    access.operator_notice("re-ingest deliveries")

st.subheader("Saved views", anchor=False)
st.caption(
    "Views anyone signed in named from the sidebar (Saved views > Save this view), listed there "
    "for everyone. A name is 1 to 60 characters and unique, ignoring case. Renaming keeps the "
    "view's link; deleting removes it from everyone's sidebar."
)
VIEW_PICK, VIEW_NEW_NAME, _VIEW_MESSAGE = "settings_view", "settings_view_name", "_settings_view"


def _rename_view() -> None:
    if not access.operator_only("rename saved views"):
        return
    view_id = st.session_state.get(VIEW_PICK)
    if view_id is None:
        st.session_state[_VIEW_MESSAGE] = ("error", "Choose the view to rename.")
        return
    try:
        name = saved_views.rename(view_id, st.session_state.get(VIEW_NEW_NAME))
    except saved_views.SavedViewError as exc:
        st.session_state[_VIEW_MESSAGE] = ("error", str(exc))
        return
    st.session_state[VIEW_NEW_NAME] = ""
    st.session_state[_VIEW_MESSAGE] = ("success", f"Renamed the view to {name!r}.")


def _delete_view(names: dict[int, str]) -> None:
    if not access.operator_only("delete saved views"):
        return
    view_id = st.session_state.get(VIEW_PICK)
    if view_id is None:
        st.session_state[_VIEW_MESSAGE] = ("error", "Choose the view to delete.")
        return
    try:
        deleted = saved_views.delete(view_id)
    except saved_views.SavedViewError as exc:
        st.session_state[_VIEW_MESSAGE] = ("error", str(exc))
        return
    st.session_state[VIEW_PICK] = None
    name = names.get(view_id, "")
    st.session_state[_VIEW_MESSAGE] = (
        ("success", f"Deleted the view {name!r}.") if deleted else ("info", "Already deleted.")
    )


view_message = st.session_state.pop(_VIEW_MESSAGE, None)
if view_message:
    kind, text = view_message
    getattr(st, kind)(ui.md_escape(text))
view_table = saved_views.table()
if view_table.empty:
    st.info("No saved view yet.", icon=":material/bookmark:")
else:
    tables.table(view_table.drop(columns="id"), current.tz, key="settings_views_table")
if operator and not view_table.empty:
    view_names = dict(zip(view_table["id"], view_table["name"], strict=True))
    if st.session_state.get(VIEW_PICK) not in view_names:  # none chosen yet, or deleted
        st.session_state[VIEW_PICK] = None
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.selectbox(
            "Saved view",
            list(view_names),
            format_func=view_names.get,  # plain text: shown as typed
            placeholder="Choose a view",
            key=VIEW_PICK,
        )
        st.text_input("New name", key=VIEW_NEW_NAME, placeholder="1 to 60 characters")
        st.button("Rename", key="settings_rename_view", on_click=_rename_view)
        st.button(
            "Delete",
            key="settings_delete_view",
            on_click=_delete_view,
            args=(view_names,),
            icon=":material/delete:",
        )
elif not operator:
    access.operator_notice("rename or delete saved views")

"""Sync (`/sync`): freshness per campaign, the request log, failed deliveries (each with its CSV
and Excel download), the delivery inspector and re-ingest progress, the rate limit, "Sync now",
and one hand-made Campaign Dial Status request with every API parameter."""

from datetime import datetime, time

import streamlit as st

from lib.view import access, labels, metrics, operations, tables, ui

current = ui.view()
ui.page_header("Sync", "How fresh each campaign's data is, and what was asked of CloudAgent.")
svc = ui.services()
engine = svc.sync
tz = svc.settings.timezone


@st.fragment(run_every="5s")
def engine_status() -> None:
    if engine is None:
        st.info(
            f"Nothing is queued or sent from here: {svc.no_sync_reason}.",
            icon=":material/sync_disabled:",
        )
        return
    try:
        status = engine.status()
    except Exception as exc:
        st.warning(f"The sync engine's status is unavailable: {ui.md_escape(exc)}")
        return
    limiter = status.get("limiter") or {}
    queue = status.get("queue") or []
    in_flight = status.get("in_flight") or []
    a, b, c, d = st.columns(4)
    a.metric(
        "Requests in window",
        f"{limiter.get('used', 0)} / {limiter.get('limit', '?')}",
        help=f"CloudAgent allows {limiter.get('limit', '?')} requests per "
        f"{limiter.get('window_s', '?')} s; the engine never sends more.",
    )
    window = limiter.get("window_s")
    a.caption(f"per {window:g} s" if isinstance(window, int | float) else "")
    b.metric("Next free slot", f"{float(limiter.get('next_slot_in_s') or 0):.0f} s")
    c.metric("Queued", len(queue), help="Campaigns waiting for a request slot.")
    d.metric("Awaiting delivery", len(in_flight), help="Requests CloudAgent accepted.")
    state = "running" if status.get("running") else "stopped"
    reason = status.get("waiting_reason") or limiter.get("reason")
    st.caption(
        f"Engine {state}"
        + (f" · waiting: {ui.md_escape(reason)}" if reason else "")
        + (f" · queue: {ui.md_escape(', '.join(queue[:10]))}" if queue else "")
    )
    if in_flight:
        tables.table(in_flight, tz, key="sync_in_flight")


def imposed_waits() -> None:
    """A wait CloudAgent imposed is named with its end (it holds across restarts too), and
    the newest ones are listed: a long Retry-After explains an idle engine."""
    waits = ui.read(metrics.imposed_waits)
    in_force = waits[waits["in_force"]]
    if not in_force.empty:
        longest = in_force.loc[in_force["wait_until"].idxmax()]
        until = longest["wait_until"].tz_convert(svc.settings.zone)
        st.warning(
            f"CloudAgent asked us to wait: no request is sent before "
            f"{labels.time_text(until, svc.settings.zone, seconds=True)} "
            f"({ui.md_escape(longest['reason'] or 'no reason given')}).",
            icon=":material/hourglass_top:",
        )
    if not waits.empty:
        with st.expander(f"Waits CloudAgent imposed (newest {len(waits)})"):
            tables.table(waits, tz, key="sync_imposed_waits")


st.subheader("Engine and rate limit", anchor=False)
imposed_waits()  # on full runs only: the 5 s fragment stays as light as it can be
engine_status()

enabled = operations.enabled_campaigns()
operator = access.is_operator()
if operator:
    target = st.selectbox(
        "Campaign to sync",
        enabled,
        index=None,
        placeholder="All enabled campaigns",
        key="sync_campaign",
    )
    if st.button(
        "Sync now", key="sync_now", icon=":material/sync:", type="primary", disabled=engine is None
    ):
        queued = engine.request_sync(campaign=target, trigger="ui")
        at = datetime.now(svc.settings.zone).strftime("%H:%M:%S")  # which press this answers
        if queued:
            st.success(f"Queued {queued} refresh request(s) at {at}.", icon=":material/check:")
        else:
            st.info(
                f"Already queued or waiting for CloudAgent's delivery (pressed at {at}).",
                icon=":material/info:",
            )
else:
    access.operator_notice("press Sync now or send hand-made requests")

st.subheader("Campaigns", anchor=False)
fresh = ui.read(metrics.freshness)
requests = ui.read(metrics.sync_requests)
failed = ui.read(metrics.failed_deliveries)
if fresh.empty:
    ui.empty_state()
else:
    for row in fresh[fresh["dated_after_now"] > 0].itertuples():
        st.warning(
            f"{row.dated_after_now:,} leads dated after now in {ui.md_escape(row.campaign)}: "
            f"check DIALSTATUS_TIMEZONE (now {ui.md_escape(svc.settings.timezone)}) and the "
            "agents' clocks. They are stored; the sync goes on from now.",
            icon=":material/schedule:",
        )
    tables.table(tables.with_age(fresh, "data_as_of", datetime.now(svc.settings.zone)), tz,
                 key="sync_freshness")  # fmt: skip
    ui.downloads(fresh, key="sync_freshness", file_stem="sync_freshness", sheet="Freshness")

st.subheader("Request log", anchor=False)
if requests.empty:
    st.caption("No request sent yet.")
else:
    tables.table(requests, tz, key="sync_requests")
    st.caption("The newest 200 requests; parameters are stored with the callback secret redacted.")
    ui.downloads(requests, key="sync_requests", file_stem="sync_requests", sheet="Requests")

st.subheader("Deliveries not read", anchor=False)
if failed.empty:
    st.caption("None: every delivery received so far was read.")
else:
    tables.table(failed, tz, key="sync_failed_deliveries")
    st.caption(
        "retrying: a transient failure (the file host answered 5xx or did not answer), tried "
        "again by itself, 3 attempts in all; failed: given up. Bodies are kept on disk beside "
        "the database (file) for inspection."
    )
    ui.downloads(
        failed, key="sync_failed_deliveries", file_stem="sync_failed_deliveries", sheet="Not read"
    )

st.subheader("Delivery inspector", anchor=False)
st.caption(
    "What arrived at the callback and what the dashboard made of it: the shape, every field "
    "and the column it went to, values that could not be read, and rows stored. Phone numbers "
    "in examples are masked."
)


@st.fragment(run_every="2s")
def reingest_progress() -> None:
    """A re-ingest's progress while it runs (started on the Settings page or POST /api/reingest)."""
    run = operations.reingest_progress()
    if run is None:
        return
    read = run.done + run.skipped + run.failed
    scope = run.campaign or "every campaign"
    if run.running:
        st.progress(
            read / run.total if run.total else 0.0,
            text=f"Re-ingest of {ui.md_escape(scope)}: {read:,} of {run.total:,} deliveries read",
        )
    else:
        outcome = f"stopped ({run.error})" if run.error else "finished"
        started = labels.time_text(run.started_at, svc.settings.zone)
        st.caption(
            f"Last re-ingest ({ui.md_escape(scope)}, {started}): {outcome}; "
            f"{run.done:,} read again, {run.skipped:,} skipped (body pruned), {run.failed:,} "
            "still not readable."
        )


reingest_progress()
deliveries = ui.read(metrics.recent_deliveries)
warned = deliveries[deliveries["warnings"] > 0]
if not warned.empty:
    st.warning(
        f"{len(warned):,} of the newest deliveries were ingested with warnings: "
        f"{int(warned['warnings'].sum()):,} records had values that could not be read (their "
        "dates or numbers are left empty). Inspect one below; fix the mapping on the Settings "
        "page, then re-ingest.",
        icon=":material/warning:",
    )
if deliveries.empty:
    st.caption("No delivery received yet.")
else:
    delivery_names = {
        int(row.id): f"#{row.id} · "
        f"{labels.time_text(row.received_at, svc.settings.zone, seconds=True)} · "
        f"{row.campaign or 'campaign unknown'} · {row.state}"
        for row in deliveries.itertuples()
    }
    chosen = st.selectbox(
        "Delivery",
        list(delivery_names),
        format_func=delivery_names.get,
        key="sync_inspect_delivery",
    )
    detail = ui.read(metrics.delivery_detail, chosen) if chosen is not None else None
    if detail is not None:
        report = detail.report
        a, b, c, d = st.columns(4)
        a.metric(
            "Received",
            f"{detail.received_at.astimezone(svc.settings.zone):%H:%M:%S}",
            help=labels.time_text(detail.received_at, svc.settings.zone, seconds=True),
        )
        b.metric("Size", f"{detail.size_bytes:,} bytes")
        c.metric("Rows stored", f"{report.get('rows', detail.rows or 0):,}")
        d.metric("With warnings", f"{detail.warnings:,}", help="Records with a value not read.")
        st.markdown(
            f"**Shape:** {ui.md_escape(report.get('shape') or report.get('variant') or 'unknown')}"
            f" · **content type:** {ui.md_escape(detail.content_type or 'none')}"
            f" · **from:** {ui.md_escape(detail.source_addr or 'unknown')}"
            f" · **state:** {ui.md_escape(detail.state)}"
            + (f" · **new:** {report['new']:,}" if "new" in report else "")
            + (f" · **updated:** {report['updated']:,}" if "updated" in report else "")
            + (f" · **unchanged:** {report['unchanged']:,}" if "unchanged" in report else "")
        )
        if detail.error:
            st.error(ui.md_escape(detail.error), icon=":material/error:")
        tables.table(detail.fields(), tz, key="sync_inspect_fields")
        formats = detail.formats()
        if not formats.empty:
            tables.table(formats, tz, key="sync_inspect_formats")
        failures = detail.failures()
        if failures.empty:
            st.caption("Every date, duration and number was read.")
        else:
            tables.table(failures, tz, key="sync_inspect_failures")
        unknown = detail.unknown_values()
        if not unknown.empty:
            tables.table(unknown, tz, key="sync_inspect_values")
        if operator and not detail.pruned and detail.size_bytes <= metrics.MAX_DOWNLOAD_BYTES:
            body = operations.delivery_body_for_download(detail.id)
            if body is not None:
                st.download_button(
                    "Download raw body",
                    body,
                    file_name=f"delivery-{detail.id}.body",
                    mime="application/octet-stream",
                    key="sync_inspect_download",
                    help="As received, with the apiKey and the callback secret removed.",
                )
        elif detail.pruned:
            st.caption("Its body was deleted by retention; the report above stays.")

if operator:
    st.subheader("Send one request by hand", anchor=False)
    st.caption(
        "One Campaign Dial Status request with exactly the API's own filter; the delivery is "
        "stored like any other. It counts against the same rate limit."
    )
    with st.form("manual_request", enter_to_submit=False):
        campaign_names = list(dict.fromkeys([*enabled, *current.campaigns]))
        name = st.selectbox(
            "campaignName",
            campaign_names,
            index=0 if campaign_names else None,
            accept_new_options=True,
            key="manual_campaign",
        )
        sortby = st.selectbox(
            "sortby",
            list(operations.SORT_CHOICES),
            format_func=operations.SORT_CHOICES.get,
            key="manual_sortby",
        )
        c1, c2 = st.columns(2)
        from_day = c1.date_input("fromDate (day)", value=None, key="manual_from_day")
        from_time = c1.time_input("fromDate (time)", value=time(0, 0), key="manual_from_time")
        to_day = c2.date_input("toDate (day)", value=None, key="manual_to_day")
        to_time = c2.time_input("toDate (time)", value=time(23, 59), key="manual_to_time")
        status = st.selectbox(
            "status", operations.STATUS_CHOICES, format_func=str, key="manual_status"
        )
        dial = st.selectbox(
            "dialstatus", operations.DIAL_CHOICES, format_func=str, key="manual_dial"
        )
        disposition = st.selectbox(
            "dispositions",
            [operations.EVERY_DISPOSITION, *current.dispositions],
            accept_new_options=True,
            key="manual_dispositions",
        )
        submitted = st.form_submit_button(
            "Send request", disabled=engine is None, icon=":material/send:"
        )
    if engine is None:
        st.caption(f"Sending needs the sync engine: {svc.no_sync_reason}.")
    elif submitted and access.manual_request_allowed(svc.settings.manual_requests_per_hour):
        try:
            request_id = operations.send_manual_request(
                campaign=name or "",
                sortby=sortby,
                from_day=from_day,
                from_time=from_time,
                to_day=to_day,
                to_time=to_time,
                status=status,
                dial_status=dial,
                disposition=disposition,
            )
        except ValueError as exc:
            st.error(f"Not sent: {ui.md_escape(exc)}", icon=":material/error:")
        else:
            st.success(f"Queued as request {request_id}; see the request log.")

st.subheader("Retention and disk", anchor=False)
kept = ui.read(metrics.storage, svc.settings)
if kept.refusal:
    st.error(ui.md_escape(kept.refusal), icon=":material/hard_drive:")
a, b, c, d = st.columns(4)
a.metric("Bodies kept", f"{kept.bodies_kept:,}", help="Raw delivery bodies still on disk.")
b.metric("Bodies pruned", f"{kept.bodies_pruned:,}", help="Deleted by retention; rows stay.")
c.metric("Deliveries folder", f"{kept.folder_bytes / 1024**2:,.1f} MB")
d.metric("Free disk", f"{kept.disk.free_mb:,} MB", help="Deliveries are refused below the floor.")
tables.table(kept.logs, tz, key="sync_log_tables")
st.caption(
    f"Bodies are deleted {kept.keep_days:g} days after ingest (DIALSTATUS_KEEP_DELIVERIES_DAYS), "
    f"log rows after {kept.log_keep_days} days; the floor is DIALSTATUS_MIN_FREE_MB="
    f"{svc.settings.min_free_mb:g}. Folder: {ui.md_escape(kept.folder)}"
)

"""The connection check (Settings, operators): one documented request, then five plain-words
steps that fill in live: API reached, credentials accepted, request accepted, callback
received, delivery understood.

It runs in a background thread of the server process; the page polls `latest_check()`. The
result stays until the next check. The request goes through the sync engine's client and rate
limiter (lib.sync `send_check`), so the check never breaks the 10-per-minute limit.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime

from lib.config import redact_callback_url

STEP_TITLES = (
    "API reached?",
    "Credentials accepted?",
    "Request accepted?",
    "Callback received?",
    "Delivery understood?",
)


@dataclass(frozen=True)
class Step:
    title: str
    state: str = "waiting"  # waiting | running | ok | warning | failed | skipped
    detail: str = ""
    fix: str = ""


@dataclass(frozen=True)
class CheckResult:
    campaign: str
    started_at: datetime
    steps: tuple[Step, ...]
    finished_at: datetime | None = None
    unique_id: str | None = None
    delivery_id: int | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None


class CheckRunning(RuntimeError):
    """A connection check is running already."""


_lock = threading.Lock()
_latest: CheckResult | None = None


def latest_check() -> CheckResult | None:
    with _lock:
        return _latest


def _set(result: CheckResult) -> None:
    global _latest
    with _lock:
        _latest = result


def _step(result: CheckResult, index: int, **changes) -> CheckResult:
    steps = list(result.steps)
    steps[index] = replace(steps[index], **changes)
    updated = replace(result, steps=tuple(steps))
    _set(updated)
    return updated


def start_check(services, campaign: str, *, poll_s: float = 0.5) -> CheckResult:
    """Starts a check of `campaign` in the background; CheckRunning while one runs, ValueError
    when there is nothing to check with (no sync engine, no campaign)."""
    global _latest
    if services.sync is None:
        raise ValueError(f"the connection check needs the sync engine: {services.no_sync_reason}")
    if not campaign or not campaign.strip():
        raise ValueError("choose a campaign to check")
    first = CheckResult(
        campaign=campaign,
        started_at=datetime.now().astimezone(),
        steps=tuple(Step(title, "running" if i == 0 else "waiting") for i, title in
                    enumerate(STEP_TITLES)),
    )  # fmt: skip
    with _lock:
        if _latest is not None and _latest.running:
            raise CheckRunning("a connection check is running; wait for its result")
        _latest = first
    thread = threading.Thread(
        target=_run, args=(services, first, poll_s), name="dialstatus-check", daemon=True
    )
    thread.start()
    return first


def _run(services, result: CheckResult, poll_s: float) -> None:
    try:
        result = _check(services, result, poll_s)
    except Exception as exc:  # the page says the check itself broke, never a traceback
        result = replace(
            result,
            steps=tuple(
                replace(s, state="failed", detail=f"the check stopped ({type(exc).__name__})")
                if s.state == "running"
                else s
                for s in result.steps
            ),
        )
    _set(replace(result, finished_at=datetime.now().astimezone()))


def _check(services, result: CheckResult, poll_s: float) -> CheckResult:
    from lib.cloudagent.probe import probe

    request_id, probed = services.sync.send_check(result.campaign, probe)
    for index, outcome in enumerate((probed.reached, probed.credentials, probed.accepted)):
        if outcome.ok is None:
            result = _step(result, index, state="skipped", detail="not reached")
            continue
        result = _step(
            result, index, state="ok" if outcome.ok else "failed", detail=outcome.detail,
            fix=outcome.fix,
        )  # fmt: skip
    if not probed.accepted.ok:
        for index in (3, 4):
            result = _step(result, index, state="skipped", detail="not reached")
        return result
    result = replace(result, unique_id=probed.unique_id)
    result = _step(result, 3, state="running", detail="waiting for CloudAgent's callback")
    delivery = _wait_for_delivery(services, request_id, probed.unique_id, poll_s)
    if delivery is None:
        timeout = services.settings.callback_timeout_s
        url = redact_callback_url(services.sync.callback_url)
        result = _step(
            result,
            3,
            state="failed",
            detail=f"No callback arrived within {timeout:g} s. CloudAgent posts the data to "
            f"{url}, so it must be able to reach that address from the internet.",
            fix="DIALSTATUS_PUBLIC_URL (public_url in [dialstatus]): this server's address as "
            "CloudAgent sees it, e.g. https://dialstatus.example.com",
        )
        return _step(result, 4, state="skipped", detail="no delivery to read")
    delivery_id, received_at, source, state, rows, error, report = delivery
    result = replace(result, delivery_id=delivery_id)
    result = _step(
        result,
        3,
        state="ok",
        detail=f"delivery {delivery_id} arrived at {received_at:%H:%M:%S} from {source or '?'}",
    )
    return _step(result, 4, **_understood(state, rows, error, report))


# A delivery is matched to its request at ingest (by uniqueId, else the campaign's newest open
# request): the check waits for a kept body that names its request, finished or failed.
_DELIVERY_SQL = """
SELECT id, received_at, source_addr, state, rows, error, report FROM raw_deliveries
WHERE (request_id = ? OR (? IS NOT NULL AND unique_id = ?)) AND state IN ('ingested', 'failed')
ORDER BY id LIMIT 1
"""


def _wait_for_delivery(services, request_id: int, unique_id: str | None, poll_s: float):
    deadline = time.monotonic() + services.settings.callback_timeout_s
    while True:
        with services.store.cursor() as cursor:
            found = cursor.execute(_DELIVERY_SQL, [request_id, unique_id, unique_id]).fetchone()
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(poll_s)


def _understood(state: str, rows, error, report_text) -> dict:
    """Step 5 in words, from the delivery's report (lib/store/ingest: what the inspector shows)."""
    report = json.loads(report_text) if report_text else {}
    fields = report.get("fields") or []
    mapped = [f["field"] for f in fields if f.get("column")]
    extra = [f["field"] for f in fields if not f.get("column")]
    shape = report.get("shape") or report.get("variant") or "unknown shape"
    if state == "failed":
        return {
            "state": "failed",
            "detail": f"{shape}; it could not be used: {error}",
            "fix": "open it in the delivery inspector (Sync page); map its fields on this page",
        }
    parts = [shape, f"{len(fields)} fields ({len(mapped)} mapped, {len(extra)} kept as extra)"]
    parts.append(f"{rows or 0} rows stored")
    warnings = int(report.get("warnings") or 0)
    if warnings:
        parts.append(f"{warnings} records with values that could not be read")
    return {
        "state": "warning" if warnings else "ok",
        "detail": "; ".join(parts),
        "fix": "see the delivery inspector (Sync page) and the field mapping below"
        if warnings or extra
        else "",
    }


__all__ = ["STEP_TITLES", "CheckResult", "CheckRunning", "Step", "latest_check", "start_check"]

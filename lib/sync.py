"""The background sync engine: keeps every configured campaign fresh within CloudAgent's limit.

One worker thread sends requests one at a time through the process-wide rate limiter, so the
background rounds, the UI's "Sync now", the manual request form and `POST /api/sync` together never
exceed 10 requests in any 60 s. CloudAgent answers with a job id and delivers later to the
callback route; ingestion (lib/store/ingest/) marks the request delivered and moves the watermark.

When CloudAgent misbehaves the engine keeps going: every failure is kept twice, the technical
detail on the request (the Sync page's request log) and a plain-language sentence on the campaign
(`sync_state.last_error`, the Sync page's campaign table), and the campaign is retried by the
next round. Nothing stored is touched by a failure.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from lib.cloudagent import (
    AuthenticationError,
    CloudAgentClient,
    CloudAgentError,
    CloudAgentTimeoutError,
    CloudAgentUnavailableError,
    DialStatusRequest,
    InvalidApiKeyError,
    InvalidCallbackUrlError,
    InvalidCampaignError,
    InvalidUserNameError,
    LeadStatus,
    RateLimitedError,
    RequestValidationError,
    SortBy,
    UnexpectedResponseError,
)
from lib.cloudagent.ratelimit import SlidingWindowLimiter
from lib.store import Store

logger = logging.getLogger(__name__)

# Records can land late and CloudAgent's clock differs from ours: re-read this much before the
# watermark on every incremental refresh (the upsert makes the overlap harmless).
WATERMARK_OVERLAP = timedelta(minutes=15)

CHECK_WINDOW = timedelta(minutes=10)  # the connection check asks for this much recent data

KEPT = "The data shown is from the last successful sync; the next sync tries again."


def plain_error(error: CloudAgentError) -> str:
    """What a failed request means, for the Sync page (the technical text stays on the request)."""
    said = f" (it answered “{error.server_message}”)" if error.server_message else ""
    if isinstance(error, RateLimitedError):
        return (
            f"CloudAgent refused the request: its limit of requests per minute was reached{said}. "
            + KEPT
        )
    if isinstance(error, CloudAgentUnavailableError):
        if error.http_status:
            what = f"answered with a server error (HTTP {error.http_status}) every time"
        elif isinstance(error, CloudAgentTimeoutError):
            what = "did not answer in time, on every attempt"
        else:
            what = "could not be reached, on every attempt"
        return f"CloudAgent {what}. " + KEPT
    if isinstance(error, UnexpectedResponseError):
        if "<html" in (error.excerpt or "").lower() or "<!doctype" in (error.excerpt or "").lower():
            what = (
                "a web page (HTML) instead of its usual answer, e.g. from a proxy or sign-in page"
            )
        else:
            what = "an answer that is not the JSON it normally sends"
        return f"CloudAgent sent {what}. " + KEPT
    if isinstance(error, InvalidApiKeyError | AuthenticationError | InvalidUserNameError):
        return (
            f"CloudAgent rejected the account{said}: check CLOUDAGENT_API_KEY and "
            "CLOUDAGENT_USERNAME. " + KEPT
        )
    if isinstance(error, InvalidCampaignError):
        return (
            f"CloudAgent does not know this campaign{said}: check its exact name on the Settings "
            "page. " + KEPT
        )
    if isinstance(error, InvalidCallbackUrlError):
        return (
            f"CloudAgent rejected the callback address{said}: check DIALSTATUS_PUBLIC_URL. " + KEPT
        )
    if isinstance(error, RequestValidationError):
        return f"The request was not sent: {error.message}"
    return f"CloudAgent refused the request{said or ': ' + error.message}. " + KEPT


def no_callback_message(timeout_s: float) -> str:
    return (
        f"No callback within {int(timeout_s)} s: CloudAgent accepted the request but did not "
        "deliver the data. " + KEPT
    )


def failed_delivery_message(reason: str) -> str:
    return (
        f"CloudAgent's delivery could not be used ({reason}); nothing from it was stored. " + KEPT
    )


class WaitNotes:
    """The latest wait the client announced (rate limit, Retry-After, backoff), for the page."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._reason = ""
        self._until = 0.0

    def note(self, reason: str, seconds: float) -> None:
        with self._lock:
            self._reason, self._until = reason, self._clock() + max(0.0, seconds)

    def current(self) -> str | None:
        with self._lock:
            left = self._until - self._clock()
            return f"{self._reason} ({left:.0f} s left)" if left > 0 and self._reason else None


@dataclass(frozen=True)
class SyncJob:
    campaign: str
    trigger: str  # schedule | ui | api | manual
    request: DialStatusRequest | None = None  # set for hand-made requests from the Sync page


class SyncEngine:
    """Queue + one sender thread + callback-timeout bookkeeping, all state in the store."""

    def __init__(
        self,
        store: Store,
        client: CloudAgentClient,
        limiter: SlidingWindowLimiter,
        *,
        account: str,
        callback_url: str,
        timezone: str,
        interval_s: float,
        callback_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        wait_notes: WaitNotes | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._limiter = limiter
        self._account = account
        self._callback_url = callback_url
        self._timezone = timezone
        self._interval_s = interval_s
        self._callback_timeout_s = callback_timeout_s
        self._clock = clock
        self._queue: deque[SyncJob] = deque()
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_round_at = 0.0
        self._sending: SyncJob | None = None
        self._sending_since = 0.0
        self._waits = wait_notes

    # -- public interface (UI, routes, lifespan) -------------------------------------------

    def start(self) -> None:
        with self._store.writing() as cursor:  # requests left open by the previous process
            cursor.execute(
                "UPDATE sync_requests SET state = 'error', "
                "error = 'Not sent: the server restarted before its turn' WHERE state = 'queued'"
            )
            # Their callbacks may never come (a restarted or rotated callback address): ask again
            # now; a late delivery is still matched by its uniqueId and stored, harmlessly twice.
            cursor.execute(
                "UPDATE sync_requests SET state = 'timed_out', "
                "error = 'No callback before the server restarted; asked again' "
                "WHERE state IN ('sent', 'accepted')"
            )
        self._thread = threading.Thread(target=self._run, name="dialstatus-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def request_sync(self, campaign: str | None = None, trigger: str = "ui") -> int:
        """Queues a refresh of one campaign (or all enabled ones); returns how many were queued."""
        names = [campaign] if campaign else self._stalest_first()
        with self._condition:
            queued = 0
            for name in names:
                if not self._is_pending(name):
                    self._queue.append(SyncJob(name, trigger))
                    queued += 1
            self._condition.notify_all()
        return queued

    def send_manual(self, request: DialStatusRequest) -> int:
        """Queues one hand-made request (every API parameter as given); returns its request id."""
        if not request.callback_url:
            request = replace(request, callback_url=self._callback_url)
        request.validate()
        request_id = self._log_request(request, kind="manual", state="queued")
        with self._condition:
            self._queue.append(SyncJob(request.campaign_name, "manual", request))
            self._condition.notify_all()
        return request_id

    def send_check(self, campaign: str, probe: Callable) -> tuple[int, object]:
        """The connection check's one request (Settings): the campaign's last 10 minutes by
        update time, sent at once (not queued) through this engine's client and limiter, logged
        as kind 'check' so its callback is matched to it and moves no watermark. `probe(client,
        request)` sends it and returns its result (lib.cloudagent.probe); returns (request id,
        that result)."""
        now_local = datetime.now(tz=self._zone()).replace(tzinfo=None, microsecond=0)
        request = DialStatusRequest(
            campaign_name=campaign,
            callback_url=self._callback_url,
            from_date=now_local - CHECK_WINDOW,
            to_date=now_local,
            sortby=SortBy.UPDATED,
            status=LeadStatus.ALL,
        )
        request_id = self._log_request(request, kind="check", state="sent")
        self._mark(request_id, "sent", sent_at=True)
        result = probe(self._client, request)
        if result.unique_id is not None or result.accepted.ok:
            self._mark(request_id, "accepted", accepted_at=True, unique_id=result.unique_id)
        else:
            with self._store.writing() as cursor:
                cursor.execute(
                    "UPDATE sync_requests SET state = 'error', error = ? WHERE id = ?",
                    [result.failure.detail if result.failure else "refused", request_id],
                )
        return request_id, result

    @property
    def callback_url(self) -> str:
        return self._callback_url

    def status(self) -> dict:
        with self._condition:
            queue = [job.campaign for job in self._queue]
            sending = self._sending.campaign if self._sending else None
            sending_for = self._clock() - self._sending_since
        waiting = self._waits.current() if self._waits else None
        if waiting is None and sending is not None and sending_for >= 2:
            waiting = (
                f"waiting for CloudAgent to answer the request for {sending!r} "
                f"({sending_for:.0f} s so far)"
            )
        with self._store.cursor() as cursor:
            rows = cursor.execute(
                "SELECT campaign_name, id, state, sent_at FROM sync_requests "
                "WHERE state IN ('sent', 'accepted') ORDER BY id"
            ).fetchall()
        return {
            "running": self._thread is not None and self._thread.is_alive(),
            "queue": queue,
            "sending": sending,
            "in_flight": [
                {"campaign": c, "request_id": i, "state": s, "sent_at": str(t) if t else None}
                for c, i, s, t in rows
            ],
            "limiter": self._limiter.state(self._account),
            "interval_s": self._interval_s,
            "waiting_reason": waiting,
        }

    def _stalest_first(self) -> list[str]:
        """Enabled campaigns, those never synced first, then the longest since a success: when
        the rate limit (or a restart) splits a round, the campaigns without data go first."""
        with self._store.cursor() as cursor:
            rows = cursor.execute(
                "SELECT c.name FROM campaigns c "
                "LEFT JOIN sync_state s ON s.campaign_name = c.name WHERE c.enabled "
                "ORDER BY s.last_success_at NULLS FIRST, c.added_at, c.name"
            ).fetchall()
        return [name for (name,) in rows]

    # -- the sender thread -----------------------------------------------------------------

    def _is_pending(self, campaign: str) -> bool:
        queued = any(job.campaign == campaign and job.request is None for job in self._queue)
        sending = self._sending is not None and self._sending.campaign == campaign
        return queued or sending or self._awaiting_callback(campaign)

    def _awaiting_callback(self, campaign: str) -> bool:
        with self._store.cursor() as cursor:
            row = cursor.execute(
                "SELECT count(*) FROM sync_requests WHERE campaign_name = ? "
                "AND kind IN ('full', 'incremental') AND state IN ('sent', 'accepted')",
                [campaign],
            ).fetchone()
        return row[0] > 0

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._expire_overdue_requests()
                if self._clock() >= self._next_round_at:
                    self._next_round_at = self._clock() + self._interval_s
                    self.request_sync(trigger="schedule")
                job = self._next_job()
                if job is not None:
                    self._send(job)
            except Exception:  # keep the engine alive; the error is in the log and the store
                logger.exception("sync loop iteration failed")
                self._stopping.wait(1.0)

    def _next_job(self) -> SyncJob | None:
        with self._condition:
            if not self._queue:
                timeout = max(0.2, min(5.0, self._next_round_at - self._clock()))
                self._condition.wait(timeout)
            if not self._queue or self._stopping.is_set():
                return None
            self._sending = self._queue.popleft()
            self._sending_since = self._clock()
            return self._sending

    def _send(self, job: SyncJob) -> None:
        try:
            if job.request is not None:
                request, kind = job.request, "manual"
                request_id = self._find_queued_manual(job.campaign)
            else:
                request, kind = self._refresh_request(job.campaign)
                request_id = self._log_request(request, kind=kind, state="queued")
            self._mark(request_id, "sent", sent_at=True)  # the client waits for the limiter
            try:
                accepted = self._client.request_dial_status(request)
            except CloudAgentError as error:
                self._record_error(request_id, job.campaign, str(error), plain_error(error))
                return
            self._mark(request_id, "accepted", accepted_at=True, unique_id=accepted.unique_id)
        finally:
            with self._condition:
                self._sending = None

    def _refresh_request(self, campaign: str) -> tuple[DialStatusRequest, str]:
        """A full load until a watermark exists, then updated-since-watermark with an overlap.

        fromDate never passes now (less the overlap), so even a watermark left in the future by
        an older release cannot build a request whose fromDate is after its toDate."""
        with self._store.cursor() as cursor:
            row = cursor.execute(
                "SELECT watermark::TIMESTAMP FROM sync_state WHERE campaign_name = ?", [campaign]
            ).fetchone()
        watermark = row[0] if row else None
        if watermark is None:
            return DialStatusRequest(
                campaign_name=campaign, callback_url=self._callback_url
            ), "full"
        now_local = datetime.now(tz=self._zone()).replace(tzinfo=None, microsecond=0)
        request = DialStatusRequest(
            campaign_name=campaign,
            callback_url=self._callback_url,
            from_date=min(watermark, now_local) - WATERMARK_OVERLAP,
            to_date=now_local + WATERMARK_OVERLAP,
            sortby=SortBy.UPDATED,
            status=LeadStatus.ALL,
        )
        return request, "incremental"

    def _zone(self):
        from zoneinfo import ZoneInfo

        return ZoneInfo(self._timezone)

    # -- bookkeeping in the store ----------------------------------------------------------

    def _log_request(self, request: DialStatusRequest, *, kind: str, state: str) -> int:
        params = request.to_body(self._account)
        params["callBackUrl"] = "<callback url>"  # holds the callback secret: never stored
        with self._store.writing() as cursor:
            row = cursor.execute(
                "INSERT INTO sync_requests (campaign_name, kind, params, state) "
                "VALUES (?, ?, ?, ?) RETURNING id",
                [request.campaign_name, kind, json.dumps(params), state],
            ).fetchone()
        return row[0]

    def _find_queued_manual(self, campaign: str) -> int:
        with self._store.cursor() as cursor:
            row = cursor.execute(
                "SELECT min(id) FROM sync_requests WHERE campaign_name = ? AND kind = 'manual' "
                "AND state = 'queued'",
                [campaign],
            ).fetchone()
        return row[0]

    def _mark(
        self,
        request_id: int,
        state: str,
        *,
        sent_at: bool = False,
        accepted_at: bool = False,
        unique_id: str | None = None,
    ) -> None:
        with self._store.writing() as cursor:
            cursor.execute(
                "UPDATE sync_requests SET state = ?, "
                "sent_at = CASE WHEN ? THEN now() ELSE sent_at END, "
                "accepted_at = CASE WHEN ? THEN now() ELSE accepted_at END, "
                "unique_id = coalesce(?, unique_id) "
                "WHERE id = ? AND state NOT IN ('delivered')",
                [state, sent_at, accepted_at, unique_id, request_id],
            )

    def _record_error(self, request_id: int, campaign: str, message: str, plain: str) -> None:
        logger.warning("sync request for %r failed: %s", campaign, message)
        with self._store.writing() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "UPDATE sync_requests SET state = 'error', error = ? WHERE id = ?",
                [message, request_id],
            )
            _set_campaign_error(cursor, campaign, plain)
            cursor.execute("COMMIT")

    def _expire_overdue_requests(self) -> None:
        """Requests whose callback never came are marked timed out; the next round retries."""
        with self._store.writing() as cursor:
            overdue = cursor.execute(
                "UPDATE sync_requests SET state = 'timed_out', "
                "error = 'No callback arrived within ' || ? || ' s' "
                "WHERE state IN ('sent', 'accepted') "
                "AND coalesce(accepted_at, sent_at) < now() - to_seconds(?) "
                "RETURNING campaign_name, kind",
                [int(self._callback_timeout_s), self._callback_timeout_s],
            ).fetchall()
            for campaign, kind in overdue:
                if kind == "check":  # the check reports it itself; the campaign's sync is fine
                    continue
                _set_campaign_error(cursor, campaign, no_callback_message(self._callback_timeout_s))


def _set_campaign_error(cursor, campaign: str, message: str) -> None:
    cursor.execute(
        "INSERT INTO sync_state (campaign_name, last_error, last_error_at) VALUES (?, ?, now()) "
        "ON CONFLICT (campaign_name) DO UPDATE SET last_error = excluded.last_error, "
        "last_error_at = excluded.last_error_at",
        [campaign, message],
    )


def record_failed_delivery(
    store: Store,
    delivery_id: int,
    reason: str,
    *,
    unique_id: str | None = None,
    campaign: str | None = None,
) -> int | None:
    """A callback that arrived but could not be used (bad body, broken or truncated link): the
    request it answers is marked 'error' at once (so the next round asks again instead of waiting
    for the callback timeout) and the campaign says why. Returns the request id, if one matched."""
    with store.writing() as cursor:
        row = cursor.execute(
            "SELECT unique_id, campaign_name FROM raw_deliveries WHERE id = ?", [delivery_id]
        ).fetchone()
        if row is None:
            return None
        unique_id = unique_id or row[0]
        campaign = campaign or row[1]
        request = None
        if unique_id:
            request = cursor.execute(
                "SELECT id, campaign_name, state FROM sync_requests WHERE unique_id = ? "
                "ORDER BY id DESC LIMIT 1",
                [unique_id],
            ).fetchone()
        if request is None and campaign:
            request = cursor.execute(
                "SELECT id, campaign_name, state FROM sync_requests WHERE campaign_name = ? "
                "AND state IN ('sent', 'accepted') ORDER BY id DESC LIMIT 1",
                [campaign],
            ).fetchone()
        campaign = campaign or (request[1] if request else None)
        cursor.execute("BEGIN")
        cursor.execute(
            "UPDATE raw_deliveries SET unique_id = coalesce(unique_id, ?), "
            "campaign_name = coalesce(campaign_name, ?), request_id = coalesce(request_id, ?) "
            "WHERE id = ?",
            [unique_id, campaign, request[0] if request else None, delivery_id],
        )
        if request is not None:
            cursor.execute(
                "UPDATE sync_requests SET state = 'error', error = ? "
                "WHERE id = ? AND state IN ('sent', 'accepted', 'timed_out')",
                [f"delivery {delivery_id} could not be used: {reason}", request[0]],
            )
        # A stray copy of a delivery already answered says nothing about the campaign's state.
        if campaign and (request is None or request[2] in ("sent", "accepted", "timed_out")):
            _set_campaign_error(cursor, campaign, failed_delivery_message(reason))
        cursor.execute("COMMIT")
    logger.warning("delivery %s (campaign %r) could not be used: %s", delivery_id, campaign, reason)
    return request[0] if request else None

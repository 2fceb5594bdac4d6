"""The background sync engine: keeps every configured campaign fresh within CloudAgent's limit.

One worker thread sends requests one at a time through the process-wide rate limiter, so the
background rounds, the UI's "Sync now", the manual request form and `POST /api/sync` together never
exceed 10 requests in any 60 s. CloudAgent answers with a job id and delivers later to the
callback route; ingestion (lib/ingest.py) marks the request delivered and moves the watermark.
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

from lib import catalog
from lib.cloudagent import (
    CloudAgentClient,
    CloudAgentError,
    DialStatusRequest,
    LeadStatus,
    SortBy,
)
from lib.ratelimit import SlidingWindowLimiter
from lib.store import Store

logger = logging.getLogger(__name__)

# Records can land late and CloudAgent's clock differs from ours: re-read this much before the
# watermark on every incremental refresh (the upsert makes the overlap harmless).
WATERMARK_OVERLAP = timedelta(minutes=15)


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

    # -- public interface (UI, routes, lifespan) -------------------------------------------

    def start(self) -> None:
        with self._store.writing() as cursor:  # hand-made requests queued before a restart
            cursor.execute(
                "UPDATE sync_requests SET state = 'error', "
                "error = 'Not sent: the server restarted before its turn' WHERE state = 'queued'"
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
        names = [campaign] if campaign else catalog.list_campaigns(self._store, enabled_only=True)
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

    def status(self) -> dict:
        with self._condition:
            queue = [job.campaign for job in self._queue]
            sending = self._sending.campaign if self._sending else None
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
        }

    # -- the sender thread -----------------------------------------------------------------

    def _is_pending(self, campaign: str) -> bool:
        queued = any(job.campaign == campaign and job.request is None for job in self._queue)
        sending = self._sending is not None and self._sending.campaign == campaign
        return queued or sending or self._awaiting_callback(campaign)

    def _awaiting_callback(self, campaign: str) -> bool:
        with self._store.cursor() as cursor:
            row = cursor.execute(
                "SELECT count(*) FROM sync_requests WHERE campaign_name = ? "
                "AND kind <> 'manual' AND state IN ('sent', 'accepted')",
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
                self._record_error(request_id, job.campaign, str(error))
                return
            self._mark(request_id, "accepted", accepted_at=True, unique_id=accepted.unique_id)
        finally:
            with self._condition:
                self._sending = None

    def _refresh_request(self, campaign: str) -> tuple[DialStatusRequest, str]:
        """A full load until a watermark exists, then updated-since-watermark with an overlap."""
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
            from_date=watermark - WATERMARK_OVERLAP,
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

    def _record_error(self, request_id: int, campaign: str, message: str) -> None:
        logger.warning("sync request for %r failed: %s", campaign, message)
        with self._store.writing() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "UPDATE sync_requests SET state = 'error', error = ? WHERE id = ?",
                [message, request_id],
            )
            _set_campaign_error(cursor, campaign, message)
            cursor.execute("COMMIT")

    def _expire_overdue_requests(self) -> None:
        """Requests whose callback never came are marked timed out; the next round retries."""
        with self._store.writing() as cursor:
            overdue = cursor.execute(
                "UPDATE sync_requests SET state = 'timed_out', "
                "error = 'No callback arrived within ' || ? || ' s' "
                "WHERE state IN ('sent', 'accepted') "
                "AND coalesce(accepted_at, sent_at) < now() - to_seconds(?) "
                "RETURNING campaign_name",
                [int(self._callback_timeout_s), self._callback_timeout_s],
            ).fetchall()
            for (campaign,) in overdue:
                _set_campaign_error(
                    cursor, campaign, f"No callback within {int(self._callback_timeout_s)} s"
                )


def _set_campaign_error(cursor, campaign: str, message: str) -> None:
    cursor.execute(
        "INSERT INTO sync_state (campaign_name, last_error, last_error_at) VALUES (?, ?, now()) "
        "ON CONFLICT (campaign_name) DO UPDATE SET last_error = excluded.last_error, "
        "last_error_at = excluded.last_error_at",
        [campaign, message],
    )

"""The server side of the one process: callback, health and sync routes, the demo sandbox mount,
security headers, and the lifespan that recovers pending deliveries and runs the sync engine.

Blocking work (DuckDB, fsync, sync HTTP) runs in worker threads so the event loop keeps serving
the UI while a large delivery is ingested.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import math
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from urllib.parse import urlsplit

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from lib.auth import BackoffByClient
from lib.config import SANDBOX_PREFIX, Settings, mask_secrets, presented_token
from lib.engine_setup import sandbox_mount, start_engine
from lib.services import Services, get_services
from lib.store import StoreError, catalog
from lib.store.ingest import ingest_delivery, ingest_pending, retry_pending, settle_duplicate
from lib.store.receive import DeliveryRejected, check_content_type, register_raw
from lib.store.reingest import (
    ReplayRunning,
    latest_run,
    parse_since,
    replaying,
    resume_interrupted,
    start_replay,
)
from lib.store.retention import disk_space

logger = logging.getLogger(__name__)

CALLBACK_PREFIX = "/api/callback/"
_SECRET_IN_PATH = re.compile(re.escape(CALLBACK_PREFIX) + r"[^\s\"'?/]+")


class _RedactCallbackSecret(logging.Filter):
    """Access logs print request paths; the callback path's last segment is a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_IN_PATH.sub(CALLBACK_PREFIX + "***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_IN_PATH.sub(CALLBACK_PREFIX + "***", record.msg)
        return True


logging.getLogger("uvicorn.access").addFilter(_RedactCallbackSecret())


class SecurityHeaders:
    """Adds nosniff, frame and referrer policies to every HTTP response."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"SAMEORIGIN"),
        (b"content-security-policy", b"frame-ancestors 'self'"),
        (b"referrer-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.HEADERS if n not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status)


def _secret_matches(given: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), str(expected).encode())


async def _services() -> Services:
    """The process's services; raises StoreError when the database cannot be used."""
    try:
        return await anyio.to_thread.run_sync(get_services)
    except OSError as exc:  # the data folder cannot take the generated callback secret
        where = exc.filename.rsplit("/", 1)[-1] if isinstance(exc.filename, str) else "its data"
        raise StoreError(
            f"The dashboard cannot write {where} beside its database ({exc.strerror or exc}). "
            "Make the folder of DIALSTATUS_DB writable by the user running the server.",
            exc.filename,
        ) from None


def _store_unavailable(exc: StoreError, message: str | None = None) -> JSONResponse:
    """503 with a plain message (never a traceback): the database cannot be used right now."""
    return _error(503, message or str(exc))


async def callback(request: Request) -> JSONResponse:
    """Receives a CloudAgent delivery: persist raw first, then ingest in one transaction."""
    try:
        services = await _services()
    except StoreError as exc:  # CloudAgent learns to try later; no body is half-kept
        return _store_unavailable(exc, "the dashboard cannot store deliveries right now")
    settings = services.settings
    if not _secret_matches(request.path_params["secret"], settings.callback_secret):
        return _error(403, "unknown callback address")
    if disk_space(settings.deliveries_dir, settings.min_free_mb).below_floor:
        return _refused(DeliveryRejected(503, DISK_FULL))  # nothing written: it comes again
    content_type = request.headers.get("content-type", "")
    try:
        check_content_type(content_type)
    except DeliveryRejected as rejected:
        return _error(rejected.status_code, rejected.message)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        return _error(413, f"body over the {settings.max_body_bytes} byte limit")

    with _disk_full_refused():
        settings.deliveries_dir.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=settings.deliveries_dir, suffix=".part")
    try:
        size, sha256 = await write_body(request.stream(), handle, settings.max_body_bytes)
        if size == 0:
            return _error(400, "empty body")
        with _disk_full_refused():  # the fsync can be where a full disk shows
            raw = await anyio.to_thread.run_sync(
                lambda: register_raw(
                    services.store,
                    settings.deliveries_dir,
                    tmp_name,
                    content_type,
                    request.client.host if request.client else None,
                    sha256=sha256,
                )
            )
    except DeliveryRejected as rejected:
        return _refused(rejected)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp_name)
    options = ingest_options(settings)
    if not raw.duplicate and replaying(services.store):  # kept; ingested after the replay
        return JSONResponse(
            {"status": "queued", "deliveryId": raw.id, "message": REPLAY_QUEUED}, status_code=202
        )
    try:
        if raw.duplicate:  # no lead is written again; it waits for the first copy, then answers
            result = await anyio.to_thread.run_sync(
                lambda: settle_duplicate(services.store, raw, **options)
            )
        else:
            result = await anyio.to_thread.run_sync(
                lambda: ingest_delivery(services.store, raw.id, **options)
            )
    except DeliveryRejected as rejected:
        failed = raw.duplicate_of or raw.id  # a copy reports the failure of the first one
        await anyio.to_thread.run_sync(_record_failed_delivery, services, failed, rejected)
        return _error(rejected.status_code, rejected.message)
    answer = {"status": "ok", "deliveryId": raw.id, "rows": result.rows}
    return JSONResponse({**answer, "duplicate": True} if raw.duplicate else answer)


REPLAY_QUEUED = "kept; it is ingested once the re-ingest running now is finished"


def ingest_options(settings: Settings) -> dict:
    """How every ingest of this server fetches file links and how large a delivery may be."""
    return {"allowed_hosts": _allowed_file_hosts(settings), "max_bytes": settings.max_body_bytes}


DISK_FULL = "the dashboard's disk is full; send the delivery again later"
RETRY_AFTER_S = 300  # a refused delivery's 503: when to send it again


@contextmanager
def _disk_full_refused() -> Iterator[None]:
    """A full disk (ENOSPC) is a 503 the sender retries, not a 500."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        logger.error("a delivery was refused: the disk holding the deliveries folder is full")
        raise DeliveryRejected(503, DISK_FULL) from None


async def write_body(
    chunks: AsyncIterator[bytes], descriptor: int, max_bytes: int
) -> tuple[int, str]:
    """Streams a callback body into the open file `descriptor` and closes it; its size and
    sha256, hashed as it arrives (~0.2 s of CPU for a 375 MB body, spread over its chunks, where
    reading the file back to hash it came after the last byte). Raises DeliveryRejected: 413
    past `max_bytes`, 503 when the disk cannot take it."""
    size = 0
    digest = hashlib.sha256()
    with _disk_full_refused(), open(descriptor, "wb") as target:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise DeliveryRejected(413, f"body over the {max_bytes} byte limit")
            target.write(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def _refused(rejected: DeliveryRejected) -> JSONResponse:
    """The answer to a delivery not kept; a 503 says when to send it again."""
    response = _error(rejected.status_code, rejected.message)
    if rejected.status_code == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def _record_failed_delivery(services: Services, delivery_id: int, rejected: DeliveryRejected):
    """The request the failed delivery answers is closed at once, and the campaign says why."""
    from lib.sync import record_failed_delivery

    try:
        record_failed_delivery(
            services.store,
            delivery_id,
            mask_secrets(rejected.message, services.settings.secret_values),  # stored and logged
            unique_id=rejected.unique_id,
            campaign=rejected.campaign_name,
        )
    except Exception:  # bookkeeping only: the answer to the sender must not change
        logger.exception("could not record the failure of delivery %s", delivery_id)


def _allowed_file_hosts(settings: Settings) -> tuple[str, ...]:
    """File links are fetched only from the CloudAgent API's scheme, host and port; in demo mode
    only from the sandbox's own file path on this server (lib/store/receive/links.py)."""
    if settings.demo:
        return (_local_url() + SANDBOX_PREFIX + "/files/",)
    api = urlsplit(settings.cloudagent.api_url)
    return (f"{api.scheme}://{api.netloc}",)


def _authorised(request: Request, settings: Settings) -> bool:
    token = presented_token(request.headers)
    return _secret_matches(token, settings.admin_token) or _secret_matches(
        token, settings.callback_secret
    )


# Failed tokens per client address: a few typos are free, then each failure doubles the wait.
_token_failures = BackoffByClient(free=3, first_s=1.0, cap_s=60.0)


def _token_refusal(request: Request, settings: Settings) -> JSONResponse | None:
    """None when the request carries a valid token; else the answer: 429 with Retry-After
    while this client's earlier failures hold it back (the token is not even compared), or
    401, the failure counted."""
    client = request.client.host if request.client else "unknown"
    wait = _token_failures.wait_left(client)
    if wait > 0:
        return _throttled(wait)
    if _authorised(request, settings):
        _token_failures.succeeded(client)
        return None
    delay = _token_failures.failed(client)
    refusal = _error(401, "a valid X-Dialstatus-Token is required")
    if delay:
        refusal.headers["Retry-After"] = str(math.ceil(delay))
    return refusal


def _throttled(wait: float) -> JSONResponse:
    seconds = math.ceil(wait)
    response = _error(429, f"too many wrong tokens from this address: try again in {seconds} s")
    response.headers["Retry-After"] = str(seconds)
    return response


async def health(request: Request) -> JSONResponse:
    """Liveness for anyone; campaign details only when sign-in is off or a token is given."""
    try:
        services = await _services()
    except StoreError as exc:
        return _store_unavailable(exc)
    settings = services.settings
    if settings.auth.mode != "none":
        liveness = JSONResponse({"status": "ok", "mode": "demo" if settings.demo else "live"})
        if not presented_token(request.headers):
            return liveness
        # A wrong token counts as on POST /api/sync, and is held back the same way.
        refusal = _token_refusal(request, settings)
        if refusal is not None:
            return refusal if refusal.status_code == 429 else liveness
    payload = await anyio.to_thread.run_sync(_health_payload, services)
    return JSONResponse(payload)


def _health_payload(services: Services) -> dict:
    settings = services.settings
    with services.store.cursor() as cursor:
        rows = cursor.execute(
            """
            SELECT c.name, s.last_success_at, s.watermark, s.last_error, s.last_error_at,
                   (SELECT count(*) FROM leads l WHERE l.campaign_name = c.name)
            FROM campaigns c LEFT JOIN sync_state s ON s.campaign_name = c.name
            WHERE c.enabled ORDER BY c.name
            """
        ).fetchall()
    engine = services.sync
    with services.store.cursor() as cursor:
        warned, warning_records = cursor.execute(
            "SELECT count(*), coalesce(sum(warnings), 0) FROM raw_deliveries WHERE warnings > 0"
        ).fetchone()
    replay = latest_run(services.store)
    return {
        "status": "ok",
        "mode": "demo" if settings.demo else "live",
        "data_version": services.store.data_version(),
        "campaigns": [
            {
                "name": name,
                "last_success_at": success.isoformat() if success else None,
                "watermark": watermark.isoformat() if watermark else None,
                "rows": count,
                "last_error": error,
                "last_error_at": error_at.isoformat() if error_at else None,
            }
            for name, success, watermark, error, error_at, count in rows
        ],
        "sync": engine.status() if engine else {"running": False},
        # Deliveries stored with values that could not be read (their dates left empty).
        "deliveries_with_warnings": warned,
        "records_with_warnings": int(warning_records),
        "reingest": None
        if replay is None
        else {
            "running": replay.running,
            "total": replay.total,
            "done": replay.done,
            "skipped": replay.skipped,
            "failed": replay.failed,
            "error": replay.error,
        },
    }


async def reingest(request: Request) -> JSONResponse:
    """POST /api/reingest[?campaign=..&since=..]: every kept body parsed again with the current
    mapping, in the background (lib/store/reingest.py); 409 while one runs."""
    try:
        services = await _services()
    except StoreError as exc:
        return _store_unavailable(exc)
    refusal = _token_refusal(request, services.settings)
    if refusal is not None:
        return refusal
    campaign = request.query_params.get("campaign") or None
    try:
        since = parse_since(request.query_params.get("since"), services.settings.zone)
    except ValueError as exc:
        return _error(400, str(exc))
    try:
        progress = await anyio.to_thread.run_sync(
            lambda: start_replay(
                services.store,
                campaign=campaign,
                since=since,
                requested_by="api",
                **ingest_options(services.settings),
            )
        )
    except ReplayRunning as exc:
        return _error(409, str(exc))
    return JSONResponse(
        {"status": "started", "run": progress.run_id, "deliveries": progress.total},
        status_code=202,
    )


ALREADY_PENDING = "already queued or waiting for CloudAgent's delivery: nothing more was queued"


async def sync_now(request: Request) -> JSONResponse:
    try:
        services = await _services()
    except StoreError as exc:
        return _store_unavailable(exc)
    refusal = _token_refusal(request, services.settings)
    if refusal is not None:
        return refusal
    campaign = request.query_params.get("campaign")
    if services.sync is None:
        return _error(503, "the sync engine is not running")
    if campaign is not None:
        known = await anyio.to_thread.run_sync(catalog.list_campaigns, services.store)
        if campaign not in known:
            return _error(404, "unknown campaign")
    queued = await anyio.to_thread.run_sync(services.sync.request_sync, campaign, "api")
    if not queued:  # each one asked is in the queue already or awaits CloudAgent's delivery
        return JSONResponse(
            {"status": "pending", "queued": 0, "message": ALREADY_PENDING}, status_code=202
        )
    return JSONResponse({"status": "queued", "queued": queued}, status_code=202)


def public_url(settings: Settings) -> str:
    """Where CloudAgent reaches this server: DIALSTATUS_PUBLIC_URL, else its own address."""
    if settings.public_url:
        return settings.public_url
    from streamlit import config

    host = config.get_option("server.address") or "127.0.0.1"
    return f"http://{host}:{config.get_option('server.port')}"


def routes() -> list:
    return [
        Route(CALLBACK_PREFIX + "{secret}", callback, methods=["POST"]),
        Route("/api/health", health, methods=["GET"]),
        Route("/api/sync", sync_now, methods=["POST"]),
        Route("/api/reingest", reingest, methods=["POST"]),
        Mount(SANDBOX_PREFIX, app=sandbox_mount),
    ]


async def _wait_until_serving(base_url: str) -> None:
    """The engine may call this server's own sandbox only once it accepts connections."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        for _ in range(600):
            with suppress(httpx.HTTPError):
                if (await client.get(base_url + "/_stcore/health")).status_code == 200:
                    return
            await anyio.sleep(0.1)


def _remove_partial_bodies(deliveries_dir) -> int:
    """Bodies still being received when the server died (`*.part`): never acknowledged (the
    sender got no 200 and sends again), so they are only disk space."""
    from pathlib import Path

    folder = Path(deliveries_dir)
    removed = 0
    if folder.is_dir():
        for path in folder.glob("*.part"):
            with suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


# How often deliveries that failed for a transient reason are looked at again (each waits its
# own time too: lib.store.ingest.lifecycle.RETRY_DELAY_S).
RETRY_INTERVAL_S = 30.0


@asynccontextmanager
async def lifespan(app):
    try:
        services = await _services()
    except StoreError as exc:
        # The pages and /api/health say what is wrong; nothing else can run without the store.
        logger.error("The dashboard cannot use its database (%s): %s", exc.path or "?", exc)
        yield
        return
    settings = services.settings
    removed = await anyio.to_thread.run_sync(_remove_partial_bodies, settings.deliveries_dir)
    if removed:
        logger.warning("removed %d partly received bodies left from before a restart", removed)
    await anyio.to_thread.run_sync(
        catalog.ensure_config_campaigns, services.store, settings.campaigns
    )
    local_url = _local_url()
    if settings.sync_enabled:
        base = local_url if settings.demo else public_url(settings)
        start_engine(services, base + CALLBACK_PREFIX + settings.callback_secret, local_url)
    else:
        logger.info("background sync is off (DIALSTATUS_SYNC_ENABLED=false)")
    stopping = threading.Event()

    async def recover_then_sync() -> None:
        # Pages first: a delivery that kills the process must not keep it from ever serving.
        await _wait_until_serving(local_url)
        resumed = await anyio.to_thread.run_sync(
            lambda: resume_interrupted(services.store, **ingest_options(settings))
        )
        if resumed is None:  # else the replay ingests what is left, after its own deliveries
            await anyio.to_thread.run_sync(_ingest_left_over, services, stopping, ingest_pending)
        if services.sync is not None:  # after recovery: its deliveries answer the old requests
            services.sync.start()
            logger.info("sync engine started (%s mode)", "demo" if settings.demo else "live")
        while not stopping.is_set():
            await anyio.sleep(RETRY_INTERVAL_S)
            if not replaying(services.store):
                await anyio.to_thread.run_sync(_ingest_left_over, services, stopping, retry_pending)

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(recover_then_sync)
            try:
                yield
            finally:
                stopping.set()  # the delivery being recovered is finished, the rest wait
                tasks.cancel_scope.cancel()
    finally:
        if services.sync is not None:
            await anyio.to_thread.run_sync(services.sync.stop)
        await anyio.to_thread.run_sync(_checkpoint, services)


def _ingest_left_over(services: Services, stopping: threading.Event, run) -> None:
    """Recovery at start (`ingest_pending`) or a retry pass (`retry_pending`), in the background;
    a failure closes the request it answers like a failed callback does."""
    try:
        done = run(
            services.store,
            on_failed=lambda delivery_id, rejected: _record_failed_delivery(
                services, delivery_id, rejected
            ),
            stopping=stopping,
            **ingest_options(services.settings),
        )
    except Exception:  # the server goes on serving; the deliveries stay for the next pass
        logger.exception("could not ingest the deliveries left to do")
        return
    if done and run is ingest_pending:  # a warning: the server stopped with work in hand
        logger.warning("ingested %d deliveries left from before a restart", len(done))
    elif done:
        logger.info("ingested %d deliveries on a retry", len(done))


def _checkpoint(services: Services) -> None:
    """On a clean stop, everything goes from DuckDB's write-ahead log into the database file, so
    the file alone is a complete backup (without this the data can sit in `<db>.wal`)."""
    try:
        with services.store.writing() as cursor:
            cursor.execute("CHECKPOINT")
    except Exception:  # the stop goes on; the log is replayed at the next start anyway
        logger.exception("could not checkpoint the database on shutdown")


def _local_url() -> str:
    """This server on loopback (how the engine reaches the demo sandbox)."""
    from streamlit import config

    return f"http://127.0.0.1:{config.get_option('server.port')}"

"""Building the sync engine for the server's lifespan: the CloudAgent client with the shared,
durable rate limiter and, in demo mode, the sandbox mounted on this server's own port."""

from __future__ import annotations

import json
import logging
import os
import secrets

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from lib.config import API_PATH, SANDBOX_PREFIX, ConfigError
from lib.services import Services

logger = logging.getLogger(__name__)


class _LateMount:
    """An ASGI app filled in by the lifespan, once the server's own address is known."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            response = JSONResponse({"status": "error", "message": "sandbox not running"}, 404)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


sandbox_mount = _LateMount()


def start_engine(services: Services, callback_url: str, local_base: str) -> None:
    """Builds the client and engine; in demo mode the client talks to the mounted sandbox."""
    from lib.cloudagent import ClientOptions, CloudAgentClient
    from lib.cloudagent.ratelimit import SlidingWindowLimiter
    from lib.store.api_calls import ApiCallJournal
    from lib.sync import SyncEngine, WaitNotes

    settings = services.settings
    api_url = settings.cloudagent.api_url
    api_key = settings.cloudagent.api_key
    if settings.demo:
        from lib.sandbox import SandboxConfig, create_sandbox_app, default_campaigns

        api_key = secrets.token_urlsafe(24)
        api_url = local_base + SANDBOX_PREFIX + API_PATH
        sizes = default_campaigns()
        sandbox_mount.app = create_sandbox_app(
            SandboxConfig(
                api_key=api_key,
                username=settings.cloudagent.username,
                campaigns={name: sizes.get(name, 2000) for name in settings.campaigns},
                public_base_url=local_base + SANDBOX_PREFIX,
                timezone=settings.timezone,
                auth_style=settings.cloudagent.auth_style,
                admin_token=settings.admin_token or "",  # "": shut without DIALSTATUS_ADMIN_TOKEN
            )
        )
        apply_sandbox_settings(sandbox_mount.app.state.sandbox)
    limiter = SlidingWindowLimiter(journal=ApiCallJournal(services.store))
    waits = WaitNotes()
    options = ClientOptions.from_settings(settings, api_url_override=api_url, on_wait=waits.note)
    if settings.demo:
        options = options.with_api_key(api_key)
    client = CloudAgentClient(options, limiter=limiter)
    services.sync = SyncEngine(
        services.store,
        client,
        limiter,
        account=settings.cloudagent.username,
        callback_url=callback_url,
        timezone=settings.timezone,
        interval_s=settings.sync_interval_s,
        callback_timeout_s=settings.callback_timeout_s,
        wait_notes=waits,
    )


SANDBOX_SETTINGS_ENV = "DIALSTATUS_SANDBOX_CONFIG"


def apply_sandbox_settings(sandbox) -> None:
    """Demo mode only: DIALSTATUS_SANDBOX_CONFIG, a JSON object of the sandbox's runtime settings
    (the body of POST /api/sandbox/_sandbox/config), applied before the first request; e.g.
    '{"fault": "no_callback"}' to rehearse what a failure looks like on the Sync page."""
    text = os.environ.get(SANDBOX_SETTINGS_ENV, "").strip()
    if not text:
        return
    try:
        changes = json.loads(text)
        if not isinstance(changes, dict):
            raise ValueError("it must be a JSON object")
        sandbox.update_config(changes)
    except ValueError as exc:
        raise ConfigError(f"{SANDBOX_SETTINGS_ENV}: {exc}") from None
    logger.warning("demo sandbox settings from %s: %s", SANDBOX_SETTINGS_ENV, changes)

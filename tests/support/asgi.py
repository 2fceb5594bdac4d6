"""Any ASGI app under uvicorn on a free 127.0.0.1 port in a background thread, the sandbox
served that way, and a small callback receiver that records what is POSTed to it.

    with serve_sandbox(config) as sandbox:
        httpx.post(sandbox.base_url + "/endpoint/dailer/data/preview/download", ...)

    receiver = CallbackReceiver()
    with run_asgi(receiver.app) as url:
        ...  # callBackUrl = url + "/callback/<secret>"
        posts = receiver.wait_for(1, timeout=10)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from lib.sandbox import Sandbox, SandboxConfig, create_sandbox_app


@contextmanager
def run_asgi(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: str = "auto",
    startup_timeout: float = 10.0,
) -> Iterator[str]:
    """Serves `app` with uvicorn in a daemon thread; yields its base URL (no trailing slash).

    port=0 lets the OS pick a free port, so tests never collide. Stops the server on exit.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{id(app):x}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited before it started serving (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start within {startup_timeout} s")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_sandbox(config: SandboxConfig) -> Iterator[Sandbox]:
    """The sandbox app served by `run_asgi`; yields its `Sandbox` with `base_url` set (the
    deliveries it sends back need it), and closes it after the server stops."""
    app = create_sandbox_app(config)
    with run_asgi(app) as base_url:
        app.state.sandbox.base_url = base_url
        yield app.state.sandbox
    app.state.sandbox.close()


@dataclass
class ReceivedPost:
    path: str
    content_type: str
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def payload(self) -> object:
        """The body as JSON; form bodies (`data=<JSON>`) are unwrapped first."""
        if "application/x-www-form-urlencoded" in self.content_type:
            fields = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
            return json.loads(fields["data"][0])
        return json.loads(self.body)


class CallbackReceiver:
    """A Starlette app that accepts POST /callback/{secret} and keeps every body it got."""

    def __init__(self, status_code: int = 200) -> None:
        self.status_code = status_code
        self.base_url = ""  # set by whoever serves `app` (the `receiver` fixture)
        self.posts: list[ReceivedPost] = []
        self._condition = threading.Condition()
        self.app = Starlette(routes=[Route("/callback/{secret}", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        post = ReceivedPost(
            path=request.url.path,
            content_type=request.headers.get("content-type", ""),
            body=body,
        )
        with self._condition:
            self.posts.append(post)
            self._condition.notify_all()
        return JSONResponse({"status": "ok"}, status_code=self.status_code)

    def clear(self) -> None:
        with self._condition:
            self.posts.clear()

    def wait_until(
        self, predicate: Callable[[list[ReceivedPost]], bool], timeout: float = 10.0
    ) -> list[ReceivedPost]:
        """Blocks until `predicate(posts)` holds; returns the posts (raises on timeout)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self.posts):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"callback condition not met in {timeout} s")
                self._condition.wait(left)
            return list(self.posts)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedPost]:
        """Blocks until at least `count` posts arrived; returns them all (raises on timeout)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.posts)} of {count} callbacks in {timeout} s")
                self._condition.wait(left)
            return list(self.posts)

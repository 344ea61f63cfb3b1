"""Serve an ASGI app with a real uvicorn on a real loopback socket, in a thread.

The server gets its own event loop, as in production; tests talk to it over TCP.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn

from faye.transport.uvicorn_websocket import FayeWebSocketProtocol
from tests.support.redis_server import free_port


class _LoopRecorder:
    """Notes the server's loop; keeps the app as ``.app``, like uvicorn's own wrappers, so
    the WebSocket protocol finds the adapter's ``ws_compression`` as under ``faye serve``."""

    def __init__(self, app: Any, live: LiveServer) -> None:
        self.app = app
        self.live = live

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.live.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


class LiveServer:
    def __init__(self, app: Any, *, ws: Any = FayeWebSocketProtocol, http: Any = "auto") -> None:
        self.app = app
        self.port = free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        config = uvicorn.Config(
            _LoopRecorder(app, self),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            ws=ws,
            http=http,
            loop="asyncio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def task_count(self) -> int:
        """How many asyncio tasks the server's loop has right now."""
        assert self.loop is not None

        async def count() -> int:
            return len(asyncio.all_tasks())

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

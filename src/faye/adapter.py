"""``ASGIAdapter``: the Bayeux endpoint as an ASGI application (Faye's Rack/Node adapter).

Use it alone (``uvicorn module:adapter``), wrap another ASGI app with it
(``ASGIAdapter(mount="/faye", app=django_or_fastapi_app)``), or mount it in
Starlette/FastAPI with ``mount="/"`` (``app.mount("/faye", ASGIAdapter(mount="/"))``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from faye.client import Client, InProcessTransport
from faye.engine import Engine
from faye.events import Listener
from faye.proxy import EngineFactory, EngineProxy
from faye.server import Server
from faye.transport.eventsource import EventSourceSession
from faye.transport.polling import PollingTransport, is_preflight, preflight
from faye.transport.responses import Receive, Scope, Send, header, plain
from faye.transport.static import StaticClient
from faye.transport.uvicorn_websocket import check_compression
from faye.transport.websocket import WebSocketSession

log = logging.getLogger("faye")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024
DEFAULT_MAX_QUEUE = 10_000
DEFAULT_EVENTSOURCE_PING = 10.0


def resolve_engine(engine: Any) -> tuple[EngineFactory, dict[str, Any]]:
    """Turn the ``engine`` option into a factory and its options.

    Accepted: None or ``"memory"``; a ``redis://``/``rediss://`` URL; an Engine class;
    or Faye's form ``{"type": EngineClassOrName, **options}``.
    """
    options: dict[str, Any] = {}
    kind: Any = engine
    if isinstance(engine, Mapping):
        options = {k: v for k, v in engine.items() if k != "type"}
        kind = engine.get("type", "memory")
    if isinstance(kind, str) and "://" in kind:
        options.setdefault("url", kind)
        kind = "redis"
    if kind is None or kind == "memory":
        from faye.engines.memory import MemoryEngine

        return MemoryEngine.create, options
    if kind == "redis":
        from faye.redis import RedisEngine  # type: ignore[import-not-found, unused-ignore]

        return RedisEngine.create, options  # type: ignore[no-any-return, unused-ignore]
    if isinstance(kind, type) and issubclass(kind, Engine):
        return kind.create, options
    create = getattr(kind, "create", None)
    if callable(create):
        return create, options
    raise ValueError(f"unknown engine type: {kind!r}")


class ASGIAdapter:
    """A Faye-compatible Bayeux server as an ASGI app."""

    def __init__(
        self,
        *,
        mount: str = "/bayeux",
        timeout: float = 60.0,
        engine: Any = None,
        ping: float | None = None,
        extensions: Iterable[Any] = (),
        app: ASGIApp | None = None,
        client_script: str | os.PathLike[str] | None = None,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        max_queue: int = DEFAULT_MAX_QUEUE,
        ws_compression: str = "off",
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if max_request_size <= 0 or max_queue <= 0:
            raise ValueError("max_request_size and max_queue must be positive")
        self.mount = "/" + mount.strip("/") if mount.strip("/") else "/"
        self._prefix = self.mount.rstrip("/")
        self._path_re = re.compile(rf"{re.escape(self._prefix)}(?:/[^/]*)*(?:\.[^.]+)?")
        self.ping = ping
        self.app = app
        self.max_request_size = max_request_size
        self.max_queue = max_queue
        #: Read by the WebSocket protocol of ``faye serve`` when a client offers
        #: ``permessage-deflate`` (faye.transport.uvicorn_websocket.COMPRESSION_SETTINGS).
        self.ws_compression = check_compression(ws_compression)
        factory, engine_options = resolve_engine(engine)
        interval = float(engine_options.pop("interval", 0.0))
        self.proxy = EngineProxy(factory, engine_options, timeout=timeout, interval=interval)
        self.server = Server(self.proxy)
        for extension in extensions:
            self.server.add_extension(extension)
        self._polling = PollingTransport(self.server, max_request_size)
        script = client_script or os.environ.get("FAYE_CLIENT_JS")
        self._static = StaticClient(script, self.mount)
        self._client: Client | None = None
        self._start_lock = asyncio.Lock()
        self._started = False

    # -- Faye's public API -------------------------------------------------------------

    def add_extension(self, extension: Any) -> None:
        self.server.add_extension(extension)

    def remove_extension(self, extension: Any) -> None:
        self.server.remove_extension(extension)

    def bind(self, event: str, listener: Listener) -> None:
        """Monitoring: handshake, subscribe, unsubscribe, publish, disconnect, close, ..."""
        self.proxy.bind(event, listener)

    on = bind

    def unbind(self, event: str, listener: Listener | None = None) -> None:
        self.proxy.unbind(event, listener)

    def get_engine(self) -> EngineProxy:
        return self.proxy

    def get_client(self) -> Client:
        """The in-process client: it may publish and subscribe anywhere, /meta and /service too."""
        if self._client is None:
            self._client = Client(InProcessTransport(self.server, self.start))
        return self._client

    async def start(self) -> None:
        """Start the engine (done on ASGI startup, or lazily on the first request)."""
        if self._started:
            return
        async with self._start_lock:
            if not self._started:
                await self.proxy.start()
                self._started = True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._started:
            self._started = False
            await self.proxy.close()

    # -- ASGI --------------------------------------------------------------------------

    def _relative_path(self, scope: Scope) -> str:
        path = str(scope.get("path", "/"))
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :]
        return path or "/"

    def handles(self, path: str) -> bool:
        return self._path_re.fullmatch(path) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        path = self._relative_path(scope)
        if not self.handles(path):
            if self.app is not None:
                await self.app(scope, receive, send)
            elif kind == "http":
                await plain(send, 404, f"Sure you're not looking for {self.mount} ?")
            elif kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        await self.start()
        if kind == "websocket":
            await WebSocketSession(
                self.server,
                scope,
                receive,
                send,
                max_message_size=self.max_request_size,
                max_queue=self.max_queue,
            ).run()
        elif kind == "http":
            await self._http(scope, receive, send, path)

    async def _http(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if path.endswith((".js", ".map")) and scope["method"] in ("GET", "HEAD"):
            await self._static.serve(scope, send, path.rsplit("/", 1)[-1])
        elif is_preflight(scope):
            await preflight(scope, send)
        elif scope["method"] == "GET" and "text/event-stream" in (header(scope, b"accept") or ""):
            client_id = path.rstrip("/").rsplit("/", 1)[-1]
            await EventSourceSession(
                self.server,
                scope,
                receive,
                send,
                client_id=client_id,
                ping=self.ping or DEFAULT_EVENTSOURCE_PING,
                max_queue=self.max_queue,
            ).run()
        else:
            await self._polling.handle(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is not None:

            async def watched_receive() -> Any:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.start()
                elif message["type"] == "lifespan.shutdown":
                    await self.close()
                return message

            await self.app(scope, watched_receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("engine failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

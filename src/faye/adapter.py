"""``ASGIAdapter``: the Bayeux endpoint as an ASGI application (Faye's Rack/Node adapter).

Use it alone (``uvicorn module:adapter``), wrap another ASGI app with it
(``ASGIAdapter(mount="/faye", app=django_or_fastapi_app)``), or mount it in
Starlette/FastAPI with ``mount="/"`` (``app.mount("/faye", ASGIAdapter(mount="/"))``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from faye import limits as caps
from faye.client import Client, InProcessTransport
from faye.engine import Engine, EngineError
from faye.events import Listener
from faye.limits import Limits
from faye.protocol.channels import DEFAULT_MAX_LENGTH, DEFAULT_MAX_SEGMENTS, ChannelLimits
from faye.proxy import EngineFactory, EngineProxy
from faye.server import Server
from faye.transport import health
from faye.transport.eventsource import EventSourceSession
from faye.transport.origins import OriginPolicy, origin_of
from faye.transport.polling import PollingTransport, is_preflight, preflight
from faye.transport.responses import Receive, Scope, Send, header, plain, respond
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
        max_channel_length: int = DEFAULT_MAX_LENGTH,
        max_channel_segments: int = DEFAULT_MAX_SEGMENTS,
        max_subscriptions: int = caps.DEFAULT_MAX_SUBSCRIPTIONS,
        publish_rate: float = caps.DEFAULT_PUBLISH_RATE,
        publish_burst: int = caps.DEFAULT_PUBLISH_BURST,
        handshake_rate: float = caps.DEFAULT_HANDSHAKE_RATE,
        handshake_burst: int = caps.DEFAULT_HANDSHAKE_BURST,
        handshake_exempt: Iterable[str] = caps.DEFAULT_HANDSHAKE_EXEMPT,
        max_outbox_bytes: int = caps.DEFAULT_MAX_OUTBOX_BYTES,
        allow_origins: Iterable[str] | None = None,
        strict_origin: bool = False,
        health_path: str | None = "healthz",
        ready_path: str | None = "readyz",
        ready_timeout: float = 2.0,
        metrics_path: str | None = None,
        metrics_token: str | None = None,
        admin_token: str | None = None,
        ws_compression: str = "off",
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if max_request_size <= 0 or max_queue <= 0 or max_outbox_bytes <= 0:
            raise ValueError("max_request_size, max_queue and max_outbox_bytes must be positive")
        self.mount = "/" + mount.strip("/") if mount.strip("/") else "/"
        self._prefix = self.mount.rstrip("/")
        self._path_re = re.compile(rf"{re.escape(self._prefix)}(?:/[^/]*)*(?:\.[^.]+)?")
        self.ping = ping
        self.app = app
        self.max_request_size = max_request_size
        self.max_queue = max_queue
        self.max_outbox_bytes = max_outbox_bytes
        self.origins = OriginPolicy(allow_origins, strict=strict_origin)
        # Probe paths, relative to the mount unless they start with "/".
        self.health_path = self._probe_path(health_path)
        self.ready_path = self._probe_path(ready_path)
        self.ready_timeout = ready_timeout
        self.metrics_path = self._probe_path(metrics_path)
        self.metrics_token = metrics_token
        self._metrics: Any = None
        #: Open Bayeux connections by transport (long-polling: requests in flight).
        self.open_connections: Counter[str] = Counter()
        #: Read by the WebSocket protocol of ``faye serve`` when a client offers
        #: ``permessage-deflate`` (faye.transport.uvicorn_websocket.COMPRESSION_SETTINGS).
        self.ws_compression = check_compression(ws_compression)
        factory, engine_options = resolve_engine(engine)
        interval = float(engine_options.pop("interval", 0.0))
        self.proxy = EngineProxy(factory, engine_options, timeout=timeout, interval=interval)
        self.limits = Limits(
            channels=ChannelLimits(max_channel_length, max_channel_segments),
            max_subscriptions=max_subscriptions,
            publish_rate=publish_rate,
            publish_burst=publish_burst,
            handshake_rate=handshake_rate,
            handshake_burst=handshake_burst,
            handshake_exempt=tuple(handshake_exempt),
        )
        self.server = Server(self.proxy, self.limits)
        for extension in extensions:
            self.server.add_extension(extension)
        #: The admin page (faye.admin), when ``admin_token`` is given.
        self.admin: Any = None
        if admin_token:
            from faye.admin import Admin

            self.admin = Admin(self, admin_token)
        self._admin_paths = (f"{self._prefix}/admin", f"{self._prefix}/admin/stats")
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

    def _probe_path(self, path: str | None) -> str | None:
        if not path:
            return None
        return path if path.startswith("/") else f"{self._prefix}/{path}"

    async def _probe(self, scope: Scope, send: Send, path: str) -> bool:
        """Answer a health or readiness probe; False if ``path`` is neither."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return False
        if path == self.health_path:
            await health.alive(send)
            return True
        if path in self._admin_paths:
            if self.admin is None:
                await plain(send, 404, "Not found")
            else:
                await self.admin.serve(scope, send, path)
            return True
        if path == self.metrics_path:
            await self._serve_metrics(scope, send)
            return True
        if path == self.ready_path:
            try:
                await self.start()
            except Exception:
                log.warning("not ready: the engine failed to start", exc_info=True)
                await plain(send, 503, "engine failed to start\n")
                return True
            await health.ready(send, self.server, self.ready_timeout)
            return True
        return False

    async def _serve_metrics(self, scope: Scope, send: Send) -> None:
        if self.metrics_token is not None:
            given = header(scope, b"authorization") or ""
            if not hmac.compare_digest(given.encode(), f"Bearer {self.metrics_token}".encode()):
                await plain(send, 401, "Unauthorized")
                return
        if self._metrics is None:
            from faye.metrics import Metrics

            self._metrics = Metrics(self)
        body, content_type = self._metrics.exposition(header(scope, b"accept") or "")
        await respond(send, 200, [(b"content-type", content_type.encode())], body)

    def handles(self, path: str) -> bool:
        return self._path_re.fullmatch(path) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        path = self._relative_path(scope)
        if await self._probe(scope, send, path):
            return
        if not self.handles(path):
            if self.app is not None:
                await self.app(scope, receive, send)
            elif kind == "http":
                await plain(send, 404, f"Sure you're not looking for {self.mount} ?")
            elif kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        if not self.origins.permits(scope) and not self._is_static(scope, path):
            log.info("refused origin %r on %s", origin_of(scope), path)
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})  # before accept: 403
            elif kind == "http":
                await plain(send, 403, "Forbidden origin")
            return
        await self.start()
        if kind == "websocket":
            session = WebSocketSession(
                self.server,
                scope,
                receive,
                send,
                max_message_size=self.max_request_size,
                max_queue=self.max_queue,
                max_outbox_bytes=self.max_outbox_bytes,
            )
            await self._counted("websocket", session.run())
        elif kind == "http":
            await self._http(scope, receive, send, path)

    @staticmethod
    def _is_static(scope: Scope, path: str) -> bool:
        """The client script: public, and loaded by pages of any origin."""
        return (
            scope["type"] == "http"
            and path.endswith((".js", ".map"))
            and scope["method"] in ("GET", "HEAD")
        )

    async def _http(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if self._is_static(scope, path):
            await self._static.serve(scope, send, path.rsplit("/", 1)[-1])
        elif is_preflight(scope):
            await preflight(scope, send)
        elif scope["method"] == "GET" and "text/event-stream" in (header(scope, b"accept") or ""):
            client_id = path.rstrip("/").rsplit("/", 1)[-1]
            stream = EventSourceSession(
                self.server,
                client_id,
                scope,
                receive,
                send,
                ping=self.ping or DEFAULT_EVENTSOURCE_PING,
                max_queue=self.max_queue,
                max_outbox_bytes=self.max_outbox_bytes,
            )
            await self._counted("eventsource", stream.run())
        else:
            await self._counted("long-polling", self._polling.handle(scope, receive, send))

    async def _counted(self, transport: str, work: Awaitable[None]) -> None:
        self.open_connections[transport] += 1
        try:
            await work
        finally:
            self.open_connections[transport] -= 1

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
                    if isinstance(exc, EngineError | ValueError):
                        # A configuration mistake, said in one line by the engine.
                        log.error("engine failed to start: %s", exc)
                    else:
                        log.exception("engine failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

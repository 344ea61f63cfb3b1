"""uvicorn's httptools HTTP protocol with a header size cap, a header timeout and a
connection cap that WebSocket upgrades obey too.

uvicorn bounds neither the size nor the arrival time of request headers on its
httptools protocol (one 100 MB header was read whole; a thousand slow connections
held every file descriptor), and its ``limit_concurrency`` answers 503 to HTTP
requests but lets WebSocket upgrades through. ``faye serve`` runs this protocol;
everything else (parsing, keep-alive, pipelining, the ASGI cycle) is uvicorn's.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
#: File descriptors kept free for Redis connections, logs and the listening socket.
FD_RESERVE = 64
#: Connections past the cap that still get their 503; beyond these, new connections are
#: dropped on arrival (half the reserve, so the process never runs out of descriptors).
OVERFLOW_ROOM = FD_RESERVE // 2


def default_max_connections() -> int:
    """Just under the process's open-file limit: past it a full server answers 503
    instead of failing ``accept`` and leaving new clients hanging."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(16, soft - FD_RESERVE)


def _response(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(text)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + text
    )


#: Connections this process refused, by reason (header_size, header_timeout,
#: connections), for metrics.
REFUSALS: Counter[str] = Counter()

HEADERS_TOO_LARGE = _response(b"431 Request Header Fields Too Large", b"Header fields too large")
HEADER_TIMEOUT = _response(b"408 Request Timeout", b"Request timeout")
UNAVAILABLE = _response(b"503 Service Unavailable", b"Too many connections")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Configure through :func:`limited_http_protocol`, which sets the class attributes."""

    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes received since the current request's headers began (only counted
        # while they are incomplete), and the deadline for them to be complete.
        self._header_bytes = 0
        self._reading_headers = True
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) > limit + OVERFLOW_ROOM:
            # Far over the cap: drop it now rather than hold its file descriptor until
            # the header timeout, so a flood of connections cannot exhaust them.
            REFUSALS["connections"] += 1
            transport.abort()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._reading_headers
            and self._header_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            self.logger.info("refused request headers over %d bytes", self.max_header_bytes)
            REFUSALS["header_size"] += 1
            self._refuse(HEADERS_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._header_bytes = 0
        self._cancel_header_timer()
        limit = self.limit_concurrency
        if (
            limit is not None
            and (len(self.connections) >= limit or len(self.tasks) >= limit)
            and not (self.parser.should_upgrade() and self._should_upgrade())
        ):
            REFUSALS["connections"] += 1  # uvicorn answers it 503 (limit_concurrency)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What arrives next is the next request's headers (its timer starts with them).
        self._reading_headers = True

    def handle_websocket_upgrade(self) -> None:
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) >= limit:
            self.logger.warning("refused a WebSocket upgrade: %d connections", limit)
            REFUSALS["connections"] += 1
            self._refuse(UNAVAILABLE)
            return
        take_over = getattr(self.ws_protocol_class, "take_over_upgrade", None)
        if take_over is None or self.scope["method"] != "GET":
            # uvicorn's way: the request's bytes again, for `websockets` to parse (and
            # to refuse, for a method other than GET).
            super().handle_websocket_upgrade()
            return
        # The same steps, handing over the request httptools parsed (faye serve's
        # WebSocket protocol) instead of serialising it for a second parse.
        self.connections.discard(self)
        protocol = self.ws_protocol_class(  # type: ignore[call-arg, misc]
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.take_over_connection(  # type: ignore[union-attr]
            self.transport, self.server, self.client, self.scheme == "https"
        )
        self.transport.set_protocol(protocol)
        take_over(protocol, self.url, self.scope["headers"])

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and self.header_timeout > 0:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._reading_headers and not self.transport.is_closing():
            self.logger.info(
                "dropped a connection whose headers took over %ss", self.header_timeout
            )
            REFUSALS["header_timeout"] += 1
            self._refuse(HEADER_TIMEOUT)

    def _refuse(self, response: bytes) -> None:
        self._cancel_header_timer()
        self._reading_headers = False
        self.transport.write(response)
        self.transport.close()


def limited_http_protocol(
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for uvicorn's ``http=`` option with these limits.

    The class is named after its limits and found again by that name (the module's
    ``__getattr__``), so it pickles: ``faye serve --workers N`` hands uvicorn's config,
    this class included, to worker processes.
    """
    if max_header_bytes <= 0 or header_timeout < 0:
        raise ValueError("max_header_bytes must be positive and header_timeout not negative")
    name = f"{_PROTOCOL_PREFIX}{max_header_bytes}_{round(header_timeout * 1000)}"
    return _protocol_named(name)


_PROTOCOL_PREFIX = "FayeHttpProtocol_"
_protocols: dict[str, type[LimitedHttpToolsProtocol]] = {}


def _protocol_named(name: str) -> type[LimitedHttpToolsProtocol]:
    made = _protocols.get(name)
    if made is None:
        size, millis = name.removeprefix(_PROTOCOL_PREFIX).split("_")
        made = type(
            name,
            (LimitedHttpToolsProtocol,),
            {
                "max_header_bytes": int(size),
                "header_timeout": int(millis) / 1000,
                "__module__": __name__,
                "__qualname__": name,
            },
        )
        _protocols[name] = made
    return made


def __getattr__(name: str) -> type[LimitedHttpToolsProtocol]:
    if name.startswith(_PROTOCOL_PREFIX):
        return _protocol_named(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

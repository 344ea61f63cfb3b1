"""uvicorn's sans-I/O WebSocket protocol, plus one synchronous write of ready frames.

A fan-out sends the same message to thousands of sockets. Through plain ASGI every
recipient costs a coroutine (often a task) and a fresh encoding and framing of the same
text. Server-to-client frames are not masked, so one frame's bytes serve every
recipient: this protocol offers them a direct way onto the socket, as the scope
extension :data:`WRITE_EXTENSION`. Everything else (handshake, parsing, pings, close)
is uvicorn's and the ``websockets`` library's own.

It also decides ``permessage-deflate`` (:data:`COMPRESSION_SETTINGS`) from the
``ws_compression`` option of the :class:`~faye.adapter.ASGIAdapter` it serves: uvicorn's
own protocols accept it by default, and then hold two zlib contexts per socket for its
whole life (every browser offers it).

``faye serve`` uses it; an app served by any other ASGI server, or by uvicorn with its
own protocols, simply takes the ordinary ``send`` path.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.extensions import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response
from websockets.protocol import Protocol
from websockets.server import ServerProtocol
from websockets.typing import Origin
from websockets.utils import accept_key

from faye.transport.frames import WRITE_EXTENSION

#: What a ``permessage-deflate`` offer gets. ``off``: declined, messages travel
#: uncompressed (Node Faye's default). ``on``: uvicorn's own terms (4 KB windows, zlib
#: memLevel 5, contexts kept for the socket's life). ``no-context-takeover``: both sides
#: compress each message on its own, so a context exists only while a message is being
#: (de)compressed and an idle socket holds none. docs/benchmarks.md has their prices.
COMPRESSION_SETTINGS = ("off", "on", "no-context-takeover")

_EXTENSIONS: dict[str, list[ServerExtensionFactory]] = {
    "off": [],
    "on": [
        ServerPerMessageDeflateFactory(
            server_max_window_bits=12,
            client_max_window_bits=12,
            compress_settings={"memLevel": 5},
        )
    ],
    "no-context-takeover": [
        ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=12,
            client_max_window_bits=12,
            compress_settings={"memLevel": 5},
        )
    ],
}


def deflate_extensions(setting: str) -> list[ServerExtensionFactory]:
    """The extension factories a socket under ``setting`` negotiates with."""
    return _EXTENSIONS[check_compression(setting)]


def check_compression(setting: str) -> str:
    """``setting`` if it is one of :data:`COMPRESSION_SETTINGS`, else ValueError."""
    if setting not in _EXTENSIONS:
        choices = ", ".join(COMPRESSION_SETTINGS)
        raise ValueError(f"ws_compression must be one of {choices}, not {setting!r}")
    return setting


def compression_of(app: Any) -> str | None:
    """The ``ws_compression`` of the Faye adapter ``app`` is or wraps (uvicorn wraps the
    app in middleware that keep it as ``.app``); None for any other app."""
    for _ in range(8):
        setting = getattr(app, "ws_compression", None)
        if isinstance(setting, str):
            return setting
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


#: Request headers whose values repeat from one client to the next (one browser sends
#: the same ``User-Agent`` each time; every client sends ``Upgrade: websocket``).
SHARED_HEADERS = frozenset(
    (
        b"host",
        b"upgrade",
        b"connection",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"origin",
        b"user-agent",
        b"accept-encoding",
        b"accept-language",
        b"cache-control",
        b"pragma",
    )
)
#: At most this many distinct (name, value) pairs are shared, so clients that vary
#: them cannot grow the table without bound.
SHARED_HEADERS_MAX = 4096
_shared_pairs: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}


def share_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with each repeating pair replaced by one shared copy.

    The scope, and so its headers, lives as long as the socket: each pair is a tuple
    and two bytes objects, and a browser sends a dozen headers.
    """
    shared = _shared_pairs
    out = []
    for pair in headers:
        if pair[0] in SHARED_HEADERS:  # ASGI header names are lowercase
            known = shared.get(pair)
            if known is None:
                if len(shared) < SHARED_HEADERS_MAX:
                    shared[pair] = pair
            else:
                pair = known
        out.append(pair)
    return out


class _Inbox:
    """The part of :class:`asyncio.Queue` uvicorn uses, for its one reader.

    An idle socket holds one of these for its whole life; ``asyncio.Queue`` (three
    deques and an event) costs about 3 KB of it, this about 200 bytes.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class _Flag:
    """The part of :class:`asyncio.Event` uvicorn uses (``writable``), for one writer."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = True
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)


#: ``Connection`` values browsers and Faye's clients send with an upgrade, lowercased.
_PLAIN_CONNECTION = frozenset(("upgrade", "keep-alive, upgrade", "upgrade, keep-alive"))
_UPGRADE_HEADERS = Headers([("Upgrade", "websocket"), ("Connection", "Upgrade")])


class QuickServerProtocol(ServerProtocol):
    """``websockets``' server protocol, answering a plain upgrade without its general
    header parsers.

    ``accept`` took 40 us a connection, most of it parsing ``Connection`` and
    ``Upgrade`` as token lists and building the response through validating setters
    (with a ``Date`` uvicorn then replaces). A request in the forms clients send (one
    ``Connection`` value of :data:`_PLAIN_CONNECTION`, ``Upgrade: websocket``, one valid
    key, version 13, at most one ``Origin``, no subprotocol offered and no extension to
    negotiate) gets the same 101 directly; anything else, and every refusal, is left
    to ``websockets`` (tests/test_uvicorn_websocket.py compares the two answers).
    """

    def accept(self, request: Request) -> Response:
        response = self._plain_accept(request) if self.origins is None else None
        return super().accept(request) if response is None else response

    def _plain_accept(self, request: Request) -> Response | None:
        if request.method != "GET" or request.protocol != "HTTP/1.1":
            return None
        headers = request.headers
        connection = headers.get_all("Connection")
        upgrade = headers.get_all("Upgrade")
        key = headers.get_all("Sec-WebSocket-Key")
        origin = headers.get_all("Origin")
        if (
            len(connection) != 1
            or len(upgrade) != 1
            or len(key) != 1
            or len(origin) > 1
            or headers.get_all("Sec-WebSocket-Version") != ["13"]
            or connection[0].lower() not in _PLAIN_CONNECTION
            or upgrade[0].lower() != "websocket"
            or "Sec-WebSocket-Protocol" in headers
            or (self.available_extensions and "Sec-WebSocket-Extensions" in headers)
        ):
            return None
        try:
            if len(base64.b64decode(key[0].encode(), validate=True)) != 16:
                return None
        except binascii.Error:
            return None
        self.accept_called = True
        self.origin = Origin(origin[0]) if origin else None
        self.subprotocol = None
        answer = Headers(Date=_http_date())
        answer.update(_UPGRADE_HEADERS)
        answer["Sec-WebSocket-Accept"] = accept_key(key[0])
        return Response(101, "Switching Protocols", answer)


_date: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The ``Date`` header's value, formatted once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, email.utils.formatdate(now, usegmt=True))
    return _date[1]


_ERRORS = logging.getLogger("uvicorn.error")


def _extensions_for(config: Config) -> list[ServerExtensionFactory]:
    """What the Faye adapter's ``ws_compression`` calls for (read at each connection:
    the adapter's attribute may change), or else what uvicorn's
    ``--ws-per-message-deflate`` does."""
    setting = compression_of(config.loaded_app)
    if setting is not None:
        return deflate_extensions(setting)
    return _EXTENSIONS["on"] if config.ws_per_message_deflate else []


class FayeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with :data:`WRITE_EXTENSION` in the scope,
    the adapter's ``ws_compression``, and less held per idle socket (the handshake's
    request and response are dropped once answered; a lighter inbox and write flag)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # uvicorn's __init__ is not called: it builds a queue, an event and a
        # ``websockets`` protocol that this class replaces at once, which was 60 % of a
        # connection's set-up (24 us to 11). The attributes are uvicorn's own, in its
        # order (tests/test_uvicorn_websocket.py compares the two sets).
        if not config.loaded:
            config.load()  # pragma: no cover
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = _ERRORS
        self.root_path = config.root_path
        self.asgi_version = config.asgi_version
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        self.transport = None  # type: ignore[assignment]
        self.server = None
        self.client = None
        self.scheme = None  # type: ignore[assignment]
        self.queue = _Inbox()  # type: ignore[assignment]
        self.handshake_initiated = False
        self.handshake_complete = False
        self.close_sent = False
        self.disconnected = False
        self.close_timer = None
        self.close_timeout = 10.0
        self.initial_response = None
        self.conn = QuickServerProtocol(
            extensions=_extensions_for(config), max_size=config.ws_max_size, logger=_ERRORS
        )
        self.read_paused = False
        self.writable = _Flag()  # type: ignore[assignment]
        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.ping_timer = None
        self.pong_timer = None
        self.pending_ping_payload = None
        self.ping_sent_at = 0.0
        self.last_ping_rtt = 0.0
        self.frames = []
        self.curr_msg_data_type = "bytes"
        self._sink: Callable[[bytes], None] | None = None

    def take_over_connection(
        self,
        transport: asyncio.Transport,
        server: tuple[str, int | None] | None,
        client: tuple[str, int] | None,
        tls: bool,
    ) -> None:
        """``connection_made`` with the addresses the HTTP protocol already asked the
        socket for (two system calls fewer)."""
        self.connections.add(self)
        self.transport = transport
        self.server, self.client = server, client
        self.scheme = "wss" if tls else "ws"

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The scope holds our bound methods and we hold the session's sink: break the
        # cycles so the socket's memory is freed at once by reference counting, not at
        # the next full collection.
        self._sink = None
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(WRITE_EXTENSION, None)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # Only the handshake reads them; a socket may live for days.
            self.request = self.response = None  # type: ignore[assignment]
            # uvicorn's ~37 attributes outgrow CPython's shared-key instance dicts, and
            # the dict they spill into is sized for three times what it held then (128
            # slots). A copy made by insertion fits them in 64: about 0.75 KB less for
            # every socket (python -m bench memory --clients 4000).
            self.__dict__ = {name: value for name, value in self.__dict__.items()}

    def take_over_upgrade(self, target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """Start from the upgrade request as uvicorn's httptools protocol parsed it.

        uvicorn otherwise writes the request back into bytes for ``websockets`` to parse
        a second time (23 us of CPU a connection, where building its ``Request`` takes
        6). The header bytes were already bounded by the HTTP protocol, and ``accept``
        still checks everything a WebSocket handshake needs. The request parser that
        never ran is replaced by a frame parser in :meth:`handle_connect`, as after a
        parsed request; a refused handshake closes the connection.
        """
        request = Request(
            target.decode("ascii", "surrogateescape"),
            Headers((name.decode("latin-1"), value.decode("latin-1")) for name, value in headers),
        )
        self.handle_connect(request)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if not self.close_sent:
            self.scope["extensions"][WRITE_EXTENSION] = {
                "write": self.write_frame,
                "abort": self.abort,
                "frames": self.take_frames,
            }
            self.scope["headers"] = share_headers(self.scope["headers"])
            self._forget_handshake_request()

    def _forget_handshake_request(self) -> None:
        """Swap the parser for a frame parser that does not hold the handshake request.

        ``websockets``' server parser keeps the parsed request (headers and all, about
        1.7 KB) alive in its generator for the life of the socket. A client may send
        nothing between its handshake and our answer to it (RFC 6455, 4.1), so with no
        bytes waiting the parser is idle between frames and a fresh frame parser takes
        over with nothing lost. Anything waiting (a client that did not wait) leaves
        the original parser in place.
        """
        conn = self.conn
        if conn.reader.buffer or conn.events:
            return
        parser = Protocol.parse(conn)
        next(parser)
        conn.parser = parser

    def take_frames(self, sink: Callable[[bytes], None]) -> Callable[[bool], None]:
        """Hand each message to ``sink`` as it is parsed.

        Through ``receive`` every message is a dict in a queue, a wake-up of the app's
        task, and a pause and resume of reading; a sink is one call.
        """
        self._sink = sink
        return self.pause_frames

    def pause_frames(self, paused: bool) -> None:
        if self.transport.is_closing():
            return
        if paused:
            self.transport.pause_reading()
        elif not self.read_paused:  # else uvicorn resumes when its queue is read
            self.transport.resume_reading()

    def send_receive_event_to_app(self) -> None:
        sink = self._sink
        if sink is None or self.close_sent:
            super().send_receive_event_to_app()
            return
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if self.curr_msg_data_type == "text":
            try:
                data.decode()
            except UnicodeDecodeError:
                super().send_receive_event_to_app()  # fails the connection (1007)
                return
        self.frames = []
        sink(data)

    def write_frame(self, frame: bytes) -> bool:
        """Write a frame made by :func:`faye.transport.frames.text_frame` now.

        False (only ``send`` may write) while the handshake is unfinished, once a close
        was sent or received, and while the client is not reading (the transport paused
        our writes): the caller then queues and awaits ``send``, which waits for the
        socket to drain.
        """
        if (
            not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True

    def abort(self) -> None:
        """Drop the connection at once, discarding what is buffered for it.

        A close frame cannot reach a client that stopped reading (``send`` waits for
        the socket to drain first, and so would a close), so a client dropped for
        falling behind sees the connection end (1006) and reconnects.
        """
        if not self.transport.is_closing():
            self.transport.abort()

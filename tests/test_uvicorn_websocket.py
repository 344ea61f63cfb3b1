"""What ``faye serve``'s WebSocket protocol keeps per socket: shared copies of the
request headers that repeat from client to client, and the headers intact; and how it
takes over an upgrade from ``faye serve``'s HTTP protocol without parsing the request
again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import uvicorn
import websockets.http11
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from faye import ASGIAdapter
from faye.transport import uvicorn_websocket
from faye.transport.uvicorn_http import limited_http_protocol
from faye.transport.uvicorn_websocket import SHARED_HEADERS_MAX, share_headers
from tests.support.live_server import LiveServer


class ScopeRecorder:
    """An ASGI app that accepts each WebSocket and keeps its scope's headers."""

    def __init__(self) -> None:
        self.headers: list[list[tuple[bytes, bytes]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        self.headers.append(scope["headers"])
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


@pytest.fixture
def recorded() -> Iterator[tuple[LiveServer, ScopeRecorder]]:
    app = ScopeRecorder()
    server = LiveServer(app).start()
    try:
        yield server, app
    finally:
        server.stop()


async def test_repeating_headers_are_shared_between_sockets(
    recorded: tuple[LiveServer, ScopeRecorder],
) -> None:
    server, app = recorded
    sent = {"User-Agent": "Mozilla/5.0 (test)", "X-Trace": "same-each-time"}
    for _ in range(2):
        async with connect(server.ws_base + "/ws", additional_headers=sent):
            await asyncio.sleep(0.05)
    first, second = (dict(h) for h in app.headers)
    assert first[b"user-agent"] == b"Mozilla/5.0 (test)"
    assert first[b"x-trace"] == second[b"x-trace"] == b"same-each-time"
    assert first[b"sec-websocket-key"] != second[b"sec-websocket-key"]
    pairs = [{name: pair for pair in h for name in [pair[0]]} for h in app.headers]
    for name in (b"host", b"upgrade", b"user-agent", b"sec-websocket-version"):
        assert pairs[0][name] is pairs[1][name], name
    for name in (b"x-trace", b"sec-websocket-key"):  # not known to repeat: own copies
        assert pairs[0][name] is not pairs[1][name], name


def test_the_shared_table_is_bounded() -> None:
    table = uvicorn_websocket._shared_pairs
    saved = dict(table)
    table.clear()
    try:
        for n in range(SHARED_HEADERS_MAX + 100):
            headers = [(b"user-agent", f"agent {n}".encode()), (b"x-other", b"1")]
            assert share_headers(headers) == headers
        assert len(table) == SHARED_HEADERS_MAX
    finally:
        table.clear()
        table.update(saved)


async def test_apps_without_the_option_keep_uvicorns_choice(
    recorded: tuple[LiveServer, ScopeRecorder],
) -> None:
    """An app that is not (and does not wrap) an ASGIAdapter: uvicorn's
    ``ws_per_message_deflate`` (on by default) decides, on uvicorn's terms."""
    server, _ = recorded
    async with connect(server.ws_base + "/ws") as ws:
        assert ws.response is not None
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        terms = "server_max_window_bits=12; client_max_window_bits=12"
        assert extensions == f"permessage-deflate; {terms}"


class Echo:
    """An ASGI app that keeps each WebSocket's scope and echoes its text frames."""

    def __init__(self) -> None:
        self.scopes: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await ScopeRecorder()(scope, receive, send)
            return
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        self.scopes.append(scope)
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo " + message["text"]})


@pytest.fixture
def served() -> Iterator[tuple[LiveServer, Echo]]:
    """``faye serve``'s pair of protocols: the limited HTTP one and ours."""
    app = Echo()
    server = LiveServer(app, http=limited_http_protocol()).start()
    try:
        yield server, app
    finally:
        server.stop()


async def test_an_upgrade_is_taken_over_with_its_target_and_headers_as_sent(
    served: tuple[LiveServer, Echo], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, app = served
    # Reached once a request (server) or response (client) line was read; the server
    # runs in a thread of its own.
    parsed: list[str] = []
    parse_headers = websockets.http11.parse_headers

    def counted(*args: Any, **kwargs: Any) -> Any:
        parsed.append(threading.current_thread().name)
        return parse_headers(*args, **kwargs)

    monkeypatch.setattr(websockets.http11, "parse_headers", counted)
    # A header value with a byte that is not ASCII, as Latin-1 allows on the wire.
    headers = {"X-Latin": "caf\xe9", "User-Agent": "test"}
    async with connect(server.ws_base + "/ws/room?x=1&y=%C3%A9", additional_headers=headers) as ws:
        await ws.send("hello")
        assert await ws.recv() == "echo hello"
    (scope,) = app.scopes
    assert scope["path"] == "/ws/room"
    assert scope["raw_path"] == b"/ws/room"
    assert scope["query_string"] == b"x=1&y=%C3%A9"
    assert dict(scope["headers"])[b"x-latin"] == b"caf\xe9"
    # The addresses the HTTP protocol had, as uvicorn would have asked the socket.
    assert scope["server"] == ("127.0.0.1", server.port)
    assert scope["client"][0] == "127.0.0.1"
    assert scope["client"][1] == ws.local_address[1]
    assert scope["scheme"] == "ws"
    # The client parsed the 101's headers; the server used httptools's parse alone.
    assert parsed == [threading.current_thread().name]


async def raw_upgrade(server: LiveServer, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    return answer


UPGRADE = b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        # accept() still checks the handshake when the request was not parsed again.
        (b"GET /ws HTTP/1.1\r\n" + UPGRADE, b"HTTP/1.1 400"),
        # Any other method than GET goes uvicorn's way, and is refused there.
        (b"POST /ws HTTP/1.1\r\n" + UPGRADE + KEY + b"Content-Length: 0\r\n", b"HTTP/1.1 4"),
    ],
    ids=["without-a-key", "post"],
)
async def test_a_bad_upgrade_is_refused(
    served: tuple[LiveServer, Echo], request_head: bytes, status: bytes
) -> None:
    server, app = served
    answer = await raw_upgrade(server, request_head + b"\r\n")
    assert answer.startswith(status), answer
    assert app.scopes == []


async def test_the_protocol_has_uvicorns_attributes_without_its_init() -> None:
    """Our __init__ replaces uvicorn's: the same attributes, or uvicorn grew one that
    this class must learn about."""
    config = uvicorn.Config(ASGIAdapter(mount="/faye", ws_compression="no-context-takeover"))
    config.load()
    state = ServerState()
    ours = uvicorn_websocket.FayeWebSocketProtocol(config=config, server_state=state, app_state={})
    theirs = WebSocketsSansIOProtocol(config=config, server_state=state, app_state={})
    assert set(vars(ours)) - {"_sink"} == set(vars(theirs))
    for name, value in vars(theirs).items():
        if name not in ("queue", "writable", "conn", "loop"):
            assert getattr(ours, name) == value, name
    assert ours.conn.available_extensions == uvicorn_websocket.deflate_extensions(
        "no-context-takeover"
    )


_KEY = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
_PLAIN = [("Host", "x"), ("Upgrade", "websocket"), ("Connection", "Upgrade"), _KEY]
_VERSION = ("Sec-WebSocket-Version", "13")


def _varied(
    drop: str = "", add: Sequence[tuple[str, str]] = (), **replace: str
) -> list[tuple[str, str]]:
    headers = [(n, replace.get(n.replace("-", "_").lower(), v)) for n, v in [*_PLAIN, _VERSION]]
    return [(n, v) for n, v in headers if n != drop] + list(add)


HANDSHAKES = {
    "plain": _varied(),
    "keep-alive first": _varied(connection="keep-alive, Upgrade"),
    "keep-alive last": _varied(connection="Upgrade, keep-alive"),
    "shouting": _varied(connection="UPGRADE", upgrade="WebSocket"),
    "origin": _varied(add=[("Origin", "https://example.com")]),
    "two origins": _varied(add=[("Origin", "https://a.example"), ("Origin", "https://b.example")]),
    "no key": _varied(drop="Sec-WebSocket-Key"),
    "key not base64": _varied(sec_websocket_key="not base64 at all!!!!!!="),
    "short key": _varied(sec_websocket_key="c2hvcnQ="),
    "two keys": _varied(add=[_KEY]),
    "version 12": _varied(sec_websocket_version="12"),
    "no version": _varied(drop="Sec-WebSocket-Version"),
    "two versions": _varied(add=[_VERSION]),
    "connection close": _varied(connection="close"),
    "no connection": _varied(drop="Connection"),
    "connection list with junk": _varied(connection="upgrade, @@"),
    "two connections": _varied(add=[("Connection", "Upgrade")]),
    "upgrade h2c": _varied(upgrade="h2c"),
    "two upgrades": _varied(add=[("Upgrade", "websocket")]),
    "subprotocol": _varied(add=[("Sec-WebSocket-Protocol", "chat")]),
    "deflate offered": _varied(
        add=[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
    ),
}


@pytest.mark.parametrize("compression", ["off", "on"])
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("name", sorted(HANDSHAKES))
def test_the_quick_accept_answers_as_websockets_does(
    name: str, method: str, compression: str
) -> None:
    """Every answer of QuickServerProtocol (its own or websockets') is websockets' own."""
    extensions = uvicorn_websocket.deflate_extensions(compression)
    answers = []
    for kind in (ServerProtocol, uvicorn_websocket.QuickServerProtocol):
        conn = kind(extensions=extensions)
        request = Request("/faye", Headers(HANDSHAKES[name]), method=method)
        response = conn.accept(request)
        headers = [(n, v) for n, v in response.headers.raw_items() if n != "Date"]
        exc = type(conn.handshake_exc)
        answers.append((response.status_code, headers, response.body, exc, conn.origin))
        answers.append((conn.subprotocol, [type(e) for e in conn.extensions]))
    assert answers[0:2] == answers[2:4]


def test_the_quick_accept_takes_the_usual_upgrades_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ServerProtocol, "accept", lambda *args: pytest.fail("not quick"))
    for name in ("plain", "keep-alive first", "keep-alive last", "shouting", "origin"):
        conn = uvicorn_websocket.QuickServerProtocol()
        response = conn.accept(Request("/faye", Headers(HANDSHAKES[name])))
        assert response.status_code == 101, name
        assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        conn.send_response(response)
        assert conn.state is State.OPEN

"""What ``faye serve``'s WebSocket protocol keeps per socket: shared copies of the
request headers that repeat from client to client, and the headers intact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from faye.transport import uvicorn_websocket
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

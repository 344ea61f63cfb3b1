"""WebSocket and EventSource transports over real sockets."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from faye import ASGIAdapter
from faye.transport import outbox, uvicorn_websocket, websocket
from faye.transport.uvicorn_websocket import FayeWebSocketProtocol
from tests.support.bayeux import connect_msg, exchange, receive, subscribed_socket, ws_handshake
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_for

MOUNT = "/faye"


@pytest.fixture
def adapter() -> ASGIAdapter:
    return ASGIAdapter(mount=MOUNT, timeout=2, max_request_size=16 * 1024)


@pytest.fixture(params=["faye", "websockets-sansio"])
def protocol(request: pytest.FixtureRequest) -> Any:
    """``faye serve``'s protocol (direct writes), and plain uvicorn (ASGI ``send`` only)."""
    return FayeWebSocketProtocol if request.param == "faye" else request.param


@pytest.fixture
def live(adapter: ASGIAdapter, protocol: Any) -> Iterator[LiveServer]:
    server = LiveServer(adapter, ws=protocol).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def ws(live: LiveServer) -> AsyncIterator[ClientConnection]:
    async with connect(live.ws_base + MOUNT) as socket:
        yield socket


async def test_empty_frame_gets_empty_frame(ws: ClientConnection) -> None:
    assert await exchange(ws, []) == []


async def test_push_while_connect_is_held(ws: ClientConnection, http: httpx.AsyncClient) -> None:
    alice = await ws_handshake(ws)
    replies = await exchange(
        ws,
        [
            {
                "channel": "/meta/subscribe",
                "clientId": alice,
                "subscription": "/room/**",
                "id": "s",
            },
            connect_msg(alice, id="c1", advice={"timeout": 0}),
        ],
    )
    assert [(r["id"], r["successful"]) for r in replies] == [("s", True), ("c1", True)]
    await ws.send(json.dumps([connect_msg(alice, id="c2")]))
    await asyncio.sleep(0.1)
    await http.post(MOUNT, json={"channel": "/room/a/b", "data": "pushed", "id": "p"})
    pushed = await receive(ws)
    assert pushed == [{"channel": "/room/a/b", "data": "pushed", "id": "p"}]
    held_reply = await receive(ws, timeout=4)
    assert held_reply[0]["id"] == "c2" and held_reply[0]["successful"]


async def test_a_connect_sent_while_one_is_held_answers_the_first_at_once(
    ws: ClientConnection, http: httpx.AsyncClient
) -> None:
    """Two held connects on one socket for a moment: each gets its own reply."""
    alice = await ws_handshake(ws)
    await exchange(ws, [{"channel": "/meta/subscribe", "clientId": alice, "subscription": "/r"}])
    await ws.send(json.dumps([connect_msg(alice, id="c1")]))
    await ws.send(json.dumps([connect_msg(alice, id="c2")]))
    first = await receive(ws, timeout=1)
    assert [(r["id"], r["successful"]) for r in first] == [("c1", True)]
    await http.post(MOUNT, json={"channel": "/r", "data": "pushed"})
    assert [m["data"] for m in await receive(ws)] == ["pushed"]
    second = await receive(ws, timeout=4)  # at the end of its hold
    assert [(r["id"], r["successful"]) for r in second] == [("c2", True)]


async def test_a_connect_beside_a_publish_is_answered_after_it(ws: ClientConnection) -> None:
    alice = await ws_handshake(ws)
    replies = await exchange(
        ws,
        [
            connect_msg(alice, id="c", advice={"timeout": 0}),
            {"channel": "/elsewhere", "clientId": alice, "data": 1, "id": "p"},
        ],
    )
    assert [r["id"] for r in replies] == ["p", "c"]


async def test_bad_frames_are_ignored_and_socket_survives(ws: ClientConnection) -> None:
    for frame in ["not json", "42", '"string"', "[ }"]:
        await ws.send(frame)
    assert await exchange(ws, [{"channel": "/meta/p"}]) == [
        {"channel": "/meta/p", "successful": False, "error": "403:/meta/p:Forbidden channel"}
    ]


async def test_oversized_frame_closes_with_1009(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"channel": "/x", "data": "y" * 20_000}))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_disconnect_replies_then_closes(ws: ClientConnection) -> None:
    alice = await ws_handshake(ws)
    await ws.send(json.dumps([connect_msg(alice, id="held")]))
    await asyncio.sleep(0.1)
    await ws.send(json.dumps([{"channel": "/meta/disconnect", "clientId": alice, "id": "d"}]))
    frames = [await receive(ws), await receive(ws)]
    ids = sorted(r["id"] for frame in frames for r in frame)
    assert ids == ["d", "held"]
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)


async def test_socket_switching_client_answers_the_old_connect(
    ws: ClientConnection, adapter: ASGIAdapter
) -> None:
    alice = await ws_handshake(ws)
    bob = await ws_handshake(ws)
    await ws.send(json.dumps([connect_msg(alice, id="a")]))
    await asyncio.sleep(0.1)
    await ws.send(json.dumps([connect_msg(bob, id="b", advice={"timeout": 0})]))
    got = {r["id"] for _ in range(2) for r in await receive(ws, timeout=1)}
    assert got == {"a", "b"}
    assert await exchange(ws, []) == []


async def test_socket_closed_mid_connect_keeps_messages(
    live: LiveServer, http: httpx.AsyncClient, adapter: ASGIAdapter
) -> None:
    async with connect(live.ws_base + MOUNT) as socket:
        alice = await ws_handshake(socket)
        await exchange(
            socket,
            [
                {"channel": "/meta/subscribe", "clientId": alice, "subscription": "/kept"},
                connect_msg(alice, advice={"timeout": 0}),
            ],
        )
        await socket.send(json.dumps([connect_msg(alice)]))
        await asyncio.sleep(0.1)
    for _ in range(50):
        if not adapter.proxy.has_connection(alice):
            break
        await asyncio.sleep(0.02)
    assert not adapter.proxy.has_connection(alice)
    await http.post(MOUNT, json={"channel": "/kept", "data": 1})
    response = await http.post(
        MOUNT,
        json={"channel": "/meta/connect", "clientId": alice, "connectionType": "long-polling"},
    )
    assert [m.get("data") for m in response.json()[1:]] == [1]


async def test_many_pushes_arrive_in_order(ws: ClientConnection, http: httpx.AsyncClient) -> None:
    alice = await ws_handshake(ws)
    await exchange(
        ws,
        [
            {"channel": "/meta/subscribe", "clientId": alice, "subscription": "/seq"},
            connect_msg(alice, advice={"timeout": 0}),
        ],
    )
    await ws.send(json.dumps([connect_msg(alice)]))
    await asyncio.sleep(0.05)
    batch = [{"channel": "/seq", "data": n} for n in range(200)]
    await http.post(MOUNT, json=batch)
    seen: list[int] = []
    while len(seen) < 200:
        for message in await receive(ws):
            if message.get("channel") == "/seq":
                seen.append(message["data"])
    assert seen == list(range(200))


async def test_faye_protocol_pushes_without_the_asgi_send(
    live: LiveServer, http: httpx.AsyncClient, protocol: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if protocol is not FayeWebSocketProtocol:
        pytest.skip("plain uvicorn offers no direct write")
    written: list[bytes] = []
    original = FayeWebSocketProtocol.write_frame

    def counting(self: FayeWebSocketProtocol, frame: bytes) -> bool:
        accepted = original(self, frame)
        if accepted:
            written.append(frame)
        return accepted

    monkeypatch.setattr(FayeWebSocketProtocol, "write_frame", counting)
    async with connect(live.ws_base + MOUNT) as ws:
        await subscribed_socket(ws, "/direct")
        written.clear()
        await http.post(MOUNT, json={"channel": "/direct", "data": "é ✓", "id": "1"})
        assert await receive(ws) == [{"channel": "/direct", "data": "é ✓", "id": "1"}]
    assert len(written) == 1


async def test_faye_protocol_hands_messages_over_without_the_asgi_queue(
    live: LiveServer, protocol: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if protocol is not FayeWebSocketProtocol:
        pytest.skip("plain uvicorn queues every message for receive()")
    queued: list[str] = []
    put = uvicorn_websocket._Inbox.put_nowait

    def recording(self: Any, item: Any) -> None:
        queued.append(item["type"])
        put(self, item)

    monkeypatch.setattr(uvicorn_websocket._Inbox, "put_nowait", recording)
    async with connect(live.ws_base + MOUNT) as ws:
        await subscribed_socket(ws, "/handed")
        assert await exchange(ws, []) == []
    await asyncio.sleep(0.1)
    assert queued[0] == "websocket.connect"
    assert "websocket.receive" not in queued
    assert "websocket.disconnect" in queued


async def test_a_closed_socket_is_freed_without_the_cycle_collector(
    live: LiveServer, protocol: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faye serve runs the cyclic collector rarely (faye.gc_tuning): a socket's protocol
    and session must go when it closes, by reference counting alone."""
    if protocol is not FayeWebSocketProtocol:
        pytest.skip("uvicorn's own protocol is not ours to keep acyclic")
    made: list[weakref.ref[Any]] = []
    connection_made = WebSocketsSansIOProtocol.connection_made

    def recording(self: Any, transport: Any) -> None:
        made.append(weakref.ref(self))
        connection_made(self, transport)

    monkeypatch.setattr(WebSocketsSansIOProtocol, "connection_made", recording)
    gc.collect()
    gc.disable()
    try:
        for n in range(3):
            async with connect(live.ws_base + MOUNT) as ws:
                await subscribed_socket(ws, f"/freed/{n}")
        await wait_for(lambda: len(made) == 3 and all(ref() is None for ref in made), timeout=3)
    finally:
        gc.enable()


class Gate:
    """An incoming extension that holds every message until opened."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    async def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        await self.opened.wait()
        return message

    def open(self, server: LiveServer) -> None:
        assert server.loop is not None  # the server runs on a loop of its own
        server.loop.call_soon_threadsafe(self.opened.set)


async def test_a_client_sending_faster_than_it_is_served_is_read_no_further(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server stops reading a socket with MAX_WAITING_FRAMES messages not yet
    started (TCP then holds the client back) and loses none of them."""
    gate = Gate()
    adapter = ASGIAdapter(mount=MOUNT, timeout=2, max_request_size=16 * 1024, extensions=[gate])
    taken: list[int] = []
    on_message = websocket.WebSocketSession._on_message

    def counting(self: Any, data: Any) -> None:
        taken.append(len(data))
        on_message(self, data)

    monkeypatch.setattr(websocket.WebSocketSession, "_on_message", counting)
    server = LiveServer(adapter).start()
    try:
        async with connect(server.ws_base + MOUNT, max_queue=None) as ws:
            frame = json.dumps([{"channel": "/flood", "data": "x" * 12_000}])
            sending = asyncio.gather(*(ws.send(frame) for _ in range(200)))
            await asyncio.sleep(1.0)
            # Paused at 32 waiting; one read (256 KiB) may bring up to 21 more.
            assert 32 <= len(taken) <= 32 + 22 + 1
            gate.open(server)
            replies = [await receive(ws, timeout=10) for _ in range(200)]
            await sending
        assert len(taken) == 200
        assert all(len(reply) == 1 for reply in replies)
    finally:
        server.stop()


class StallableSocket:
    """A WebSocket client that reads only when asked, so a test can stop reading.

    The ``websockets`` client keeps reading into its own buffers; this one leaves the
    bytes in a small kernel window, so the server really meets a stalled reader.
    Framing is the ``websockets`` library's sans-I/O client protocol.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol: ClientProtocol | None = None
        self.close_code: int | None = None

    @classmethod
    async def open(cls, port: int) -> StallableSocket:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=raw, limit=1024)
        self = cls(reader, writer)
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{MOUNT}"), max_size=None)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.handshake_exc is None and self.protocol.state.name == "CONNECTING":
            self.protocol.receive_data(await reader.read(65536))
        return self

    def _flush(self) -> None:
        assert self.protocol is not None
        self.writer.write(b"".join(self.protocol.data_to_send()))

    async def send(self, messages: Any) -> None:
        assert self.protocol is not None
        self.protocol.send_text(json.dumps(messages).encode())
        self._flush()

    async def receive(self, timeout: float = 5) -> list[dict[str, Any]] | None:
        """The next text frame, or None once the server closed (see ``close_code``)."""
        assert self.protocol is not None
        while True:
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    frame: list[dict[str, Any]] = json.loads(event.data)
                    return frame
                if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    self.close_code = Close.parse(event.data).code
                    self._flush()
                    return None
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.protocol.receive_data(data)

    def close(self) -> None:
        self.writer.close()


async def test_client_that_stops_reading_is_closed_and_loses_nothing(
    protocol: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that stalls fills the socket, then the queue: it is closed with 1013,
    and what it had not been sent waits for its next connect."""
    monkeypatch.setattr(outbox, "STALL_GRACE", 0.5)
    adapter = ASGIAdapter(mount=MOUNT, timeout=5, max_queue=20)
    server = LiveServer(adapter, ws=protocol).start()
    total, size = 200, 60_000
    stalled = await StallableSocket.open(server.port)
    try:
        await stalled.send(
            [
                {
                    "channel": "/meta/handshake",
                    "version": "1.0",
                    "supportedConnectionTypes": ["websocket"],
                }
            ]
        )
        reply = await stalled.receive()
        assert reply is not None
        client_id = reply[0]["clientId"]
        await stalled.send(
            [
                {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/flood"},
                connect_msg(client_id, advice={"timeout": 0}),
            ]
        )
        assert await stalled.receive() is not None
        await stalled.send([connect_msg(client_id)])
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as poster:
            for start in range(0, total, 10):
                batch = [
                    {"channel": "/flood", "data": [n, "x" * size]} for n in range(start, start + 10)
                ]
                assert (await poster.post(MOUNT, json=batch)).status_code == 200
        await asyncio.sleep(1.0)  # longer than STALL_GRACE, not reading
        seen: list[int] = []
        while (frame := await stalled.receive()) is not None:
            seen.extend(m["data"][0] for m in frame if m.get("channel") == "/flood")
        assert stalled.close_code == 1013
        assert 0 < len(seen) < total
        async with connect(server.ws_base + MOUNT) as fresh:
            await fresh.send(json.dumps([connect_msg(client_id)]))
            while len(seen) < total:
                for message in await receive(fresh, timeout=5):
                    if message.get("channel") == "/flood":
                        seen.append(message["data"][0])
        assert sorted(seen) == list(range(total))
    finally:
        stalled.close()
        server.stop()


# -- EventSource -------------------------------------------------------------------------


async def test_eventsource_stream(http: httpx.AsyncClient, live: LiveServer) -> None:
    (reply,) = (
        await http.post(
            MOUNT,
            json={
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["eventsource"],
            },
        )
    ).json()
    alice = reply["clientId"]
    async with (
        httpx.AsyncClient(base_url=live.base, timeout=10) as stream_client,
        stream_client.stream(
            "GET", f"{MOUNT}/{alice}", headers={"accept": "text/event-stream"}
        ) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"] == "text/event-stream"
        lines = stream.aiter_lines()
        assert await asyncio.wait_for(anext(lines), 3) == "retry: 5000"
        subscribed = await http.post(
            MOUNT,
            json=[
                {"channel": "/meta/subscribe", "clientId": alice, "subscription": "/es"},
                {"channel": "/meta/connect", "clientId": alice, "connectionType": "eventsource"},
            ],
        )
        connect_reply = subscribed.json()[1]
        assert connect_reply["advice"] == {"reconnect": "retry", "interval": 2000, "timeout": 0}
        await http.post(MOUNT, json={"channel": "/es", "data": "streamed"})
        while True:
            line = await asyncio.wait_for(anext(lines), 3)
            if line.startswith("data: "):
                assert json.loads(line[6:]) == [{"channel": "/es", "data": "streamed"}]
                break


async def test_eventsource_for_unknown_client(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{MOUNT}/nobody", headers={"accept": "text/event-stream"})
    assert response.status_code == 400


async def test_closed_sockets_leave_no_task_behind(live: LiveServer) -> None:
    async with connect(live.ws_base + MOUNT) as warm:
        assert await exchange(warm, []) == []
    await asyncio.sleep(0.2)
    baseline = live.task_count()
    sockets = [await connect(live.ws_base + MOUNT) for _ in range(10)]
    for sock in sockets:
        client_id = await ws_handshake(sock)
        await sock.send(json.dumps([connect_msg(client_id)]))
    await asyncio.sleep(0.2)
    assert live.task_count() > baseline
    for sock in sockets:
        await sock.close()
    for _ in range(100):
        if live.task_count() <= baseline:
            break
        await asyncio.sleep(0.02)
    assert live.task_count() <= baseline

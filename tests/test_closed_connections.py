"""Clients that vanish mid-delivery leave no tracebacks and no unawaited coroutines."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import warnings
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from faye import ASGIAdapter
from faye.transport.websocket import WebSocketSession
from tests.support.bayeux import connect_msg, exchange, ws_handshake
from tests.support.live_server import LiveServer

MOUNT = "/faye"
PAYLOAD = "x" * 20_000


@pytest.fixture
def served() -> Iterator[LiveServer]:
    server = LiveServer(ASGIAdapter(mount=MOUNT, timeout=2)).start()
    try:
        yield server
    finally:
        server.stop()


async def websocket_victim(url: str, publisher: httpx.AsyncClient) -> None:
    ws = await connect(url, max_size=None)
    client_id = await ws_handshake(ws)
    await exchange(
        ws,
        [
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/storm"},
            connect_msg(client_id, advice={"timeout": 0}),
        ],
    )
    # A held connect, frames in flight both ways, then the socket is reset.
    await ws.send(json.dumps([connect_msg(client_id)]))
    await ws.send(json.dumps([{"channel": "/storm", "data": PAYLOAD, "clientId": client_id}] * 5))
    await asyncio.sleep(0.01)
    ws.transport.abort()  # as a crashed client or a dropped network: no close frame


async def polling_victim(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        (reply,) = (
            await http.post(
                MOUNT,
                json={
                    "channel": "/meta/handshake",
                    "version": "1.0",
                    "supportedConnectionTypes": ["long-polling"],
                },
            )
        ).json()
        client_id = reply["clientId"]
        await http.post(
            MOUNT,
            json=[
                {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/storm"},
                {
                    "channel": "/meta/connect",
                    "clientId": client_id,
                    "connectionType": "long-polling",
                    "advice": {"timeout": 0},
                },
            ],
        )
        held = asyncio.ensure_future(
            http.post(
                MOUNT,
                json={
                    "channel": "/meta/connect",
                    "clientId": client_id,
                    "connectionType": "long-polling",
                },
            )
        )
        await asyncio.sleep(0.02)
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)


async def abrupt_websockets(url: str) -> None:
    """Sockets that vanish at every stage: before the accept, mid-frame, after a close."""
    for stage in range(4):
        ws = await connect(url, max_size=None)
        if stage >= 1:
            client_id = await ws_handshake(ws)
            await ws.send(json.dumps([connect_msg(client_id)]))
        if stage == 2:
            await ws.send(json.dumps([{"channel": "/meta/disconnect", "clientId": client_id}] * 3))
        if stage == 3:
            await ws.send("x" * 2_000_000)  # too big: the server closes with 1009
        await asyncio.sleep(0.005 * stage)
        ws.transport.abort()


async def abrupt_http(port: int) -> None:
    """HTTP requests whose client resets the connection mid-request or mid-wait."""
    body = json.dumps([{"channel": "/storm", "data": PAYLOAD}] * 20).encode()
    for cut in (10, len(body) // 2, len(body)):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST {MOUNT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:cut]
        )
        await writer.drain()
        await asyncio.sleep(0.005)
        writer.transport.abort()


async def eventsource_victim(base: str, client_id: str) -> None:
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        http.stream("GET", f"{MOUNT}/{client_id}", headers={"accept": "text/event-stream"}),
    ):
        await asyncio.sleep(0.02)


async def test_vanishing_clients_leave_quiet_logs(
    served: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = served
    url = server.ws_base + MOUNT
    # uvicorn's loggers do not propagate to the root logger caplog listens on.
    uvicorn_log = logging.getLogger("uvicorn")
    uvicorn_log.addHandler(caplog.handler)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as publisher:
            storm_running = True

            async def storm() -> None:
                while storm_running:
                    batch = [{"channel": "/storm", "data": PAYLOAD}] * 20
                    await publisher.post(MOUNT, json=batch)

            flood = asyncio.ensure_future(storm())
            for _ in range(4):
                await asyncio.gather(
                    *(websocket_victim(url, publisher) for _ in range(10)),
                    *(polling_victim(server.base) for _ in range(5)),
                    *(abrupt_websockets(url) for _ in range(5)),
                    *(abrupt_http(server.port) for _ in range(5)),
                )
            es_ids = []
            for _ in range(5):
                (reply,) = (
                    await publisher.post(
                        MOUNT,
                        json={
                            "channel": "/meta/handshake",
                            "version": "1.0",
                            "supportedConnectionTypes": ["eventsource"],
                        },
                    )
                ).json()
                es_ids.append(reply["clientId"])
            await asyncio.gather(*(eventsource_victim(server.base, c) for c in es_ids))
            storm_running = False
            await flood
        await asyncio.sleep(0.5)
        gc.collect()
        await asyncio.sleep(0.1)
    uvicorn_log.removeHandler(caplog.handler)
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not noisy, [(r.name, r.getMessage()) for r in noisy]
    never_awaited = [str(w.message) for w in caught if "never awaited" in str(w.message)]
    assert not never_awaited, never_awaited
    # The server is still fine.
    async with connect(url) as ws:
        assert await ws_handshake(ws)


async def test_socket_gone_before_its_held_connect_starts() -> None:
    """The ASGI receive is scripted here: the race (a frame's connect set aside, and the
    socket gone before the task that waits for it first runs) is one event-loop turn
    wide and cannot be hit on demand with a real socket."""
    adapter = ASGIAdapter(mount=MOUNT, timeout=2)
    await adapter.start()
    client_id = await adapter.proxy.create_client()
    script = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": json.dumps([connect_msg(client_id)])},
    ]

    async def receive() -> dict[str, object]:
        if script:
            return script.pop(0)
        await asyncio.sleep(0)  # the frame's dispatcher runs, then the socket is gone
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: object) -> None:
        pass

    session = WebSocketSession(
        adapter.server,
        {"type": "websocket", "headers": [], "extensions": {}},
        receive,
        send,
        max_message_size=1 << 20,
        max_queue=100,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await session.run()
        for _ in range(3):
            await asyncio.sleep(0)  # let the loop drop its last handles
        gc.collect()
    await adapter.close()
    assert not [str(w.message) for w in caught if "never awaited" in str(w.message)]


async def test_socket_gone_before_the_accept() -> None:
    """Scripted ASGI calls: the client leaving between its upgrade request and our accept
    is a race a real socket cannot be made to lose on demand. uvicorn then raises
    ClientDisconnected (an OSError) from the accept."""
    adapter = ASGIAdapter(mount=MOUNT, timeout=2)
    await adapter.start()

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        raise ConnectionResetError("client gone")

    session = WebSocketSession(
        adapter.server,
        {"type": "websocket", "headers": [], "extensions": {}},
        receive,
        send,
        max_message_size=1 << 20,
        max_queue=100,
    )
    await asyncio.wait_for(session.run(), 2)  # returns quietly
    await adapter.close()

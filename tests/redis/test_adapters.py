"""Two Bayeux servers (ASGIAdapter) sharing one Redis, with in-process clients."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import connect

from faye.adapter import ASGIAdapter
from faye.client import Client, InProcessTransport
from faye.redis.keys import split_queue
from faye.transport.uvicorn_websocket import FayeWebSocketProtocol
from tests.redis.conftest import Fleet, engine_of
from tests.support.bayeux import receive, subscribed_socket
from tests.support.live_server import LiveServer
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for


def client_of(adapter: ASGIAdapter) -> Client:
    """A fresh in-process client (``get_client`` would share one per adapter)."""
    return Client(InProcessTransport(adapter.server, adapter.start))


async def test_two_servers_one_redis(redis_server: RedisServer) -> None:
    namespace = Fleet(redis_server.url).namespace
    spec = {"type": "redis", "url": redis_server.url, "namespace": namespace, "log_level": "silent"}
    a = ASGIAdapter(timeout=2, engine=spec)
    b = ASGIAdapter(timeout=2, engine=dict(spec))
    alice, bob = client_of(a), client_of(b)
    got: list[Any] = []
    try:
        await alice.subscribe("/chat/**", got.append)
        for n in range(5):
            await bob.publish("/chat/room", {"n": n})
        await wait_for(lambda: len(got) == 5, timeout=5)
        await asyncio.sleep(0.1)
        assert [m["n"] for m in got] == [0, 1, 2, 3, 4]
        # Written replies are acknowledged: nothing stays in flight.
        await wait_for(lambda: not engine_of(a.proxy).unacknowledged(), timeout=3)
    finally:
        for client in (alice, bob):
            await client.close()
        await a.close()
        await b.close()


@pytest.mark.parametrize("ws", [FayeWebSocketProtocol, "websockets-sansio"])
async def test_websocket_deliveries_leave_nothing_in_flight(
    redis_server: RedisServer, ws: Any
) -> None:
    """Every message written to a socket is acknowledged, whichever write path it took
    (a direct write acknowledges before the drain's bookkeeping is done)."""
    namespace = Fleet(redis_server.url).namespace
    spec = {
        "type": "redis",
        "url": redis_server.url,
        "namespace": namespace,
        "log_level": "silent",
        "layout": 1,
    }
    adapter = ASGIAdapter(mount="/faye", timeout=5, engine=spec)
    server = LiveServer(adapter, ws=ws).start()
    store = redis.Redis.from_url(redis_server.url)
    try:
        async with (
            connect(server.ws_base + "/faye") as socket,
            httpx.AsyncClient(base_url=server.base) as http,
        ):
            await subscribed_socket(socket, "/news", settle=0.1)
            for n in range(3):
                await http.post("/faye", json={"channel": "/news", "data": n})
                frame = await receive(socket, timeout=5)
                assert [m["data"] for m in frame] == [n]
            engine = engine_of(adapter.proxy)
            await wait_for(lambda: not engine.unacknowledged(), timeout=3)
            queues = store.keys(f"{namespace}:*queue:*")
            assert queues  # the queue outlives its deliveries (its header stays)

            def nothing_in_flight() -> bool:
                heads = [split_queue(store.lrange(q, 0, -1))[1] for q in queues]
                return not any(heads) and not store.keys(f"{namespace}:*flight:*")

            await wait_for(nothing_in_flight, timeout=3)
    finally:
        store.close()
        server.stop()

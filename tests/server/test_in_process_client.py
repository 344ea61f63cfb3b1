"""The in-process client (adapter.get_client()) against its own adapter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from faye.adapter import ASGIAdapter
from faye.client import BayeuxError, Client, InProcessTransport
from tests.support.server import (
    TIMEOUT,
    Incoming,
    until,
)


async def test_in_process_round_trip(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    assert adapter.get_client() is client
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/chat/*", received.put_nowait)
    reply = await client.publish("/chat/room", {"text": "hi"})
    assert reply["successful"]
    assert await asyncio.wait_for(received.get(), 1.0) == {"text": "hi"}


async def test_in_process_messages_survive_a_connect_cycle(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/later", received.put_nowait)
    await asyncio.sleep(TIMEOUT * 1.5)  # at least one held connect has timed out and renewed
    await client.publish("/later", 1)
    await client.publish("/later", 2)
    assert [await asyncio.wait_for(received.get(), 1.0) for _ in range(2)] == [1, 2]


async def test_in_process_may_subscribe_meta_and_service(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/meta/*", received.put_nowait)
    await client.subscribe("/service/x", received.put_nowait)
    await client.publish("/service/x", "svc")
    assert await asyncio.wait_for(received.get(), 1.0) == "svc"


async def test_in_process_publish_failure_raises(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    with pytest.raises(BayeuxError) as info:
        await client.publish("/bad/*", 1)
    assert info.value.reply["error"] == "405:/bad/*:Invalid channel"


async def test_two_in_process_clients(adapter: ASGIAdapter) -> None:
    alice = adapter.get_client()
    bob = Client(InProcessTransport(adapter.server, adapter.start))
    try:
        got_a: asyncio.Queue[Any] = asyncio.Queue()
        got_b: asyncio.Queue[Any] = asyncio.Queue()
        await alice.subscribe("/room", got_a.put_nowait)
        await bob.subscribe("/room", got_b.put_nowait)
        assert alice.client_id != bob.client_id
        await alice.publish("/room", "from alice")
        assert await asyncio.wait_for(got_b.get(), 1.0) == "from alice"
        assert await asyncio.wait_for(got_a.get(), 1.0) == "from alice"
        sub = await bob.subscribe("/other", got_b.put_nowait)
        await sub.cancel()
        await alice.publish("/other", "nobody")
        await alice.publish("/room", "second")
        assert await asyncio.wait_for(got_b.get(), 1.0) == "second"
    finally:
        await bob.close()


async def test_in_process_client_goes_through_server_extensions(adapter: ASGIAdapter) -> None:
    requests: list[Any] = []

    def record(message: dict[str, Any], request: Any) -> dict[str, Any]:
        requests.append(request)
        if message["channel"] == "/tag":
            message["data"] = {**message["data"], "tagged": True}
        return message

    adapter.add_extension(Incoming(record))
    client = adapter.get_client()
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/tag", received.put_nowait)
    await client.publish("/tag", {"x": 1})
    assert await asyncio.wait_for(received.get(), 1.0) == {"x": 1, "tagged": True}
    assert requests and all(r is None for r in requests)


async def test_in_process_client_disconnect(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    client_id = await client.connect()
    assert await adapter.proxy.client_exists(client_id)
    await client.disconnect()
    assert not await adapter.proxy.client_exists(client_id)


async def test_in_process_client_rehandshakes_and_resubscribes(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/again", received.put_nowait)
    old_id = client.client_id
    assert old_id is not None
    await adapter.proxy.destroy_client(old_id)  # e.g. garbage-collected by the server
    await until(lambda: client.client_id not in (None, old_id), ticks=2000)
    await asyncio.sleep(0.01)
    await client.publish("/again", "back")
    assert await asyncio.wait_for(received.get(), 1.0) == "back"

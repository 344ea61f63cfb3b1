"""Monitoring events through the adapter: ``adapter.bind(event, listener)`` (spec §3.4, §5).

Every test runs on every engine (memory, Redis, Redis Cluster, Sentinel): the events and
their order are the same whatever keeps the state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from faye.adapter import ASGIAdapter
from faye.envelope import as_dicts

REMOTE = object()
EVENTS = (
    "handshake",
    "subscribe",
    "unsubscribe",
    "publish",
    "disconnect",
    "close",
    "connection:open",
    "connection:close",
)


@pytest.fixture
async def adapter(engine_spec: dict[str, Any] | None) -> AsyncIterator[ASGIAdapter]:
    adp = ASGIAdapter(mount="/faye", timeout=0.2, engine=engine_spec)
    await adp.start()
    try:
        yield adp
    finally:
        await adp.close()


@pytest.fixture
def log(adapter: ASGIAdapter) -> list[tuple[Any, ...]]:
    events: list[tuple[Any, ...]] = []

    def listener(name: str) -> Callable[..., None]:
        return lambda *args: events.append((name, *args))

    for name in EVENTS:
        adapter.bind(name, listener(name))
    return events


async def send(adapter: ASGIAdapter, message: Any, request: Any = REMOTE) -> list[dict[str, Any]]:
    return as_dicts(await adapter.server.process(message, request))


async def handshake(adapter: ASGIAdapter) -> str:
    [reply] = await send(
        adapter,
        {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["websocket"]},
    )
    return str(reply["clientId"])


async def sub(
    adapter: ASGIAdapter, client_id: str, channel: str, action: str = "subscribe"
) -> None:
    message = {"channel": f"/meta/{action}", "clientId": client_id, "subscription": channel}
    [reply] = await send(adapter, message)
    assert reply["successful"], reply


async def ticks(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def names(log: list[tuple[Any, ...]]) -> list[str]:
    return [entry[0] for entry in log]


async def test_handshake_event(adapter: ASGIAdapter, log: list[tuple[Any, ...]]) -> None:
    client_id = await handshake(adapter)
    assert log == [("handshake", client_id)]


async def test_subscribe_and_unsubscribe_events_only_on_change(
    adapter: ASGIAdapter, log: list[tuple[Any, ...]]
) -> None:
    client_id = await handshake(adapter)
    log.clear()
    await sub(adapter, client_id, "/a")
    await sub(adapter, client_id, "/a")
    await sub(adapter, client_id, "/never", "unsubscribe")
    await sub(adapter, client_id, "/a", "unsubscribe")
    await sub(adapter, client_id, "/a", "unsubscribe")
    assert log == [("subscribe", client_id, "/a"), ("unsubscribe", client_id, "/a")]


async def test_publish_event_fires_once_with_or_without_subscribers(
    adapter: ASGIAdapter, log: list[tuple[Any, ...]]
) -> None:
    await send(adapter, {"channel": "/nobody", "data": "x"})
    alice, bob = await handshake(adapter), await handshake(adapter)
    await sub(adapter, alice, "/m/*")
    await sub(adapter, alice, "/m/foo")
    await sub(adapter, bob, "/**")
    log.clear()
    await send(adapter, {"channel": "/m/foo", "data": {"ok": 1}, "clientId": alice})
    assert log == [("publish", alice, "/m/foo", {"ok": 1})]
    log.clear()
    await send(adapter, {"channel": "/nobody", "data": "x"})
    assert log == [("publish", None, "/nobody", "x")]


async def test_no_publish_event_for_refused_publish(
    adapter: ASGIAdapter, log: list[tuple[Any, ...]]
) -> None:
    await send(adapter, [{"channel": "/a/*", "data": 1}, {"channel": "/a"}, {"channel": "/meta/x"}])
    assert log == []


async def test_publish_event_sees_incoming_extension_changes(
    adapter: ASGIAdapter, log: list[tuple[Any, ...]]
) -> None:
    class Tag:
        def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
            if "data" in message:
                message["data"] = {**message["data"], "tagged": True}
            return message

    adapter.add_extension(Tag())
    await send(adapter, {"channel": "/t", "data": {"a": 1}})
    assert log == [("publish", None, "/t", {"a": 1, "tagged": True})]


async def test_disconnect_events(adapter: ASGIAdapter, log: list[tuple[Any, ...]]) -> None:
    client_id = await handshake(adapter)
    await sub(adapter, client_id, "/b")
    await sub(adapter, client_id, "/a")
    log.clear()
    await send(adapter, {"channel": "/meta/disconnect", "clientId": client_id})
    await ticks()
    assert sorted(log) == sorted(
        [
            ("unsubscribe", client_id, "/a"),
            ("unsubscribe", client_id, "/b"),
            ("disconnect", client_id),
            ("close", client_id),
        ]
    )


async def test_destroy_event_order(adapter: ASGIAdapter, log: list[tuple[Any, ...]]) -> None:
    client_id = await handshake(adapter)
    await sub(adapter, client_id, "/a")
    log.clear()
    await send(adapter, {"channel": "/meta/disconnect", "clientId": client_id})
    await ticks()
    await asyncio.sleep(0.1)  # a second close (from the Redis engine) would come by now
    assert log == [
        ("unsubscribe", client_id, "/a"),
        ("disconnect", client_id),
        ("close", client_id),
    ]


async def test_gc_emits_the_same_events(engine_spec: dict[str, Any] | None) -> None:
    if engine_spec is not None:
        engine_spec = {**engine_spec, "gc_interval": 0.05}
    adp = ASGIAdapter(mount="/faye", timeout=0.05, engine=engine_spec)
    seen: list[tuple[Any, ...]] = []
    closed = asyncio.Event()
    for name in ("unsubscribe", "disconnect", "close"):
        adp.bind(name, lambda *args, name=name: seen.append((name, *args)))
    adp.bind("close", lambda *args: closed.set())
    try:
        await adp.start()
        client_id = await handshake(adp)
        await sub(adp, client_id, "/gc")
        await asyncio.wait_for(closed.wait(), 5)
        await asyncio.sleep(0.2)  # nothing more comes (one close per client)
        assert seen == [
            ("unsubscribe", client_id, "/gc"),
            ("disconnect", client_id),
            ("close", client_id),
        ]
    finally:
        await adp.close()


async def test_connection_open_and_close_around_held_connect(
    adapter: ASGIAdapter, log: list[tuple[Any, ...]]
) -> None:
    client_id = await handshake(adapter)
    log.clear()
    connect = {
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": "long-polling",
        "advice": {"timeout": 10},
    }
    await send(adapter, connect)
    await ticks()
    assert log == [("connection:open", client_id), ("connection:close", client_id)]


async def test_async_listeners(adapter: ASGIAdapter) -> None:
    seen: list[tuple[Any, ...]] = []
    done = asyncio.Event()

    async def on_publish(client_id: Any, channel: str, data: Any) -> None:
        await asyncio.sleep(0)
        seen.append((client_id, channel, data))
        done.set()

    adapter.bind("publish", on_publish)
    await send(adapter, {"channel": "/async", "data": 7, "clientId": "c"})
    await asyncio.wait_for(done.wait(), 1.0)
    assert seen == [("c", "/async", 7)]


async def test_failing_listeners_do_not_break_processing(
    adapter: ASGIAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(*args: Any) -> None:
        raise RuntimeError("sync listener bug")

    async def broken_async(*args: Any) -> None:
        raise RuntimeError("async listener bug")

    adapter.bind("publish", broken)
    adapter.bind("publish", broken_async)
    adapter.bind("publish", lambda *args: seen.append(args[1]))
    with caplog.at_level(logging.ERROR, logger="faye.events"):
        [reply] = await send(adapter, {"channel": "/p", "data": 1})
        await ticks()
    assert reply["successful"]
    assert seen == ["/p"]
    assert "sync listener bug" in caplog.text
    assert "async listener bug" in caplog.text


async def test_unbind_and_on_alias(adapter: ASGIAdapter) -> None:
    first: list[Any] = []
    second: list[Any] = []

    def one(*args: Any) -> None:
        first.append(args)

    def two(*args: Any) -> None:
        second.append(args)

    adapter.on("handshake", one)
    adapter.bind("handshake", two)
    await handshake(adapter)
    adapter.unbind("handshake", one)
    await handshake(adapter)
    adapter.unbind("handshake")
    await handshake(adapter)
    assert len(first) == 1
    assert len(second) == 2


async def test_get_engine_is_the_emitter(adapter: ASGIAdapter) -> None:
    seen: list[Any] = []
    adapter.get_engine().bind("handshake", seen.append)
    client_id = await handshake(adapter)
    assert seen == [client_id]


async def test_in_process_client_triggers_events(
    adapter: ASGIAdapter, log: list[tuple[Any, ...]]
) -> None:
    client = adapter.get_client()
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/service/local", received.put_nowait)
    await client.publish("/service/local", "hi")
    assert await asyncio.wait_for(received.get(), 1.0) == "hi"
    client_id = client.client_id
    assert ("handshake", client_id) in log
    assert ("subscribe", client_id, "/service/local") in log
    assert ("publish", client_id, "/service/local", "hi") in log

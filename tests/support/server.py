"""Helpers for the tests of Server.process: a server on a real EngineProxy and
MemoryEngine, no sockets. ``REMOTE`` stands for any transport's request object;
``None`` is the in-process client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from faye.engines.memory import MemoryEngine
from faye.envelope import as_dicts
from faye.proxy import EngineProxy
from faye.server import Server

REMOTE = object()
TIMEOUT = 0.2
ALL_TYPES = [
    "long-polling",
    "cross-origin-long-polling",
    "callback-polling",
    "websocket",
    "eventsource",
    "in-process",
]
HANDSHAKE = {
    "channel": "/meta/handshake",
    "version": "1.0",
    "supportedConnectionTypes": ["long-polling"],
}


class Recorder:
    """Every monitoring event the proxy emits, in order."""

    EVENTS = ("handshake", "subscribe", "unsubscribe", "publish", "disconnect", "close",
              "connection:open", "connection:close")  # fmt: skip

    def __init__(self, proxy: EngineProxy) -> None:
        self.events: list[tuple[Any, ...]] = []
        for name in self.EVENTS:
            proxy.bind(name, self._listener(name))

    def _listener(self, name: str) -> Callable[..., None]:
        return lambda *args: self.events.append((name, *args))

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [e[1:] for e in self.events if e[0] == name]


async def make_server(
    engine: Any = MemoryEngine, timeout: float = TIMEOUT, interval: float = 0.0
) -> Server:
    proxy = EngineProxy(engine.create, {}, timeout=timeout, interval=interval)
    await proxy.start()
    return Server(proxy)


async def process(server: Server, messages: Any, request: Any = REMOTE) -> list[dict[str, Any]]:
    return as_dicts(await server.process(messages, request))


async def handshake(server: Server, request: Any = REMOTE) -> str:
    [reply] = await process(server, dict(HANDSHAKE), request)
    assert reply["successful"], reply
    return str(reply["clientId"])


async def subscribe(
    server: Server, client_id: str, subscription: Any, request: Any = REMOTE
) -> Any:
    [reply] = await process(
        server,
        {"channel": "/meta/subscribe", "clientId": client_id, "subscription": subscription},
        request,
    )
    return reply


def connect_msg(client_id: str, timeout_ms: float | None = None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": "long-polling",
        **fields,
    }
    if timeout_ms is not None:
        message["advice"] = {"timeout": timeout_ms}
    return message


async def until(predicate: Callable[[], bool], ticks: int = 200) -> None:
    for _ in range(ticks):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def held_connect(
    server: Server, client_id: str, request: Any = REMOTE, **fields: Any
) -> asyncio.Task[list[Any]]:
    """Start a connect and return once the proxy is holding it."""
    task = asyncio.ensure_future(server.process(connect_msg(client_id, **fields), request))
    await until(lambda: server.proxy.has_connection(client_id))
    assert not task.done()
    return task


async def subscribed_client(server: Server, channel: str, request: Any = REMOTE) -> str:
    client_id = await handshake(server, request)
    assert (await subscribe(server, client_id, channel, request))["successful"]
    return client_id


async def poll(server: Server, client_id: str, request: Any = REMOTE) -> list[dict[str, Any]]:
    """A connect that returns at once with whatever is queued."""
    return await process(server, connect_msg(client_id, timeout_ms=0), request)


class Incoming:
    """A server extension whose incoming hook is ``fn``."""

    def __init__(self, fn: Callable[[dict[str, Any], Any], Any]) -> None:
        self.fn = fn

    def incoming(self, message: dict[str, Any], request: Any) -> Any:
        return self.fn(message, request)


class Outgoing:
    """A server extension whose outgoing hook is ``fn``."""

    def __init__(self, fn: Callable[[dict[str, Any], Any], Any]) -> None:
        self.fn = fn

    def outgoing(self, message: dict[str, Any], request: Any) -> Any:
        return self.fn(message, request)

"""Build engine proxies of every kind for the one engine contract suite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from faye.adapter import resolve_engine
from faye.envelope import Envelope
from faye.proxy import EngineProxy
from faye.redis import RedisEngine
from faye.redis.keys import split_queue


def engine_of(proxy: EngineProxy) -> RedisEngine:
    """The Redis engine behind a proxy (tests and benchmarks look inside it)."""
    backend = proxy.backend
    assert isinstance(backend, RedisEngine)
    return backend


class CollectingSocket:
    """A push target that records what the proxy delivers to one client."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.closed = False
        self.arrived = asyncio.Event()

    def push(self, messages: Sequence[Envelope]) -> None:
        self.messages.extend(m.copy() for m in messages)
        self.arrived.set()

    def close(self) -> None:
        self.closed = True


class EngineKit:
    """Makes proxies sharing one backing store: one for memory, many for Redis.

    ``kind`` is ``memory``, ``redis``, ``redis-cluster`` or ``redis-sentinel``; the
    Redis kinds differ only in ``redis_url`` (``redis://``, ``redis+cluster://``,
    ``redis+sentinel://``).
    """

    def __init__(self, kind: str, redis_url: str | None = None, *, layout: int = 1) -> None:
        self.kind = kind
        self.redis_url = redis_url
        #: The Redis engine's key layout (the ``layout`` option).
        self.layout = layout
        self.namespace = f"test-{uuid.uuid4().hex[:12]}"
        self.proxies: list[EngineProxy] = []

    @property
    def distributed(self) -> bool:
        return self.kind != "memory"

    async def proxy(self, timeout: float = 1.0, **options: Any) -> EngineProxy:
        if self.kind == "memory":
            spec: Any = {"type": "memory", **options}
        else:
            spec = {
                "type": "redis",
                "url": self.redis_url,
                "namespace": self.namespace,
                "log_level": "silent",
                "layout": self.layout,
                **options,
            }
        factory, engine_options = resolve_engine(spec)
        proxy = EngineProxy(factory, engine_options, timeout=timeout)
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    async def close(self) -> None:
        for proxy in self.proxies:
            await proxy.close()


async def in_flight(
    raw: Any, engine: RedisEngine, client_id: str, partition: int = 0, server_id: str = ""
) -> list[bytes]:
    """The client's messages in flight on a server (the engine's own by default), from
    the head of its queue and from the server's own list (kept there after a move)."""
    sid = server_id or engine.server_id
    holder, flying, _ = split_queue(
        await raw.lrange(engine.keys.queue(partition, client_id), 0, -1)
    )
    own: list[bytes] = await raw.lrange(engine.keys.in_flight(partition, client_id, sid), 0, -1)
    return own + (flying if holder == sid else [])


async def queued(raw: Any, engine: RedisEngine, client_id: str, partition: int = 0) -> list[bytes]:
    """The client's messages not handed out yet, in one home."""
    _, _, rest = split_queue(await raw.lrange(engine.keys.queue(partition, client_id), 0, -1))
    return rest


async def attach(proxy: EngineProxy, client_id: str) -> CollectingSocket:
    """Give a client a live connection in ``proxy`` so deliveries are pushed to it."""
    socket = CollectingSocket()
    proxy.open_socket(client_id, socket)
    await proxy.backend.ping(client_id)
    await proxy.backend.empty_queue(client_id)
    return socket


async def settle(seconds: float = 0.05) -> None:
    """Let cross-process notifications and zero-delay timers run."""
    await asyncio.sleep(seconds)


def data(messages: list[Envelope] | list[dict[str, Any]] | list[bytes]) -> list[Any]:
    """The ``data`` of delivered envelopes, pushed messages or raw queue entries."""
    out = []
    for m in messages:
        if isinstance(m, Envelope):
            out.append(m.message["data"])
        elif isinstance(m, bytes):
            out.append(orjson.loads(m)["data"])
        else:
            out.append(m["data"])
    return out

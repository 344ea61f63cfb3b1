"""Fixtures for the Redis engine's own tests: proxies on private redis-servers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from faye.proxy import EngineProxy
from faye.redis import RedisEngine
from tests.support.engines import engine_of
from tests.support.redis_server import RedisServer

__all__ = ["Fleet", "engine_of"]

ProxyFactory = Callable[..., Awaitable[EngineProxy]]


class Fleet:
    """Proxies sharing one namespace on one Redis, closed at the end of a test."""

    def __init__(self, url: str, namespace: str | None = None) -> None:
        self.url = url
        self.namespace = namespace or f"t-{uuid.uuid4().hex[:10]}"
        self.proxies: list[EngineProxy] = []

    async def proxy(self, timeout: float = 1.0, **options: Any) -> EngineProxy:
        """A server's engine proxy; layout 1 unless the options say otherwise (most of
        these tests look at layout 1's keys; tests/redis/test_layout2.py has layout 2's)."""
        spec: dict[str, Any] = {
            "url": self.url,
            "namespace": self.namespace,
            "log_level": "silent",
            "layout": 1,
            **options,
        }
        proxy = EngineProxy(RedisEngine.create, spec, timeout=timeout)
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    async def close(self) -> None:
        for proxy in self.proxies:
            await proxy.close()


@pytest.fixture
async def fleet(redis_server: RedisServer) -> AsyncIterator[Fleet]:
    fleet = Fleet(redis_server.url)
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.fixture
async def raw_redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client on the test Redis, to look at or damage what the engine wrote."""
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()

"""The documented manual collection, ``bayeux.get_engine().cleanup_expired()``."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import faye
from tests.support.redis_server import RedisServer


async def test_cleanup_expired_through_the_adapters_engine(redis_server: RedisServer) -> None:
    bayeux = faye.ASGIAdapter(
        mount="/faye",
        timeout=0.1,
        engine={
            "type": "redis",
            "url": redis_server.url,
            "namespace": f"t-{uuid.uuid4().hex[:10]}",
            "gc_interval": None,
            "log_level": "silent",
        },
    )
    await bayeux.start()
    try:
        engine = bayeux.get_engine()
        disconnected: list[Any] = []
        bayeux.bind("disconnect", disconnected.append)
        expired = [await engine.create_client() for _ in range(2)]
        await asyncio.sleep(0.25)  # past 2 x timeout
        assert await engine.cleanup_expired() == 2
        assert sorted(disconnected) == sorted(expired)
        assert await engine.cleanup_expired() == 0
    finally:
        await bayeux.close()


async def test_memory_engine_says_it_collects_on_its_own() -> None:
    bayeux = faye.ASGIAdapter(mount="/faye", timeout=1)
    with pytest.raises(NotImplementedError, match="MemoryEngine collects expired clients"):
        await bayeux.get_engine().cleanup_expired()

"""Held connects time out through one shared timer, to the tick (faye.proxy.Deadlines)."""

from __future__ import annotations

import asyncio
import time

from faye.engines.memory import MemoryEngine
from faye.proxy import TICK, EngineProxy


async def test_held_connects_end_after_their_hold_and_within_a_tick_of_it() -> None:
    proxy = EngineProxy(MemoryEngine.create, {}, timeout=5)
    await proxy.start()
    try:
        clients = [await proxy.create_client() for _ in range(3)]
        holds = [0.15, 0.15, 0.4]
        started = time.monotonic()

        async def timed(client_id: str, hold: float) -> float:
            assert await proxy.connect(client_id, hold) == []
            return time.monotonic() - started

        ended = await asyncio.gather(*(timed(c, h) for c, h in zip(clients, holds, strict=True)))
        for hold, took in zip(holds, ended, strict=True):
            assert hold <= took < hold + TICK + 0.1, (hold, took)
    finally:
        await proxy.close()


async def test_a_connect_that_supersedes_another_takes_over_its_deadline() -> None:
    proxy = EngineProxy(MemoryEngine.create, {}, timeout=5)
    await proxy.start()
    try:
        client_id = await proxy.create_client()
        first = asyncio.ensure_future(proxy.connect(client_id, 0.2))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(proxy.connect(client_id, 1.0))
        assert await asyncio.wait_for(first, 1) == []  # answered at once by the second
        await asyncio.sleep(0.4)  # past the first one's deadline
        assert not second.done()
        await proxy.publish({"channel": "/x", "data": 1})  # nobody subscribed: nothing
        assert await asyncio.wait_for(second, 2) == []
    finally:
        await proxy.close()


async def test_closing_the_proxy_answers_held_connects() -> None:
    proxy = EngineProxy(MemoryEngine.create, {}, timeout=5)
    await proxy.start()
    client_id = await proxy.create_client()
    held = asyncio.ensure_future(proxy.connect(client_id, 30))
    await asyncio.sleep(0.05)
    await proxy.close()
    assert await asyncio.wait_for(held, 1) == []

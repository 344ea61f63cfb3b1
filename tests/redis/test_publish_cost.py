"""Redis commands per publish against the number of subscribers, per layout.

What one Redis core can carry is set by the commands (and the work inside them) each
publish costs it. Layout 1 queues the message for every recipient, so its count grows
with the audience (asserted, as the measured reason for layout 2); layout 2 writes each
matching log once and sends it once to each server holding recipients, so its count
must not grow with subscribers.

Counted with ``INFO commandstats``, which counts the commands a function runs as well
as the FCALL itself, over the publish and everything it causes until every subscriber
has the message (and its write is reported). Run with ``-s`` for the counts:
    python -m pytest tests/redis/test_publish_cost.py -s -q
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.redis.conftest import Fleet
from tests.support.engines import attach
from tests.support.redis_server import RedisServer, running_redis
from tests.support.waiting import wait_for

SIZES = (1, 10, 1000)

#: Layouts this test runs on.
LAYOUTS = (1, 2)


@pytest.fixture(scope="module")
def quiet_redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


async def command_stats(client: Redis) -> dict[str, int]:
    info = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


async def commands_per_publish(url: str, layout: int, subscribers: int) -> dict[str, int]:
    """Commands Redis ran for the second of two publishes to ``subscribers`` clients
    held by two servers (half of them subscribed through ``/cost/*``), published by a
    third. The first publish warms what a steady flow keeps (queue headers, cursors)."""
    fleet = Fleet(url)
    options: dict[str, Any] = {
        "timeout": 60,
        "heartbeat_interval": 60,
        "gc_interval": None,
        "layout": layout,
        # Cursor writes (layout 2) at most once a second, as the assertion below allows.
        "cursor_interval": 1.0,
    }
    raw = Redis.from_url(url)
    try:
        a = await fleet.proxy(**options)
        b = await fleet.proxy(**options)
        publisher = await fleet.proxy(**options)
        holders, sockets = [], []
        for n in range(subscribers):
            holder = a if n % 2 == 0 else b
            client_id = await holder.create_client()
            await holder.subscribe(client_id, "/cost/*" if n % 2 else "/cost/x")
            sockets.append(await attach(holder, client_id))
            holders.append((holder, client_id))
        delta: dict[str, int] = {}
        for data in ("warm", "counted"):
            received = [len(s.messages) for s in sockets]
            await asyncio.sleep(0.05)  # what the setup or the previous round caused
            await raw.config_resetstat()
            await publisher.publish({"channel": "/cost/x", "data": data})
            await wait_for(
                lambda r=received: all(
                    len(s.messages) > n for s, n in zip(sockets, r, strict=True)
                ),
                timeout=20,
            )
            for holder, client_id in holders:
                holder.delivered(client_id, 1)  # the transport wrote it
            await asyncio.sleep(0.3)  # acknowledgements and cursor writes go out
            stats = await command_stats(raw)
            delta = {k: v for k, v in stats.items() if k not in ("config|resetstat", "info")}
            assert all(s.messages[-1]["data"] == data for s in sockets)
            assert all(len(s.messages) == r + 1 for s, r in zip(sockets, received, strict=True))
        return delta
    finally:
        await raw.aclose()
        await fleet.close()


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_redis_commands_per_publish_by_subscribers(
    quiet_redis: RedisServer, layout: int
) -> None:
    counts = {}
    for size in SIZES:
        delta = await commands_per_publish(quiet_redis.url, layout, size)
        counts[size] = sum(delta.values())
        print(
            f"\nlayout {layout}, {size} subscriber(s): {counts[size]} commands: "
            + ", ".join(f"{k} {v}" for k, v in sorted(delta.items()))
        )
    if layout == 1:
        # Documented growth: every recipient costs its queue commands.
        assert counts[1000] >= 2 * 1000
        assert counts[1000] > 50 * counts[1]
    else:
        # One name and one server for a lone subscriber, two of each beyond: 9 and 12
        # commands. A server's cursor write (FCALL, HMGET, HSET: once a second at most,
        # for all its clients) may fall in the window, whatever the audience.
        assert counts[1] <= counts[10]
        assert counts[1000] <= counts[10] + 2 * 3
        assert max(counts.values()) <= 12 + 2 * 3

"""One Redis round trip per publish whatever the fan-out, and one per woken server.

Run with ``-s`` to print the table recorded in docs/redis.md:
    python -m pytest tests/redis/test_round_trips.py -s -q
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.redis.conftest import Fleet, engine_of
from tests.support.engines import attach
from tests.support.redis_server import RedisServer, running_redis
from tests.support.round_trips import count_sends
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def quiet_redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


async def command_stats(client: Redis) -> dict[str, int]:
    info = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


@pytest.mark.parametrize("subscribers", [1, 10, 1000])
async def test_publish_round_trips(quiet_redis: RedisServer, subscribers: int) -> None:
    fleet = Fleet(quiet_redis.url)
    # A long timeout: clients set up first must still count as alive at the publish.
    options: dict[str, Any] = {"timeout": 60, "heartbeat_interval": 60, "gc_interval": None}
    raw = Redis.from_url(quiet_redis.url)
    try:
        a = await fleet.proxy(**options)
        b = await fleet.proxy(**options)
        publisher = await fleet.proxy(**options)
        inboxes: dict[str, Any] = {}
        for n in range(subscribers):
            holder = a if n % 2 == 0 else b
            client_id = await holder.create_client()
            await holder.subscribe(client_id, "/bench/*" if n % 3 else "/bench/x")
            inboxes[client_id] = await attach(holder, client_id)
        client_ids = list(inboxes)
        sockets = list(inboxes.values())
        for round_ in ("first", "next"):
            # The first delivery to each client writes its queue's header; the next ones
            # find it, and carry the acknowledgement of the previous message.
            publisher_sends = count_sends(engine_of(publisher))
            a_sends, b_sends = count_sends(engine_of(a)), count_sends(engine_of(b))
            await raw.config_resetstat()
            before = await command_stats(raw)
            received = [len(inbox.messages) for inbox in sockets]
            started = time.perf_counter()
            await publisher.publish({"channel": "/bench/x", "data": "hi", "clientId": "p"})
            took = time.perf_counter() - started
            assert publisher_sends() == 1
            await wait_for(
                lambda r=received: all(
                    len(inbox.messages) > n for inbox, n in zip(sockets, r, strict=True)
                ),
                timeout=10,
            )
            await asyncio.sleep(0.05)
            stats = await command_stats(raw)
            delta = {k: v - before.get(k, 0) for k, v in stats.items() if v - before.get(k, 0)}
            delta.pop("config|resetstat", None)
            delta.pop("info", None)
            holders = 1 if subscribers == 1 else 2
            drains = a_sends() + b_sends()
            assert drains == holders  # each holding server: one notification, one drain
            assert delta["publish"] == holders
            assert delta["fcall"] == 1 + holders
            print(
                f"\nN={subscribers} ({round_} message): publish {took * 1000:.2f} ms, "
                f"1 round trip; drain round trips {drains}; "
                f"Redis commands {sum(delta.values())}: "
                + ", ".join(f"{k} {v}" for k, v in sorted(delta.items()))
            )
            for n, client_id in enumerate(client_ids):
                (a if n % 2 == 0 else b).delivered(client_id, 1)  # written
    finally:
        await raw.aclose()
        await fleet.close()


@pytest.mark.parametrize("partitions", [1, 4])
async def test_a_burst_of_publishes_is_one_script_call_and_one_wake_up_per_server(
    quiet_redis: RedisServer, partitions: int
) -> None:
    """Publishes of one event-loop turn share one publish script call, and each holding
    server is woken once for all of them (point-to-point traffic is mostly that), also
    when their channels live in several partitions of the server."""
    fleet = Fleet(quiet_redis.url)
    options: dict[str, Any] = {
        "timeout": 60,
        "heartbeat_interval": 60,
        "gc_interval": None,
        "partitions": partitions,
    }
    raw = Redis.from_url(quiet_redis.url)
    try:
        publisher = await fleet.proxy(**options)
        holder = await fleet.proxy(**options)
        inboxes = []
        for n in range(10):
            client_id = await holder.create_client()
            await holder.subscribe(client_id, f"/burst/{n}")
            inboxes.append(await attach(holder, client_id))
        sends = count_sends(engine_of(publisher))
        await raw.config_resetstat()
        await asyncio.gather(
            *(publisher.publish({"channel": f"/burst/{n}", "data": n}) for n in range(10))
        )
        await wait_for(lambda: all(inbox.messages for inbox in inboxes), timeout=5)
        assert sends() == 1
        stats = await command_stats(raw)
        assert stats["publish"] == 1  # one notification naming the 10 clients
        assert stats["fcall"] == 2  # the publishes, then the holder's one drain
        homes = {engine_of(holder).keys.home(f"/burst/{n}") for n in range(10)}
        assert len(homes) == partitions
        assert [[m["data"] for m in inbox.messages] for inbox in inboxes] == [
            [n] for n in range(10)
        ]
    finally:
        await raw.aclose()
        await fleet.close()

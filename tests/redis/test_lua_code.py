"""How the engine's Lua code reaches Redis: a function library on Redis 7, scripts where
functions are missing or refused, and loading again after Redis forgot either."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.redis.conftest import Fleet, engine_of
from tests.support.engines import attach, data
from tests.support.redis_server import RedisServer, running_redis
from tests.support.waiting import wait_for


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of its own: these tests flush its functions and scripts."""
    with running_redis() as server:
        yield server


async def command_calls(client: Redis, command: str) -> int:
    stats: dict[str, Any] = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def exercise(fleet: Fleet, rounds: int, flush: Any) -> None:
    """Two servers, clients whose subscriptions span partitions; before each round
    Redis forgets the engine's code (``flush``), and every step must still work."""
    a = await fleet.proxy(partitions=4)
    b = await fleet.proxy(partitions=4)
    alice = await a.create_client()
    inbox = await attach(a, alice)
    for n in range(rounds):
        await flush()
        # A subscription in another partition (several calls at once), a publish, the
        # drain it wakes, an unsubscribe and a destroy across homes.
        await a.subscribe(alice, f"/round/{n}")
        await b.publish({"channel": f"/round/{n}", "data": n})
        await wait_for(lambda n=n: len(inbox.messages) == n + 1)
        a.delivered(alice, 1)
        await flush()
        await a.unsubscribe(alice, f"/round/{n}")
        bob = await b.create_client()
        for channel in ("/x", "/y", "/z", "/w"):
            await b.subscribe(bob, channel)
        await flush()
        await b.destroy_client(bob)
        assert not await a.client_exists(bob)
    assert data(inbox.messages) == list(range(rounds))


async def test_the_library_is_a_function_library_on_redis_7(private_redis: RedisServer) -> None:
    fleet = Fleet(private_redis.url)
    raw = Redis.from_url(private_redis.url)
    try:
        proxy = await fleet.proxy()
        engine = engine_of(proxy)
        assert engine.redis.functions
        libraries = await raw.function_list()
        names = [entry[entry.index(b"library_name") + 1] for entry in libraries]
        assert names == [engine.redis.library.name.encode()]
        alice = await proxy.create_client()
        await proxy.subscribe(alice, "/f")
        before = await command_calls(raw, "evalsha")
        await proxy.publish({"channel": "/f", "data": 1})
        assert data(await proxy.connect(alice, hold=1.0)) == [1]
        assert await command_calls(raw, "evalsha") == before  # FCALL only
        assert await command_calls(raw, "fcall") > 0
    finally:
        await fleet.close()
        await raw.aclose()


async def test_a_flushed_library_is_loaded_again(private_redis: RedisServer) -> None:
    """FUNCTION FLUSH stands for a restart without persistence, or an operator's flush:
    the next call finds its function missing, the engine loads the library and calls
    again (nothing ran, so nothing is done twice)."""
    fleet = Fleet(private_redis.url)
    raw = Redis.from_url(private_redis.url)
    try:
        await exercise(fleet, 3, lambda: raw.function_flush())
        assert await raw.function_list()  # loaded again
    finally:
        await fleet.close()
        await raw.aclose()


@pytest.mark.parametrize(
    "refusal",
    [
        # An ACL that allows everything but FUNCTION (its errors are NOPERM).
        ("--user", "default", "on", "nopass", "~*", "&*", "+@all", "-function"),
        # No FUNCTION command at all, as Redis 6.2 answers: "unknown command".
        ("--rename-command", "FUNCTION", '""'),
    ],
    ids=["acl", "no-functions"],
)
async def test_scripts_run_where_functions_are_refused(refusal: tuple[str, ...]) -> None:
    with running_redis(*refusal) as server:
        fleet = Fleet(server.url)
        raw = Redis.from_url(server.url)
        try:
            proxy = await fleet.proxy()
            assert not engine_of(proxy).redis.functions
            # SCRIPT FLUSH forgets the scripts as FUNCTION FLUSH forgets a library.
            await exercise(fleet, 2, lambda: raw.script_flush())
            assert await command_calls(raw, "evalsha") > 0
            assert await command_calls(raw, "fcall") == 0
        finally:
            await fleet.close()
            await raw.aclose()

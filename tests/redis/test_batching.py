"""Client calls made together share one round trip (``faye/redis/batching.py``), and
each keeps its own answer, error and retry policy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from faye.engine import EngineError
from faye.redis.engine import RedisEngine
from tests.redis.conftest import Fleet, engine_of
from tests.support.redis_server import RedisServer, running_redis

LAYOUTS = pytest.mark.parametrize("layout", [1, 2], ids=["layout1", "layout2"])


def round_trips(engine: RedisEngine) -> int:
    return int(engine.redis.counts["redis_round_trips"])


@LAYOUTS
async def test_handshakes_subscribes_and_disconnects_made_together_share_a_round_trip(
    fleet: Fleet, layout: int
) -> None:
    proxy = await fleet.proxy(layout=layout)
    engine = engine_of(proxy)
    before = round_trips(engine)
    ids = await asyncio.gather(*(engine.create_client() for _ in range(20)))
    assert round_trips(engine) == before + 1
    assert len(set(ids)) == 20
    before = round_trips(engine)
    added = await asyncio.gather(*(engine.subscribe(cid, f"/b/{cid}") for cid in ids))
    assert added == [True] * 20
    assert round_trips(engine) == before + 1
    # Every call got its own answer: each client exists, and is subscribed once.
    before = round_trips(engine)
    channels = await asyncio.gather(*(engine.destroy_client(cid) for cid in ids))
    assert channels == [[f"/b/{cid}"] for cid in ids]
    assert round_trips(engine) == before + 1
    assert await asyncio.gather(*(engine.client_exists(cid) for cid in ids)) == [False] * 20


async def test_a_call_alone_goes_out_alone(fleet: Fleet) -> None:
    engine = engine_of(await fleet.proxy(layout=2))
    before = round_trips(engine)
    cid = await engine.create_client()
    assert await engine.subscribe(cid, "/alone")
    assert await engine.destroy_client(cid) == ["/alone"]
    assert round_trips(engine) == before + 3


async def test_an_error_of_one_call_leaves_the_others_their_answers(
    fleet: Fleet, raw_redis: Redis
) -> None:
    engine = engine_of(await fleet.proxy(layout=2))
    await raw_redis.hset(f"{fleet.namespace}-batch-hash", "f", "v")
    results = await asyncio.gather(
        engine.batch.command("probe", "INCR", f"{fleet.namespace}-batch-a", idempotent=True),
        engine.batch.command("probe", "INCR", f"{fleet.namespace}-batch-hash", idempotent=True),
        engine.batch.command("probe", "GET", f"{fleet.namespace}-batch-a", idempotent=True),
        return_exceptions=True,
    )
    assert results[0] == 1
    assert isinstance(results[1], EngineError) and "WRONGTYPE" in str(results[1])
    assert results[2] == b"1"


# Redis answers LOADING only in the window while it reads its data back after a restart,
# which a test cannot hit on purpose; this script gives that same error reply, once per
# key, from a real Redis.
LOADING_ONCE = (
    "if redis.call('INCR', KEYS[1]) == 1 then "
    "return redis.error_reply('LOADING Redis is loading the dataset in memory') end "
    "return 'ready'"
)


async def test_a_call_told_redis_is_loading_inside_a_shared_round_trip_is_retried_alone(
    fleet: Fleet, raw_redis: Redis
) -> None:
    engine = engine_of(await fleet.proxy(layout=2))
    key = f"{fleet.namespace}-batch-loading"
    await raw_redis.set(f"{key}-c", "1")
    results = await asyncio.gather(
        engine.batch.command("probe", "EVAL", LOADING_ONCE, 1, f"{key}-a", idempotent=True),
        engine.batch.command("probe", "EVAL", LOADING_ONCE, 1, f"{key}-b", idempotent=False),
        engine.batch.command("probe", "GET", f"{key}-c", idempotent=True),
        return_exceptions=True,
    )
    # Loading concerns the whole round trip: what may be repeated is sent again on its
    # own and answered; the call that may not be repeated gets the error.
    assert results[0] == b"ready"
    assert isinstance(results[1], EngineError) and "loading" in str(results[1])
    assert results[2] == b"1"


@LAYOUTS
async def test_calls_made_together_after_the_code_was_flushed_load_it_again(
    fleet: Fleet, raw_redis: Redis, layout: int
) -> None:
    engine = engine_of(await fleet.proxy(layout=layout))
    ids = await asyncio.gather(*(engine.create_client() for _ in range(5)))
    await raw_redis.function_flush()
    await raw_redis.script_flush()
    added = await asyncio.gather(*(engine.subscribe(cid, "/flushed") for cid in ids))
    assert added == [True] * 5


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of its own: these tests stop it."""
    with running_redis() as server:
        yield server


@LAYOUTS
async def test_a_shared_round_trip_that_fails_retries_only_what_may_be_repeated(
    private_redis: RedisServer, layout: int
) -> None:
    """Redis is stopped for real while the calls wait; it comes back during the retries."""
    fleet = Fleet(private_redis.url)
    try:
        engine = engine_of(
            await fleet.proxy(
                layout=layout,
                # 0.05 s doubling: Redis, back after 0.4 s, answers the 4th or 5th try;
                # 8 tries span 12.75 s, so a slow restart fails the test, not hangs it.
                max_retries=8,
                retry_delay=0.05,
                connect_timeout=0.5,
                read_timeout=0.5,
                write_timeout=0.5,
            )
        )
        ids = await asyncio.gather(*(engine.create_client() for _ in range(4)))
        private_redis.stop()

        async def restart() -> None:
            await asyncio.sleep(0.4)
            await asyncio.to_thread(private_redis.start)

        back = asyncio.ensure_future(restart())
        # Lookups may be sent again; a disconnect may not (it may have run).
        results = await asyncio.gather(
            *(engine.client_exists(cid) for cid in ids[:3]),
            engine.destroy_client(ids[3]),
            return_exceptions=True,
        )
        await back
        # Redis came back empty (no persistence): the lookups were answered by it.
        assert results[:3] == [False, False, False]
        assert isinstance(results[3], EngineError)
    finally:
        await fleet.close()


async def test_calls_waiting_when_the_engine_closes_fail_instead_of_hanging(
    fleet: Fleet,
) -> None:
    proxy = await fleet.proxy(layout=2)
    engine = engine_of(proxy)
    calls = [asyncio.ensure_future(engine.create_client()) for _ in range(3)]
    await asyncio.sleep(0)  # submitted, not yet sent
    await engine.batch.close(grace=1.0)
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, EngineError) for r in results)
    with pytest.raises(EngineError):
        await engine.create_client()


async def test_closing_gives_a_call_on_the_wire_a_grace_period_then_fails_it(
    fleet: Fleet,
) -> None:
    """A BLPOP on an empty list holds its connection (a call Redis does not answer):
    the close waits the grace period, not for the answer."""
    engine = engine_of(await fleet.proxy(layout=2, read_timeout=30))
    key = f"{fleet.namespace}-batch-empty"
    held = asyncio.ensure_future(engine.batch.command("probe", "BLPOP", key, 0, idempotent=False))
    await asyncio.sleep(0.2)  # on the wire
    loop = asyncio.get_running_loop()
    started = loop.time()
    await engine.batch.close(grace=0.5)
    assert loop.time() - started < 2
    with pytest.raises(EngineError):
        await held

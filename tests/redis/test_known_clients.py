"""Looking a client up before a subscribe, unsubscribe or disconnect (``client_known``):
from this server's memory while its last known ping is recent, from Redis otherwise,
and never for a client destroyed anywhere."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from faye.redis.engine import RedisEngine
from faye.redis.known import KnownClients
from tests.redis.conftest import Fleet, engine_of
from tests.support.waiting import wait_for

LAYOUTS = pytest.mark.parametrize("layout", [1, 2], ids=["layout1", "layout2"])


def round_trips(engine: RedisEngine) -> int:
    return int(engine.redis.counts["redis_round_trips"])


async def _two_servers_and_a_client(fleet: Fleet, layout: int) -> tuple[Any, Any, str]:
    """Servers ``a`` and ``b``; alice was created on ``a``."""
    a = await fleet.proxy(layout=layout)
    b = await fleet.proxy(layout=layout)
    return a, b, await a.create_client()


@LAYOUTS
async def test_a_client_just_created_or_answered_for_costs_no_round_trip(
    fleet: Fleet, layout: int
) -> None:
    a, b, alice = await _two_servers_and_a_client(fleet, layout)
    engine_a, engine_b = engine_of(a), engine_of(b)
    before = round_trips(engine_a)
    for _ in range(3):
        assert await a.client_known(alice)
    assert round_trips(engine_a) == before
    # Another server asks Redis once, then answers from what Redis told it.
    before = round_trips(engine_b)
    for _ in range(3):
        assert await b.client_known(alice)
    assert round_trips(engine_b) == before + 1


@LAYOUTS
async def test_a_client_destroyed_on_another_server_is_unknown_here(
    fleet: Fleet, layout: int
) -> None:
    a, b, alice = await _two_servers_and_a_client(fleet, layout)
    assert await b.client_known(alice)
    await a.destroy_client(alice)
    assert not await a.client_known(alice)
    engine_b = engine_of(b)
    await wait_for(lambda: not engine_b.known.alive(alice, 0))  # the close notification
    assert not await b.client_known(alice)


@LAYOUTS
async def test_a_client_whose_last_ping_is_too_old_is_asked_of_redis(
    fleet: Fleet, layout: int
) -> None:
    """Timeout 0.3 s: a client not heard of for 1.6 x that is unknown, as in Redis."""
    a = await fleet.proxy(timeout=0.3, layout=layout, gc_interval=None)
    alice = await a.create_client()
    assert await a.client_known(alice)
    await asyncio.sleep(0.6)
    engine = engine_of(a)
    before = round_trips(engine)
    assert not await a.client_known(alice)
    assert round_trips(engine) == before + 1


@LAYOUTS
async def test_what_redis_forgot_during_a_listener_outage_is_asked_of_redis_again(
    fleet: Fleet, raw_redis: Redis, layout: int
) -> None:
    """Redis restarted without its data loses records without telling any server; the
    listener's outage is the sign. Here the record is deleted and the listener cut."""
    a = await fleet.proxy(layout=layout, retry_delay=0.05)
    alice = await a.create_client()
    engine = engine_of(a)
    assert await a.client_known(alice)
    partition = engine.keys.partition(alice)
    await raw_redis.zrem(engine.keys.clients(partition), alice)
    assert await a.client_known(alice)  # nothing told it yet
    await raw_redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await wait_for(lambda: len(engine.known) == 0)
    assert not await a.client_known(alice)


def test_a_forgotten_client_is_not_revived_by_a_late_answer() -> None:
    known = KnownClients()
    known.saw("alice", 1_000)
    assert known.alive("alice", 999)
    assert not known.alive("alice", 1_000)  # pinged at the cutoff: too old
    known.forget("alice")
    known.saw("alice", 2_000)  # an answer under way as it was destroyed
    assert not known.alive("alice", 0)


def test_known_clients_are_bounded() -> None:
    known = KnownClients(limit=3)
    for n in range(5):
        known.saw(f"c{n}", 1_000)
        known.forget(f"gone{n}")
    assert len(known) == 3
    assert not known.alive("c0", 0) and known.alive("c4", 0)
    known.saw("gone0", 1_000)  # its tombstone was the oldest, and went
    assert known.alive("gone0", 0)

"""The Redis engine on a real redis-server: isolation, delivery lane, bad data, GC."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from faye.engine import EngineError
from faye.envelope import Envelope
from faye.proxy import EngineProxy
from faye.redis import collect_garbage
from tests.redis.conftest import Fleet, engine_of
from tests.support.engines import attach, data, in_flight, queued, settle
from tests.support.redis_server import RedisServer
from tests.support.round_trips import count_sends
from tests.support.waiting import wait_for


async def with_queued(proxy: EngineProxy, channel: str, count: int) -> str:
    """A new client subscribed to ``channel``, with messages 0..count-1 queued for it."""
    client_id = await proxy.create_client()
    await proxy.subscribe(client_id, channel)
    for n in range(count):
        await proxy.publish({"channel": channel, "data": n})
    return client_id


async def test_namespaces_never_see_each_other(redis_server: RedisServer) -> None:
    red, blue = Fleet(redis_server.url, "red"), Fleet(redis_server.url, "blue")
    try:
        a = await red.proxy()
        b = await blue.proxy()
        alice = await a.create_client()
        assert not await b.client_exists(alice)
        bob = await b.create_client()
        await a.subscribe(alice, "/news")
        await b.subscribe(bob, "/news")
        inbox_a = await attach(a, alice)
        inbox_b = await attach(b, bob)
        await a.publish({"channel": "/news", "data": "red"})
        await b.publish({"channel": "/news", "data": "blue"})
        await wait_for(lambda: inbox_a.messages and inbox_b.messages)
        await settle(0.1)
        assert data(inbox_a.messages) == ["red"]
        assert data(inbox_b.messages) == ["blue"]
        await b.destroy_client(alice)
        assert await a.client_exists(alice)
    finally:
        await red.close()
        await blue.close()


async def test_subscriptions_spread_over_partitions(fleet: Fleet) -> None:
    a = await fleet.proxy(partitions=4)
    b = await fleet.proxy(partitions=4)
    ids = [await a.create_client() for _ in range(12)]
    assert len({engine_of(a).keys.partition(c) for c in ids}) > 1
    inboxes = {}
    for n, client_id in enumerate(ids):
        await a.subscribe(client_id, "/p/*" if n % 2 else "/p/x")
        inboxes[client_id] = await attach(a if n % 3 else b, client_id)
    await b.publish({"channel": "/p/x", "data": 1})
    await wait_for(lambda: all(i.messages for i in inboxes.values()))
    await settle(0.1)
    assert all(data(i.messages) == [1] for i in inboxes.values())


async def test_queue_is_capped_at_max_queue(fleet: Fleet) -> None:
    proxy = await fleet.proxy(max_queue=3)
    alice = await with_queued(proxy, "/q", 5)
    delivered = await proxy.connect(alice, hold=1.0)
    assert data(delivered) == [2, 3, 4]


async def test_the_cap_drops_waiting_messages_not_those_in_flight(
    fleet: Fleet, raw_redis: Redis
) -> None:
    proxy = await fleet.proxy(max_queue=3)
    engine = engine_of(proxy)
    alice = await with_queued(proxy, "/q", 2)
    assert data(await proxy.connect(alice, hold=1.0)) == [0, 1]  # in flight, unwritten
    for n in range(2, 7):
        await proxy.publish({"channel": "/q", "data": n})
    assert data(await in_flight(raw_redis, engine, alice)) == [0, 1]
    assert data(await queued(raw_redis, engine, alice)) == [4, 5, 6]
    proxy.delivered(alice, 2)  # 0 and 1 written: the next drain cuts them
    assert data(await proxy.connect(alice, hold=1.0)) == [4, 5, 6]
    assert data(await in_flight(raw_redis, engine, alice)) == [4, 5, 6]


async def handed_out(fleet: Fleet, count: int) -> tuple[EngineProxy, Any, str, Any]:
    """A client on one server, just handed ``count`` messages on ``/f`` (not yet written)."""
    proxy = await fleet.proxy()
    alice = await proxy.create_client()
    await proxy.subscribe(alice, "/f")
    inbox = await attach(proxy, alice)
    for n in range(count):
        await proxy.publish({"channel": "/f", "data": n})
    await wait_for(lambda: len(inbox.messages) == count)
    return proxy, engine_of(proxy), alice, inbox


async def assert_nothing_in_flight(
    raw_redis: Redis, engine: Any, client_id: str, partition: int = 0
) -> None:
    """This server holds no message of the client in flight, has no list of them and
    is not named as holding one."""
    sid = engine.server_id
    assert await in_flight(raw_redis, engine, client_id, partition) == []
    assert await raw_redis.exists(engine.keys.in_flight(partition, client_id, sid)) == 0
    assert await raw_redis.sismember(engine.keys.flights(partition, client_id), sid) == 0


async def test_messages_are_in_flight_until_acknowledged(fleet: Fleet, raw_redis: Redis) -> None:
    proxy, engine, alice, _ = await handed_out(fleet, 3)
    assert len(await in_flight(raw_redis, engine, alice)) == 3
    proxy.delivered(alice, 2)
    await engine_of(proxy).drained()
    # Only the message not yet written stays in flight.
    (left,) = await in_flight(raw_redis, engine, alice)
    assert orjson.loads(left)["data"] == 2
    proxy.delivered(alice, 1)
    await engine_of(proxy).drained()
    await assert_nothing_in_flight(raw_redis, engine, alice)


async def test_the_next_drain_carries_a_held_back_acknowledgement(
    fleet: Fleet, raw_redis: Redis
) -> None:
    proxy, engine, alice, inbox = await handed_out(fleet, 1)
    proxy.delivered(alice, 1)  # written: its acknowledgement waits for the next drain
    assert engine.inflight.acks[(alice, 0)][0] == 1
    await proxy.publish({"channel": "/f", "data": 1})
    await wait_for(lambda: len(inbox.messages) == 2)
    assert engine.inflight.acks == {}
    (left,) = await in_flight(raw_redis, engine, alice)
    assert orjson.loads(left)["data"] == 1
    # The last one is acknowledged on its own once no drain comes to carry it.
    proxy.delivered(alice, 1)
    await asyncio.sleep(0.5)
    await assert_nothing_in_flight(raw_redis, engine, alice)


async def test_a_drain_that_finds_nothing_still_clears_the_index(
    fleet: Fleet, raw_redis: Redis
) -> None:
    proxy, engine, alice, _ = await handed_out(fleet, 1)
    proxy.delivered(alice, 1)
    await engine.connect(alice)  # drains an empty queue, carrying the acknowledgement
    await assert_nothing_in_flight(raw_redis, engine, alice)


async def test_requeue_puts_messages_back_in_order(fleet: Fleet) -> None:
    proxy = await fleet.proxy()
    alice = await with_queued(proxy, "/r", 3)
    taken = await proxy.connect(alice, hold=1.0)
    assert data(taken) == [0, 1, 2]
    await proxy.publish({"channel": "/r", "data": 3})
    proxy.backend.requeue(alice, taken)
    assert data(await proxy.connect(alice, hold=1.0)) == [0, 1, 2, 3]


async def client_of_two_homes(fleet: Fleet) -> tuple[EngineProxy, Any, str, tuple[str, str]]:
    """A client of a 4-partition engine subscribed to two channels homed in different
    partitions (returned as well)."""
    proxy = await fleet.proxy(partitions=4)
    engine = engine_of(proxy)
    first = "/home/0"
    other = next(
        f"/home/{n}"
        for n in range(1, 100)
        if engine.keys.home(f"/home/{n}") != engine.keys.home(first)
    )
    alice = await proxy.create_client()
    await proxy.subscribe(alice, first)
    await proxy.subscribe(alice, other)
    return proxy, engine, alice, (first, other)


async def test_acknowledgements_trim_the_in_flight_list_of_each_home(
    fleet: Fleet, raw_redis: Redis
) -> None:
    proxy, engine, alice, (a, b) = await client_of_two_homes(fleet)
    inbox = await attach(proxy, alice)
    for n, channel in enumerate([a, b, a, b]):
        await proxy.publish({"channel": channel, "data": n})
        await wait_for(lambda n=n: len(inbox.messages) == n + 1)
    home = {c: engine.keys.home(c) for c in (a, b)}

    async def flying(channel: str) -> list[Any]:
        return data(await in_flight(raw_redis, engine, alice, home[channel]))

    assert [await flying(c) for c in (a, b)] == [[0, 2], [1, 3]]
    proxy.delivered(alice, 3)  # 0 (a), 1 (b), 2 (a) written; 3 (b) not yet
    await engine.drained()
    assert [await flying(c) for c in (a, b)] == [[], [3]]
    proxy.delivered(alice, 1)
    await engine.drained()
    assert await flying(b) == []


async def test_a_destroyed_client_leaves_no_held_acknowledgement_in_any_home(
    fleet: Fleet,
) -> None:
    proxy, engine, alice, (a, b) = await client_of_two_homes(fleet)
    inbox = await attach(proxy, alice)
    for n, channel in enumerate([a, b]):
        await proxy.publish({"channel": channel, "data": n})
        await wait_for(lambda n=n: len(inbox.messages) == n + 1)
    proxy.delivered(alice, 2)  # held back, one acknowledgement per home
    assert {key[0] for key in engine.inflight.acks} == {alice} and len(engine.inflight.acks) == 2
    await proxy.destroy_client(alice)
    assert engine.inflight.acks == {}


async def test_a_destroy_cut_short_is_finished_by_the_gc(
    fleet: Fleet, raw_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await fleet.proxy(partitions=4)
    engine = engine_of(proxy)
    alice = await proxy.create_client()
    record = engine.keys.partition(alice)
    channel = next(c for c in (f"/cut/{n}" for n in range(100)) if engine.keys.home(c) != record)
    home = engine.keys.home(channel)
    await proxy.subscribe(alice, channel)
    # Redis failing between the two steps of a destroy cannot be timed for real: the
    # call that cleans the other homes is made to fail instead.
    real = engine.redis.run_scripts

    async def failing(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "destroy":
            raise EngineError("Redis went away")
        return await real(name, *args, **kwargs)

    monkeypatch.setattr(engine.redis, "run_scripts", failing)
    await proxy.destroy_client(alice)  # the client is gone all the same
    monkeypatch.undo()
    assert not await proxy.backend.client_exists(alice)
    assert await raw_redis.sismember(engine.keys.channel(home, channel), alice)
    assert await raw_redis.hexists(engine.keys.dying(record), alice)
    await engine.cleanup_expired()
    assert not await raw_redis.exists(engine.keys.channel(home, channel))
    assert not await raw_redis.exists(engine.keys.subscriptions(home, alice))
    assert not await raw_redis.exists(engine.keys.dying(record))
    await proxy.publish({"channel": channel, "data": "nobody"})
    assert not await raw_redis.exists(engine.keys.queue(home, alice))


async def test_requeue_puts_messages_back_in_their_homes(fleet: Fleet, raw_redis: Redis) -> None:
    proxy, engine, alice, (a, b) = await client_of_two_homes(fleet)
    for n, channel in enumerate([a, b, a, b]):
        await proxy.publish({"channel": channel, "data": n})
    taken = await proxy.connect(alice, hold=1.0)
    while len(taken) < 4:  # the first connect may answer before every home is drained
        taken += await proxy.connect(alice, hold=1.0)
    assert sorted(data(taken)) == [0, 1, 2, 3]
    proxy.backend.requeue(alice, taken)
    await engine.drained()
    for channel in (a, b):
        home = engine.keys.home(channel)
        await assert_nothing_in_flight(raw_redis, engine, alice, home)
        waiting = [orjson.loads(m) for m in await queued(raw_redis, engine, alice, home)]
        assert {m["channel"] for m in waiting} == {channel}
    again = await proxy.connect(alice, hold=1.0)
    while len(again) < 4:
        again += await proxy.connect(alice, hold=1.0)
    assert [m.message["data"] for m in again if m.message["channel"] == a] == [0, 2]
    assert [m.message["data"] for m in again if m.message["channel"] == b] == [1, 3]


async def test_connect_hook_costs_one_round_trip(fleet: Fleet) -> None:
    proxy = await fleet.proxy()
    engine = engine_of(proxy)
    alice = await proxy.create_client()
    await proxy.subscribe(alice, "/c")
    await proxy.publish({"channel": "/c", "data": "x"})
    connection = proxy._connection(alice)
    waiter = connection.wait(1.0)
    sends = count_sends(engine)
    await engine.connect(alice)
    assert sends() == 1
    assert data(await waiter) == ["x"]


# -- bad data --------------------------------------------------------------------------


async def test_corrupt_queue_entries_are_skipped(
    fleet: Fleet, raw_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="faye.redis")
    proxy = await fleet.proxy(log_level="info")
    engine = engine_of(proxy)
    alice = await proxy.create_client()
    await proxy.subscribe(alice, "/c")
    await proxy.publish({"channel": "/c", "data": 1})
    queue = engine.keys.queue(0, alice)
    await raw_redis.rpush(queue, b"{not json", b"[1,2]", b'{"no":"channel"}')
    await proxy.publish({"channel": "/c", "data": 2})
    delivered = await proxy.connect(alice, hold=1.0)
    assert data(delivered) == [1, 2]
    assert sum("corrupt queued message" in r.getMessage() for r in caplog.records) == 3
    # The lane keeps working; corrupt entries left the in-flight list, so acknowledging
    # the two written messages empties it.
    proxy.delivered(alice, 2)
    await engine_of(proxy).drained()
    await assert_nothing_in_flight(raw_redis, engine, alice)


async def test_keys_of_the_wrong_type_are_skipped(
    fleet: Fleet, raw_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="faye.redis")
    proxy = await fleet.proxy(log_level="info")
    engine = engine_of(proxy)
    alice, bob = await proxy.create_client(), await proxy.create_client()
    await proxy.subscribe(alice, "/w/**")
    await proxy.subscribe(bob, "/w/**")
    inbox = await attach(proxy, alice)
    await raw_redis.set(engine.keys.channel(0, "/w/x"), "garbage")
    await raw_redis.hset(engine.keys.queue(0, bob), "a", "b")
    await proxy.publish({"channel": "/w/x", "data": "still served"})
    await wait_for(lambda: inbox.messages)
    assert data(inbox.messages) == ["still served"]
    bad = {r.getMessage() for r in caplog.records}
    assert any("chan:/w/x" in m for m in bad) and any(f"queue:{bob}" in m for m in bad)
    # bob's connect repairs his queue; the next message reaches him.
    assert await proxy.connect(bob, hold=0.1) == []
    await proxy.publish({"channel": "/w/y", "data": "repaired"})
    assert data(await proxy.connect(bob, hold=1.0)) == ["repaired"]


async def test_foreign_notifications_are_ignored(fleet: Fleet, raw_redis: Redis) -> None:
    proxy = await fleet.proxy()
    engine = engine_of(proxy)
    alice = await proxy.create_client()
    await proxy.subscribe(alice, "/n")
    inbox = await attach(proxy, alice)
    await raw_redis.publish(engine.keys.close_channel(0), "no-space-here")
    notify = engine.keys.notify_channel(0, engine.server_id)
    await raw_redis.publish(notify, ",,unknown,")
    for bad in ("7/" + alice, "x/" + alice, "/"):  # no partition 7 (there is one), not one
        await raw_redis.publish(notify, bad)
    await proxy.publish({"channel": "/n", "data": "ok"})
    await wait_for(lambda: inbox.messages)
    assert not inbox.closed


# -- garbage collection ----------------------------------------------------------------


async def test_cleanup_expired_returns_the_count(fleet: Fleet) -> None:
    proxy = await fleet.proxy(timeout=0.1, gc_interval=None)
    engine = engine_of(proxy)
    ids = [await proxy.create_client() for _ in range(3)]
    await proxy.subscribe(ids[0], "/gc")
    disconnected: list[Any] = []
    proxy.bind("disconnect", lambda cid: disconnected.append(cid))
    keep = await proxy.create_client()
    await asyncio.sleep(0.25)
    await proxy.backend.ping(keep)
    assert await engine.cleanup_expired() == 3
    assert sorted(disconnected) == sorted(ids)
    assert await proxy.client_exists(keep)
    assert await engine.cleanup_expired() == 0


async def test_gc_lock_lets_one_server_collect(fleet: Fleet, raw_redis: Redis) -> None:
    proxy = await fleet.proxy(timeout=0.1, gc_interval=None)
    engine = engine_of(proxy)
    await proxy.create_client()
    await asyncio.sleep(0.25)
    await raw_redis.set(engine.keys.gc_lock, "someone-else")
    assert await engine.cleanup_expired() == 0
    await raw_redis.delete(engine.keys.gc_lock)
    assert await engine.cleanup_expired() == 1
    assert await raw_redis.exists(engine.keys.gc_lock) == 0


async def test_gc_never_collects_a_client_that_just_pinged(fleet: Fleet) -> None:
    proxy = await fleet.proxy(timeout=0.1, gc_interval=None)
    engine = engine_of(proxy)
    alice = await proxy.create_client()
    await asyncio.sleep(0.25)
    from faye.redis.gc import GcRun, running

    with running(GcRun(cutoff_ms=0)):  # a GC that decided before the ping
        assert await engine.destroy_client(alice) is None
    assert await engine.destroy_client(alice) == []


async def test_gc_collects_a_client_whose_server_vanished(fleet: Fleet) -> None:
    a = await fleet.proxy(timeout=0.2, gc_interval=None, heartbeat_interval=0.05)
    b = await fleet.proxy(timeout=0.2, gc_interval=0.1)
    alice = await a.create_client()
    await a.subscribe(alice, "/vanish")
    await attach(a, alice)
    await engine_of(a).kill()
    disconnected: list[Any] = []
    unsubscribed: list[Any] = []
    b.bind("disconnect", lambda cid: disconnected.append(cid))
    b.bind("unsubscribe", lambda cid, ch: unsubscribed.append((cid, ch)))
    await wait_for(lambda: disconnected == [alice])
    assert unsubscribed == [(alice, "/vanish")]
    assert not await b.client_exists(alice)


async def test_collect_garbage_from_the_command_line(fleet: Fleet) -> None:
    proxy = await fleet.proxy(timeout=0.1, gc_interval=None)
    for _ in range(2):
        await proxy.create_client()
    await asyncio.sleep(0.25)
    assert await collect_garbage(fleet.url, fleet.namespace, server_timeout=0.1) == 2
    assert await collect_garbage({"url": fleet.url}, fleet.namespace, server_timeout=0.1) == 0


# -- delivery guarantee across server death --------------------------------------------


async def setup_victim(fleet: Fleet) -> tuple[EngineProxy, EngineProxy, str, Any]:
    a = await fleet.proxy(heartbeat_interval=0.1)
    b = await fleet.proxy(heartbeat_interval=0.1)
    alice = await a.create_client()
    await a.subscribe(alice, "/d")
    inbox = await attach(a, alice)
    for n in range(3):
        await b.publish({"channel": "/d", "data": n})
    await wait_for(lambda: len(inbox.messages) == 3)
    return a, b, alice, inbox


async def test_in_flight_messages_survive_their_servers_death(fleet: Fleet) -> None:
    a, b, alice, _ = await setup_victim(fleet)
    await engine_of(a).kill()  # took 0..2, never acknowledged them
    await b.publish({"channel": "/d", "data": 3})
    await asyncio.sleep(0.4)  # a's heartbeat is now older than 3 intervals
    assert data(await b.connect(alice, hold=1.0)) == [0, 1, 2, 3]


async def test_acknowledged_messages_are_not_sent_again(fleet: Fleet) -> None:
    a, b, alice, _ = await setup_victim(fleet)
    a.delivered(alice, 3)
    await engine_of(a).drained()
    await engine_of(a).kill()
    await b.publish({"channel": "/d", "data": 3})
    await asyncio.sleep(0.4)
    assert data(await b.connect(alice, hold=1.0)) == [3]


async def test_connect_during_the_grace_period_picks_them_up_later(fleet: Fleet) -> None:
    a, b, alice, _ = await setup_victim(fleet)
    await engine_of(a).kill()
    inbox = await attach(b, alice)  # a still looks alive: nothing to recover yet
    assert inbox.messages == []
    await wait_for(lambda: len(inbox.messages) == 3, timeout=3)
    assert data(inbox.messages) == [0, 1, 2]


async def test_gc_moves_a_dead_servers_in_flight_back_to_the_queue(fleet: Fleet) -> None:
    a, b, alice, _ = await setup_victim(fleet)
    await engine_of(a).kill()
    await asyncio.sleep(0.4)
    await engine_of(b).cleanup_expired()
    engine = engine_of(b)
    client = Redis.from_url(fleet.url)
    try:
        assert len(await queued(client, engine, alice)) == 3
        assert await client.zscore(engine.keys.servers(0), engine_of(a).server_id) is None
    finally:
        await client.aclose()
    assert data(await b.connect(alice, hold=1.0)) == [0, 1, 2]


async def test_graceful_close_hands_in_flight_over_at_once(fleet: Fleet) -> None:
    a, b, alice, _ = await setup_victim(fleet)
    await a.close()
    assert data(await b.connect(alice, hold=1.0)) == [0, 1, 2]


# -- a client moving between live servers ---------------------------------------------


async def moved_with_messages_in_flight(
    fleet: Fleet,
) -> tuple[EngineProxy, EngineProxy, str, list[Envelope], Any]:
    """Alice took 0..2 through server a (in flight there), then connected to server b,
    which handed her 3: each server holds its own messages in flight."""
    a, b = await fleet.proxy(), await fleet.proxy()
    alice = await with_queued(a, "/m", 3)
    taken = await a.connect(alice, hold=1.0)
    assert data(taken) == [0, 1, 2]
    inbox = await attach(b, alice)  # a is alive: its messages wait for its write there
    await b.publish({"channel": "/m", "data": 3})
    await wait_for(lambda: len(inbox.messages) == 1)
    return a, b, alice, taken, inbox


async def flown(raw_redis: Redis, proxy: EngineProxy, client_id: str) -> list[Any]:
    return data(await in_flight(raw_redis, engine_of(proxy), client_id))


async def test_a_moving_client_leaves_its_in_flight_messages_with_the_old_server(
    fleet: Fleet, raw_redis: Redis
) -> None:
    a, b, alice, _, inbox = await moved_with_messages_in_flight(fleet)
    assert (await flown(raw_redis, a, alice), await flown(raw_redis, b, alice)) == ([0, 1, 2], [3])
    a.delivered(alice, 3)  # the old server wrote them after all
    await engine_of(a).drained()
    await assert_nothing_in_flight(raw_redis, engine_of(a), alice)
    b.delivered(alice, 1)
    await engine_of(b).drained()
    await assert_nothing_in_flight(raw_redis, engine_of(b), alice)
    await settle(0.3)
    assert data(inbox.messages) == [3]  # nothing sent twice


async def test_messages_the_old_server_could_not_write_go_to_the_new_one(
    fleet: Fleet, raw_redis: Redis
) -> None:
    a, b, alice, taken, inbox = await moved_with_messages_in_flight(fleet)
    a.backend.requeue(alice, taken)  # queued behind b's message in flight, and b woken
    await wait_for(lambda: len(inbox.messages) == 4)
    assert data(inbox.messages) == [3, 0, 1, 2]
    await assert_nothing_in_flight(raw_redis, engine_of(a), alice)
    assert await flown(raw_redis, b, alice) == [3, 0, 1, 2]


async def test_a_client_back_on_its_old_server_finds_its_messages_in_flight_there(
    fleet: Fleet, raw_redis: Redis
) -> None:
    a, b, alice, _, inbox = await moved_with_messages_in_flight(fleet)
    await a.publish({"channel": "/m", "data": 4})
    await wait_for(lambda: len(inbox.messages) == 2)
    # Back on a: 0..2 are in flight there again (not sent twice), 3 and 4 stay with b.
    assert await a.connect(alice, hold=0.2) == []
    assert await flown(raw_redis, a, alice) == [0, 1, 2]
    assert await flown(raw_redis, b, alice) == [3, 4]
    await a.publish({"channel": "/m", "data": 5})
    assert data(await a.connect(alice, hold=1.0)) == [5]
    a.delivered(alice, 4)  # 0..2 and 5: the in-flight part of the queue ends
    await engine_of(a).drained()
    await assert_nothing_in_flight(raw_redis, engine_of(a), alice)

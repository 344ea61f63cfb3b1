"""Layout 2 (channel logs): what is its own, beyond the contract suite it also passes.

Real redis-server processes; servers are engine proxies in this process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from faye.engine import EngineError
from faye.envelope import Envelope
from faye.redis import Publisher, collect_garbage
from faye.redis.layout2.engine import LogEngine
from tests.redis.conftest import Fleet, engine_of
from tests.support.engines import attach, data
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for

L2: dict[str, Any] = {"layout": 2, "heartbeat_interval": 0.2}


async def test_the_layout_option_selects_the_engine(fleet: Fleet) -> None:
    one = await fleet.proxy()
    assert not isinstance(engine_of(one), LogEngine)
    other = Fleet(fleet.url)
    try:
        two = await other.proxy(layout=2)
        assert isinstance(engine_of(two), LogEngine)
    finally:
        await other.close()


@pytest.mark.parametrize(("first", "second"), [(1, 2), (2, 1)])
async def test_a_server_refuses_a_namespace_of_the_other_layout(
    redis_server: RedisServer, first: int, second: int
) -> None:
    fleet = Fleet(redis_server.url)
    try:
        await fleet.proxy(layout=first)
        with pytest.raises(EngineError, match=f"layout {first}, this server runs layout {second}"):
            await fleet.proxy(layout=second)
        await fleet.proxy(layout=first)  # the same layout joins
    finally:
        await fleet.close()


async def test_layout_2_keeps_one_partition(fleet: Fleet) -> None:
    with pytest.raises(ValueError, match="partitions"):
        await fleet.proxy(layout=2, partitions=4)


async def test_a_long_polling_client_moving_between_live_servers_gets_each_message_once(
    fleet: Fleet,
) -> None:
    """Each connect lands on the other server (a round-robin balancer): the server
    taking the client over reads the logs from what the other one handed out."""
    a = await fleet.proxy(**L2)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/move/*")
    await b.subscribe(alice, "/move/x")  # overlapping: still one copy each
    got: list[Any] = []
    servers = [a, b]
    for step in range(6):
        await servers[step % 2].publish({"channel": "/move/x", "data": step})
        server = servers[(step + 1) % 2]
        delivered = await server.connect(alice, hold=0)
        server.delivered(alice, len(delivered))
        got += data(delivered)
        await asyncio.sleep(0.05)
    assert got == list(range(6))


async def test_killed_holder_loses_nothing_and_repeats_at_most_a_cursor_interval(
    fleet: Fleet,
) -> None:
    """kill -9 of the server holding a subscriber (engine.kill: no clean-up in Redis):
    the client connects elsewhere and gets everything after the last cursor the dead
    server wrote: what it had written since comes twice, nothing is lost."""
    a = await fleet.proxy(**L2, cursor_interval=0.5)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/kill")
    socket = await attach(a, alice)
    for n in range(10):
        await b.publish({"channel": "/kill", "data": n})
        await wait_for(lambda n=n: len(socket.messages) == n + 1)
        a.delivered(alice, 1)
        await asyncio.sleep(0.1)
    await engine_of(a).kill()
    for n in range(10, 13):
        await b.publish({"channel": "/kill", "data": n})
    delivered = data(await b.connect(alice, hold=0))
    written = data(socket.messages)
    assert written == list(range(10))
    # Everything after the dead server's last cursor, once and in order.
    assert delivered == list(range(delivered[0], 13))
    assert 13 - delivered[0] <= 3 + 0.5 / 0.1 + 1  # at most cursor_interval repeated


async def test_a_listener_outage_is_caught_up_from_the_logs(fleet: Fleet, raw_redis: Redis) -> None:
    a = await fleet.proxy(**L2, retry_delay=0.05)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/outage")
    socket = await attach(a, alice)
    await b.publish({"channel": "/outage", "data": "before"})
    await wait_for(lambda: len(socket.messages) == 1)
    # Cut every pub/sub connection (the listeners'); publish while they reconnect.
    await raw_redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    for n in range(5):
        await b.publish({"channel": "/outage", "data": n})
    await wait_for(lambda: len(socket.messages) == 6, timeout=5)
    await asyncio.sleep(0.3)  # nothing comes twice
    assert data(socket.messages) == ["before", 0, 1, 2, 3, 4]


async def test_messages_waiting_in_memory_are_bounded_by_max_queue(fleet: Fleet) -> None:
    a = await fleet.proxy(**L2, max_queue=5)
    alice = await a.create_client()
    await a.subscribe(alice, "/bounded")
    assert data(await a.connect(alice, hold=0)) == []  # held here from now on
    for n in range(12):
        await a.publish({"channel": "/bounded", "data": n})
    await asyncio.sleep(0.1)
    held = engine_of(a).ledger.get(alice)  # type: ignore[attr-defined]
    assert held is not None and len(held.pending or ()) == 5
    assert data(await a.connect(alice, hold=0)) == [7, 8, 9, 10, 11]


async def test_a_client_gets_nothing_published_before_it_subscribed(fleet: Fleet) -> None:
    a = await fleet.proxy(**L2)
    alice = await a.create_client()
    bob = await a.create_client()
    await a.subscribe(alice, "/early")
    await a.publish({"channel": "/early", "data": "before bob"})
    await a.subscribe(bob, "/early")
    await a.publish({"channel": "/early", "data": "after"})
    assert data(await a.connect(bob, hold=0)) == ["after"]
    assert data(await a.connect(alice, hold=0)) == ["before bob", "after"]


async def test_messages_put_back_on_a_socket_go_out_before_the_next_one(fleet: Fleet) -> None:
    """A write that failed puts its messages back; the socket's next message follows them
    at once, not at the client's next /meta/connect."""
    a = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/again")
    socket = await attach(a, alice)
    await a.publish({"channel": "/again", "data": 1})
    await wait_for(lambda: len(socket.messages) == 1)
    # The transport could not write it.
    a.requeue(alice, [Envelope.from_message(socket.messages[-1])])
    await a.publish({"channel": "/again", "data": 2})
    await wait_for(lambda: len(socket.messages) == 3)
    assert data(socket.messages) == [1, 1, 2]


async def test_a_publisher_outside_the_fleet_publishes_into_layout_2(fleet: Fleet) -> None:
    a = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/outside/*")
    socket = await attach(a, alice)
    publisher = Publisher({"url": fleet.url, "layout": 2}, namespace=fleet.namespace)
    try:
        await publisher.publish("/outside/x", "hello")
    finally:
        await publisher.close()
    await wait_for(lambda: len(socket.messages) == 1)
    assert data(socket.messages) == ["hello"]


async def test_a_log_read_by_one_client_is_cut_to_what_it_has_not_written(
    fleet: Fleet, raw_redis: Redis
) -> None:
    """Point-to-point channels keep about what their subscriber has not written, as a
    queue would; a log another client also reads keeps max_queue."""
    a = await fleet.proxy(**L2, cursor_interval=0.1)
    alice = await a.create_client()
    bob = await a.create_client()
    await a.subscribe(alice, "/own")
    await a.subscribe(alice, "/shared")
    await a.subscribe(bob, "/shared")
    alice_socket = await attach(a, alice)
    await attach(a, bob)
    for n in range(100):
        await a.publish({"channel": "/own", "data": n})
        await a.publish({"channel": "/shared", "data": n})
    await wait_for(lambda: len(alice_socket.messages) == 200)
    # Cursors recorded while everything is handed out and nothing written yet: the
    # offer to cut waits for writes.
    await asyncio.sleep(0.3)
    a.delivered(alice, 150)  # written up to own 74 / shared 74
    keys = engine_of(a).log_keys  # type: ignore[attr-defined]
    await asyncio.sleep(0.3)
    own = await raw_redis.lrange(keys.log("/own"), 0, -1)
    assert [orjson.loads(e.split(b" ", 1)[1])["data"] for e in own] == list(range(75, 100))
    assert await raw_redis.llen(keys.log("/shared")) == 100


async def test_a_client_held_in_memory_here_and_taken_elsewhere_is_taken_back(
    fleet: Fleet,
) -> None:
    """A server still holding a client in memory that another server took over (its
    'moved' line lost: dropped here by replacing the handler, since a lost pub/sub
    message cannot be caused on demand) asks as the holder; Redis answers with a
    take-over from the other server's cursor."""
    a = await fleet.proxy(**L2)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/back")
    await a.publish({"channel": "/back", "data": 1})
    assert data(await a.connect(alice, hold=0)) == [1]
    a.delivered(alice, 1)
    await a.publish({"channel": "/back", "data": 2})
    assert data(await b.connect(alice, hold=0)) == [2]
    b.delivered(alice, 1)
    engine_of(a)._on_control = lambda line: None  # type: ignore[attr-defined, method-assign]
    await a.publish({"channel": "/back", "data": 3})
    await asyncio.sleep(0.1)
    assert data(await a.connect(alice, hold=0)) == [3]


async def test_collect_garbage_from_the_command_line_on_layout_2(
    fleet: Fleet, raw_redis: Redis
) -> None:
    """``faye gc`` with ``layout: 2`` destroys expired clients and their routes."""
    proxy = await fleet.proxy(timeout=0.1, gc_interval=None, **L2)
    for _ in range(2):
        cid = await proxy.create_client()
        await proxy.subscribe(cid, "/gc")
    keys = engine_of(proxy).log_keys  # type: ignore[attr-defined]
    assert await raw_redis.hget(keys.servers_of, "/gc") is not None
    await asyncio.sleep(0.25)
    options = {"url": fleet.url, "layout": 2}
    assert await collect_garbage(options, fleet.namespace, server_timeout=0.1) == 2
    assert await raw_redis.hget(keys.servers_of, "/gc") is None
    assert not await raw_redis.exists(keys.route("/gc"))


async def test_a_bad_line_on_a_servers_channel_is_logged_and_skipped(
    fleet: Fleet, raw_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="faye.redis")
    a = await fleet.proxy(**{**L2, "log_level": "warning"})
    alice = await a.create_client()
    await a.subscribe(alice, "/bad")
    socket = await attach(a, alice)
    engine = engine_of(a)
    channel = engine.log_keys.wake(engine.server_id)  # type: ignore[attr-defined]
    for junk in (b"x what", b"12 /bad", b"s only", b"99 /bad not-json", b"m cid notanumber"):
        await raw_redis.publish(channel, junk)
    await a.publish({"channel": "/bad", "data": "still flows"})
    await wait_for(lambda: len(socket.messages) == 1)
    assert data(socket.messages) == ["still flows"]
    warned = [r.getMessage() for r in caplog.records if r.name == "faye.redis"]
    assert sum("ignoring a bad line" in m or "corrupt" in m for m in warned) >= 4, warned


async def test_messages_a_killed_server_handed_out_unwritten_come_again_once_it_counts_dead(
    fleet: Fleet,
) -> None:
    """The client reached another server before the killed one counted as dead, so its
    'handed' cursor was used; once its heartbeat is dead_server_after old, what it had
    handed out and not known written is sent again (late, at least once)."""
    a = await fleet.proxy(**L2, cursor_interval=0.1)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/late")
    socket = await attach(a, alice)
    for n in (1, 2, 3):
        await a.publish({"channel": "/late", "data": n})
    await wait_for(lambda: len(socket.messages) == 3)
    a.delivered(alice, 1)  # 2 and 3 handed to the socket, never reported written
    await asyncio.sleep(0.3)  # the cursor is recorded: acked 1, handed 3
    await engine_of(a).kill()
    assert data(await b.connect(alice, hold=0)) == []  # a counts as alive still
    dead_after = engine_of(b).config.dead_server_after + 0.2
    await asyncio.sleep(dead_after + 0.5)
    assert data(await b.connect(alice, hold=0)) == [2, 3]


async def _held_long_poll(
    fleet: Fleet, channel: str
) -> tuple[Any, Any, str, asyncio.Future[Any], LogEngine]:
    """Two servers; alice long-polls on ``a`` (its listener back only 0.5 s after it
    is cut), has received 0 and holds a connect there."""
    a = await fleet.proxy(**L2, retry_delay=0.5)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, channel)
    await b.publish({"channel": channel, "data": 0})
    assert data(await a.connect(alice, hold=1)) == [0]
    a.delivered(alice, 1)
    held = asyncio.ensure_future(a.connect(alice, hold=10))
    await wait_for(lambda: a.has_connection(alice))
    engine = engine_of(a)
    assert isinstance(engine, LogEngine)
    return a, b, alice, held, engine


async def test_a_listener_catch_up_answered_after_the_long_poll_left_loses_nothing(
    fleet: Fleet, raw_redis: Redis
) -> None:
    """The catch-up after a listener outage reads back what the listener missed for a
    long-polling client; when its answer arrives the client's held connect was answered
    already and its next connect went to the other server (under load, a race). That
    server takes the client over from the cursor the catch-up recorded, which must not
    count the read-back messages as handed out. The timing is set by running the other
    server's connect inside the catch-up's call, after Redis answered it (the race
    cannot be caused on demand); everything else is real."""
    a, b, alice, held, engine = await _held_long_poll(fleet, "/race")
    claim = engine.functions.claim
    moved: list[Any] = []

    async def claim_then_move(requests: Any, **kwargs: Any) -> Any:
        claims = await claim(requests, **kwargs)
        if any(r.after is not None for r in requests) and not moved:
            a.flush_connection(alice)  # the held connect answered meanwhile
            moved.append(await b.connect(alice, hold=0))  # the next one went to b
        return claims

    engine.functions.claim = claim_then_move  # type: ignore[method-assign]
    # Cut the listeners; a's is back only after retry_delay, so these are missed live.
    await raw_redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    for n in range(1, 4):
        await b.publish({"channel": "/race", "data": n})
    await wait_for(lambda: bool(moved), timeout=5)
    assert data(await held) == []
    got = data(moved[0])
    b.delivered(alice, len(moved[0]))
    got += data(await b.connect(alice, hold=0.3))
    assert got == [1, 2, 3]


async def test_a_catch_up_refused_after_the_long_poll_left_is_read_back_at_its_next_connect(
    fleet: Fleet, raw_redis: Redis
) -> None:
    """Redis restarted with its data takes SUBSCRIBE while it loads that data and refuses
    other calls (LOADING): the listener is back, and the catch-up's claims fail. A
    long-polling client whose held connect ended meanwhile is not retried (nothing can
    be handed to it); its next connect, on the same server, must still get what the
    listener missed. The refusal is injected (a loading Redis cannot be held on demand);
    everything else is real."""
    a, b, alice, held, engine = await _held_long_poll(fleet, "/gap")
    claim = engine.functions.claim
    refused: list[bool] = []

    async def refuse_catch_up(requests: Any, **kwargs: Any) -> Any:
        if any(r.after is not None for r in requests) and not refused:
            a.flush_connection(alice)  # the held connect answered meanwhile
            refused.append(True)
            raise EngineError("LOADING Redis is loading the dataset in memory")
        return await claim(requests, **kwargs)

    engine.functions.claim = refuse_catch_up  # type: ignore[method-assign]
    # Cut the listeners; a's is back only after retry_delay, so these are missed live.
    await raw_redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    for n in range(1, 4):
        await b.publish({"channel": "/gap", "data": n})
    await wait_for(lambda: bool(refused), timeout=5)
    assert data(await held) == []
    got = data(await a.connect(alice, hold=0.5))
    a.delivered(alice, len(got))
    got += data(await a.connect(alice, hold=0.3))
    assert got == [1, 2, 3]


async def _moved_while_written(fleet: Fleet) -> tuple[Any, Any, str]:
    """Two servers; alice held on ``a`` with 1 and 2 waiting in its memory there."""
    a = await fleet.proxy(**L2)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/back")
    assert data(await a.connect(alice, hold=0)) == []
    engine = engine_of(a)
    assert isinstance(engine, LogEngine)
    for n in (1, 2):
        await b.publish({"channel": "/back", "data": n})
    await wait_for(lambda: len(engine.ledger.clients[alice].pending or ()) == 2)
    return a, b, alice


async def test_a_long_poll_reply_never_written_after_the_client_moved_reaches_it_there(
    fleet: Fleet,
) -> None:
    """The reply to a long poll fails to be written (its request went away) after the
    client's next connect reached the other server. That server took the client over
    from the cursor recorded before the reply, which counted the reply's messages as
    handed out; the server that failed to write them gives them back."""
    a, b, alice = await _moved_while_written(fleet)
    reply = await a.connect(alice, hold=1)
    assert data(reply) == [1, 2]  # recorded as handed out; not yet written
    assert data(await b.connect(alice, hold=0)) == []  # b trusts that record
    await wait_for(lambda: engine_of(a).ledger.get(alice) is None)  # a heard of the move
    a.requeue(alice, reply)  # the transport: the write failed
    assert data(await b.connect(alice, hold=2)) == [1, 2]
    assert data(await b.connect(alice, hold=0.3)) == []  # once


async def test_a_connect_gone_before_its_claim_answered_gives_its_messages_back(
    fleet: Fleet,
) -> None:
    """The claim of a held client's connect records what it is about to hand out; the
    request goes away before the answer, and the client's next connect reaches the
    other server first. The timing is set by running both inside the claim's call,
    after Redis answered it (the race cannot be caused on demand); the rest is real."""
    a, b, alice = await _moved_while_written(fleet)
    engine = engine_of(a)
    assert isinstance(engine, LogEngine)
    claim = engine.functions.claim
    moved: list[Any] = []
    asking = asyncio.ensure_future(a.connect(alice, hold=1))

    async def claim_then_move(requests: Any, **kwargs: Any) -> Any:
        claims = await claim(requests, **kwargs)
        if not moved:
            asking.cancel()  # the request went away
            await asyncio.sleep(0.01)
            moved.append(await b.connect(alice, hold=0))
        return claims

    engine.functions.claim = claim_then_move  # type: ignore[method-assign]
    await wait_for(lambda: bool(moved), timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await asking
    assert data(moved[0]) == []  # b trusted the record
    assert data(await b.connect(alice, hold=2)) == [1, 2]
    assert data(await b.connect(alice, hold=0.3)) == []


async def test_a_failed_write_after_a_clean_move_gives_nothing_twice(fleet: Fleet) -> None:
    """A client that moved after its reply was written and acknowledged: nothing is
    given back, and the new server hands out only what came after."""
    a, b, alice = await _moved_while_written(fleet)
    reply = await a.connect(alice, hold=1)
    a.delivered(alice, len(reply))
    await b.publish({"channel": "/back", "data": 3})
    assert data(await b.connect(alice, hold=1)) == [3]
    a.requeue(alice, reply)  # a late, wrong report changes nothing
    assert data(await b.connect(alice, hold=0.5)) == []


async def _written_on_a_socket(fleet: Fleet, channel: str) -> tuple[Any, Any, str, Any]:
    """Servers a (cursors written every 5 s) and b; alice on a socket at a, written 0 to
    2 there, her cursor recorded only after the first."""
    a = await fleet.proxy(**L2, cursor_interval=5)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, channel)
    socket = await attach(a, alice)
    for n in range(3):
        await b.publish({"channel": channel, "data": n})
    await wait_for(lambda: len(socket.messages) == 3)
    a.delivered(alice, 3)
    return a, b, alice, socket


async def test_a_socket_client_moving_to_a_live_server_gets_nothing_twice(fleet: Fleet) -> None:
    """A socket's deliveries are recorded at most every cursor_interval; when the
    socket closes, what it was handed since is recorded at once, so the server the
    client reconnects to starts after it."""
    a, b, alice, socket = await _written_on_a_socket(fleet, "/ws")
    a.detach_socket(alice, socket)  # the socket closed; the client reconnects elsewhere
    await asyncio.sleep(0.05)  # a reconnect takes longer than this
    await b.publish({"channel": "/ws", "data": 3})
    assert data(await b.connect(alice, hold=0.5)) == [3]


async def test_a_draining_server_hands_its_clients_over_exactly(fleet: Fleet) -> None:
    """hand_over (the drain's first step): nothing more is handed out, and how far
    each client got is recorded before its socket closes."""
    a, b, alice, socket = await _written_on_a_socket(fleet, "/drain")
    await a.hand_over()
    await b.publish({"channel": "/drain", "data": 3})
    await asyncio.sleep(0.1)
    assert len(socket.messages) == 3  # not handed out any more
    assert data(await b.connect(alice, hold=0.5)) == [3]


async def _live_line_during_catch_up(
    fleet: Fleet, raw_redis: Redis, a: Any, b: Any, channel: str
) -> list[Any]:
    """Cut the listeners, publish 1-3 while ``a``'s is away, and have 4 reach ``a``
    live after its listener is back but before its catch-up claim is sent. The order is
    forced by publishing 4 as the catch-up starts and waiting there until ``a`` has
    taken the line in: under load this is where a live line lands (the window cannot be
    held open on demand); everything else is real."""
    engine = engine_of(a)
    assert isinstance(engine, LogEngine)
    catch_up, on_published = engine._catch_up, engine._on_published
    seen: list[int] = []

    def record(line: Any, only: str | None = None) -> None:
        seen.append(line.seq)
        on_published(line, only)

    async def catch_up_after_a_live_line(since: dict[str, int]) -> None:
        await b.publish({"channel": channel, "data": 4})
        await wait_for(lambda: bool(seen), timeout=5)
        await asyncio.sleep(0.2)  # whatever the line set off (a reply) has run
        await catch_up(since)

    engine._catch_up = catch_up_after_a_live_line  # type: ignore[method-assign]
    engine._on_published = record  # type: ignore[method-assign]
    await raw_redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    for n in range(1, 4):
        await b.publish({"channel": channel, "data": n})
    await wait_for(lambda: bool(seen), timeout=5)
    return seen


async def test_a_live_line_before_the_catch_up_waits_for_it_on_a_long_poll(
    fleet: Fleet, raw_redis: Redis
) -> None:
    """Answered with the live line, the long-poller would be between polls when the
    catch-up looked, be let go with a cursor past 1-3, and never get them."""
    a, b, alice, held, _ = await _held_long_poll(fleet, "/window")
    await _live_line_during_catch_up(fleet, raw_redis, a, b, "/window")
    got = data(await held)
    a.delivered(alice, len(got))
    await asyncio.sleep(0.5)  # between polls while the catch-up looks
    while len(got) < 4:
        more = data(await a.connect(alice, hold=1))
        if not more:
            break
        a.delivered(alice, len(more))
        got += more
    assert got == [1, 2, 3, 4]


async def test_a_live_line_before_the_catch_up_goes_out_after_what_it_reads_back(
    fleet: Fleet, raw_redis: Redis
) -> None:
    a = await fleet.proxy(**L2, retry_delay=0.5)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/order")
    socket = await attach(a, alice)
    await _live_line_during_catch_up(fleet, raw_redis, a, b, "/order")
    await wait_for(lambda: len(socket.messages) >= 4, timeout=5)
    await asyncio.sleep(0.3)  # nothing comes twice
    assert data(socket.messages) == [1, 2, 3, 4]


async def test_a_client_redis_forgot_gets_no_live_line_before_it_is_told(
    fleet: Fleet, raw_redis: Redis
) -> None:
    """Redis restarted without its data: the catch-up finds the client unknown and
    closes it. A live line handed out before that would look to the client like a
    working subscription on a dead id."""
    a = await fleet.proxy(**L2, retry_delay=0.5)
    b = await fleet.proxy(**L2)
    alice = await a.create_client()
    await a.subscribe(alice, "/forgotten")
    socket = await attach(a, alice)
    engine = engine_of(a)
    assert isinstance(engine, LogEngine)
    claim = engine.functions.claim

    async def claim_as_if_forgotten(requests: Any, **kwargs: Any) -> Any:
        if any(r.after is not None for r in requests):
            await b.destroy_client(alice)  # Redis no longer has it
        return await claim(requests, **kwargs)

    engine.functions.claim = claim_as_if_forgotten  # type: ignore[method-assign]
    await _live_line_during_catch_up(fleet, raw_redis, a, b, "/forgotten")
    await wait_for(lambda: socket.closed, timeout=5)
    assert socket.messages == []

"""The client calls' connection and the listener (``faye/redis/pipe.py``,
``PushListener``) against real redis-server processes: answers in order, errors in
their place, and every way the connection can fail ends in an error for what waits,
never a hang, and a fresh connection after."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator, Sequence

import pytest
import redis.exceptions as rx
from redis.asyncio import Redis

from faye.redis.listeners import PushListener
from faye.redis.pipe import Arg, CallPipe, Endpoint
from tests.support.redis_server import RedisServer, running_redis


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def pipe_to(
    server: RedisServer, timeout: float = 2.0, setup: Sequence[tuple[Arg, ...]] = ()
) -> tuple[CallPipe, list[int]]:
    """A pipe to ``server``, and the list of times it asked for the address."""
    asked: list[int] = []

    async def address() -> tuple[str, int]:
        asked.append(server.port)
        return "127.0.0.1", server.port

    endpoint = Endpoint(address, connect_timeout=2.0, setup=setup)
    return CallPipe(endpoint, name="faye-test", timeout=timeout), asked


async def test_groups_sent_together_each_get_their_own_replies_in_order(
    redis_server: RedisServer,
) -> None:
    pipe, asked = pipe_to(redis_server)
    sizes = [1, 3, 7, 1, 16, 2] * 20
    groups = [[("INCR", "n")] * size for size in sizes]
    answers = await asyncio.gather(*(pipe.send(group) for group in groups))
    values = [value for answer in answers for value in answer]
    # One counter: written back to back, the increments are answered 1..N in the order
    # the groups were sent, each group getting exactly its own.
    assert values == list(range(1, sum(sizes) + 1))
    assert [len(answer) for answer in answers] == sizes
    assert asked == [redis_server.port]  # one connection for all
    pipe.close()


async def test_an_error_answer_takes_the_place_of_its_command_only(
    redis_server: RedisServer,
) -> None:
    pipe, _ = pipe_to(redis_server)
    replies = await pipe.send(
        [
            ("SET", "s", "v"),
            ("INCR", "s"),
            ("EVALSHA", "0" * 40, 0),
            ("GET", "s"),
        ]
    )
    assert replies[0] == b"OK"
    assert isinstance(replies[1], rx.ResponseError) and "not an integer" in str(replies[1])
    assert isinstance(replies[2], rx.NoScriptError)
    assert replies[3] == b"v"
    pipe.close()


async def test_redis_loading_its_data_fails_the_group_and_keeps_the_connection(
    redis_server: RedisServer,
) -> None:
    # Redis answers LOADING only while it reads its data back after a restart, a window
    # a test cannot hit on purpose: a script gives the same error reply.
    pipe, asked = pipe_to(redis_server)
    loading = "return redis.error_reply('LOADING Redis is loading the dataset in memory')"
    with pytest.raises(rx.BusyLoadingError):
        await pipe.send([("INCR", "n"), ("EVAL", loading, 0)])
    assert await pipe.send([("GET", "n")]) == [b"1"]
    assert asked == [redis_server.port]
    pipe.close()


async def test_a_replica_answering_readonly_fails_the_group_and_a_new_address_is_asked(
    redis_server: RedisServer,
) -> None:
    """After a Sentinel failover the old master is a replica: the pipe must not stay on
    it, or every write would fail until the engine restarts."""
    with running_redis("--replicaof", "127.0.0.1", str(redis_server.port)) as replica:
        target = [replica.port]

        async def address() -> tuple[str, int]:
            return "127.0.0.1", target[0]

        pipe = CallPipe(Endpoint(address, connect_timeout=2.0), name="faye-test", timeout=2.0)
        with pytest.raises(rx.ConnectionError, match=r"(?i)read.?only"):
            await pipe.send([("SET", "k", "v")])
        target[0] = redis_server.port  # what Sentinel names now
        assert await pipe.send([("SET", "k", "v")]) == [b"OK"]
        pipe.close()


async def test_redis_not_answering_fails_what_waits_after_the_timeout_then_recovers(
    redis_server: RedisServer,
) -> None:
    pipe, asked = pipe_to(redis_server, timeout=0.5)
    assert await pipe.send([("PING",)]) == [b"PONG"]
    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            pipe.send([("PING",)]), pipe.send([("PING",), ("PING",)]), return_exceptions=True
        )
        waited = asyncio.get_running_loop().time() - started
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    assert all(isinstance(result, rx.TimeoutError) for result in results), results
    assert 0.4 <= waited < 2.0
    assert await pipe.send([("PING",)]) == [b"PONG"]
    assert len(asked) == 2  # a fresh connection: the old one may still owe answers
    pipe.close()


async def test_redis_restarted_fails_what_waits_and_the_next_group_reconnects(
    redis_server: RedisServer,
) -> None:
    pipe, asked = pipe_to(redis_server)
    await pipe.send([("SET", "k", "v")])
    blocked = asyncio.ensure_future(pipe.send([("BLPOP", "never", 0)]))
    await asyncio.sleep(0.1)
    redis_server.stop(kill=True)
    with pytest.raises(rx.ConnectionError):
        await asyncio.wait_for(blocked, 5)
    with pytest.raises(rx.ConnectionError, match="Error connecting"):
        await pipe.send([("PING",)])
    redis_server.start()
    assert await pipe.send([("PING",)]) == [b"PONG"]
    assert len(asked) == 3  # the first connection, the refused one, the new one
    pipe.close()


async def test_credentials_and_database_are_set_on_every_connection() -> None:
    with running_redis("--requirepass", "s3cret") as server:
        setup: list[tuple[Arg, ...]] = [("AUTH", "s3cret"), ("SELECT", 3)]
        pipe, _ = pipe_to(server, setup=setup)
        assert await pipe.send([("SET", "in-three", "1"), ("CLIENT", "GETNAME")]) == [
            b"OK",
            b"faye-test",
        ]
        plain = Redis(port=server.port, password="s3cret", db=3)
        assert await plain.get("in-three") == b"1"
        await plain.aclose()
        pipe.close()

        wrong, _ = pipe_to(server, setup=[("AUTH", "wrong")])
        with pytest.raises(rx.AuthenticationError):
            await wrong.send([("PING",)])
        wrong.close()


async def test_closing_fails_what_waits_and_refuses_what_comes_after(
    redis_server: RedisServer,
) -> None:
    pipe, _ = pipe_to(redis_server)
    blocked = asyncio.ensure_future(pipe.send([("BLPOP", "never", 0)]))
    await asyncio.sleep(0.1)
    pipe.close()
    with pytest.raises(rx.ConnectionError):
        await asyncio.wait_for(blocked, 5)
    with pytest.raises(rx.ConnectionError, match="closed"):
        await pipe.send([("PING",)])


def endpoint_of(server: RedisServer) -> Endpoint:
    async def address() -> tuple[str, int]:
        return "127.0.0.1", server.port

    return Endpoint(address, connect_timeout=2.0)


async def test_the_listener_reads_what_is_published_in_order_and_waits_when_there_is_none(
    redis_server: RedisServer,
) -> None:
    listener = PushListener(endpoint_of(redis_server), name="faye-test-listener", timeout=2.0)
    await listener.open(["a", "b"])
    publisher = Redis(port=redis_server.port)
    for n in range(50):
        await publisher.publish("a" if n % 2 else "b", f"m{n}")
    received = [await listener.get_message(1.0) for _ in range(50)]
    assert [(m["channel"], m["data"]) for m in received if m is not None] == [
        (b"a" if n % 2 else b"b", f"m{n}".encode()) for n in range(50)
    ]
    started = asyncio.get_running_loop().time()
    assert await listener.get_message(0.2) is None
    assert asyncio.get_running_loop().time() - started >= 0.19
    await publisher.aclose()
    await listener.aclose()


async def test_the_listener_raises_once_its_connection_is_cut(redis_server: RedisServer) -> None:
    listener = PushListener(endpoint_of(redis_server), name="faye-test-listener", timeout=2.0)
    await listener.open(["a"])
    admin = Redis(port=redis_server.port)
    waiting = asyncio.ensure_future(listener.get_message(5.0))
    await asyncio.sleep(0.1)
    assert await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
    with pytest.raises(rx.ConnectionError):
        await asyncio.wait_for(waiting, 2)
    await admin.aclose()
    await listener.aclose()


async def test_a_silent_listener_checks_redis_and_fails_when_it_does_not_answer(
    redis_server: RedisServer,
) -> None:
    listener = PushListener(endpoint_of(redis_server), name="faye-test-listener", timeout=0.5)
    listener.HEALTH_EVERY = 0.2
    await listener.open(["a"])
    assert await listener.get_message(0.3) is None  # quiet, and Redis answers
    assert await listener.get_message(0.1) is None  # checked: PONG
    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)

    async def read_until_it_fails() -> None:
        while True:
            await listener.get_message(0.1)

    try:
        with pytest.raises(rx.TimeoutError):
            await asyncio.wait_for(read_until_it_fails(), 3)
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    await listener.aclose()

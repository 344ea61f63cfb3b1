"""``layout: auto``: a server runs the layout its namespace's servers run, and a new
namespace gets channel logs. Real redis-server processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from faye.engine import EngineError
from faye.envelope import Envelope
from faye.redis import Publisher, RedisOptions
from faye.redis.layout2.engine import LogEngine
from tests.redis.conftest import Fleet, engine_of
from tests.support.engines import attach
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for


@pytest.mark.parametrize(
    ("options", "recorded", "chosen"),
    [
        ({}, None, 2),  # the default: auto
        ({}, "1", 1),  # the default follows the namespace
        ({"layout": 1}, "2", 1),  # given: refused at start-up on that namespace
        ({"layout": "auto"}, None, 2),
        ({"layout": None}, "1", 1),
        ({"layout": "auto"}, "2", 2),
        ({"layout": 2}, "1", 2),
        ({"layout": "auto", "partitions": 4}, None, 1),  # spread over partitions: layout 1
        ({"layout": "auto", "cluster": ["127.0.0.1:7000"]}, None, 1),
        ({"layout": "auto", "cluster": ["127.0.0.1:7000"]}, "2", 2),
    ],
)
def test_the_layout_a_server_runs(
    options: dict[str, object], recorded: str | None, chosen: int
) -> None:
    assert RedisOptions.parse(options).layout_for(recorded) == chosen


async def test_a_new_namespace_gets_channel_logs(fleet: Fleet, raw_redis: Redis) -> None:
    proxy = await fleet.proxy(layout=None)
    assert isinstance(engine_of(proxy), LogEngine)
    assert await raw_redis.get(f"{fleet.namespace}:layout") == b"2"


async def test_an_upgraded_server_joins_a_layout_1_fleet(fleet: Fleet) -> None:
    """A rolling upgrade: the running servers were started on layout 1; a server with
    the layout unset joins them and the two serve one client together."""
    old = await fleet.proxy(layout=1)
    new = await fleet.proxy(layout=None)
    assert not isinstance(engine_of(new), LogEngine)
    alice = await old.create_client()
    await new.subscribe(alice, "/up")
    socket = await attach(old, alice)
    await new.publish({"channel": "/up", "data": 1})
    await wait_for(lambda: [m["data"] for m in socket.messages] == [1])


async def test_a_namespace_in_use_without_a_record_is_taken_for_layout_1(
    fleet: Fleet, raw_redis: Redis
) -> None:
    """Servers older than the ``layout`` record run layout 1 and record nothing: a server
    left on ``auto`` must join them, not start channel logs beside their queues."""
    old = await fleet.proxy(layout=1)
    await raw_redis.delete(f"{fleet.namespace}:layout")
    new = await fleet.proxy(layout=None)
    assert not isinstance(engine_of(new), LogEngine)
    alice = await old.create_client()
    await new.subscribe(alice, "/older")
    socket = await attach(old, alice)
    await new.publish({"channel": "/older", "data": 1})
    await wait_for(lambda: [m["data"] for m in socket.messages] == [1])


@contextlib.asynccontextmanager
async def _recorded_then_down(layout: int) -> AsyncIterator[tuple[RedisServer, Fleet]]:
    """A persistent Redis whose namespace records ``layout`` (a server of it started
    there), then stopped: the test starts it again."""
    redis_server = RedisServer("--appendonly", "yes", "--appendfsync", "always").start()
    fleet = Fleet(redis_server.url)
    try:
        await fleet.proxy(layout=layout)
        redis_server.stop()
        yield redis_server, fleet
    finally:
        await fleet.close()
        redis_server.cleanup()


async def test_a_server_waits_for_redis_to_learn_the_layout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis is down as the server starts: it says so once, waits, and starts on the
    namespace's layout once Redis is back, instead of guessing one."""
    async with _recorded_then_down(1) as (redis_server, fleet):
        caplog.set_level(logging.INFO, logger="faye.redis")
        starting = asyncio.ensure_future(
            fleet.proxy(layout=None, log_level="info", retry_delay=0.05)
        )
        await asyncio.sleep(1.0)
        assert not starting.done()
        waiting = [r for r in caplog.records if "waiting for it to learn the layout" in r.message]
        assert len(waiting) == 1
        redis_server.start()
        proxy = await asyncio.wait_for(starting, 15)
        assert not isinstance(engine_of(proxy), LogEngine)
        assert any("runs layout 1" in r.message for r in caplog.records)


async def test_a_server_given_the_other_layout_while_redis_was_away_refuses_service(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server told to run layout 1 starts while Redis is down, on a namespace its
    fleet runs on layout 2. Once Redis is back it finds out, and every handshake and
    publish fails with the reason instead of writing layout 1 keys beside layout 2's."""
    async with _recorded_then_down(2) as (redis_server, fleet):
        caplog.set_level(logging.ERROR, logger="faye.redis")
        proxy = await fleet.proxy(
            layout=1, log_level="error", retry_delay=0.05, connect_timeout=0.5
        )
        engine = engine_of(proxy)
        redis_server.start()

        def refusing() -> bool:
            return any("refusing every client" in r.message for r in caplog.records)

        await wait_for(refusing, 10)
        with pytest.raises(EngineError, match="layout 2"):
            await engine.create_client()
        with pytest.raises(EngineError, match="layout 2"):
            await engine.publish(Envelope.from_message({"channel": "/a", "data": 1}), ["/a"])
        client = Redis.from_url(redis_server.url)
        try:
            assert not await client.exists(f"{fleet.namespace}:clients")
        finally:
            await client.aclose()


@pytest.mark.parametrize("layout", [1, 2])
async def test_a_publisher_publishes_into_the_namespaces_layout(fleet: Fleet, layout: int) -> None:
    server = await fleet.proxy(layout=layout)
    alice = await server.create_client()
    await server.subscribe(alice, "/pub")
    socket = await attach(server, alice)
    options = {"url": fleet.url, "namespace": fleet.namespace, "layout": "auto"}
    async with Publisher(options) as publisher:
        await publisher.publish("/pub", layout)
        assert isinstance(publisher.engine, LogEngine) == (layout == 2)
    await wait_for(lambda: [m["data"] for m in socket.messages] == [layout])

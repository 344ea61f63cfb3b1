"""Publishing into a fleet of two real ``faye serve`` processes straight through Redis.

The servers share a private redis-server; subscribers are real WebSocket (and HTTP
long-polling) clients of those servers. The publishers run in this process: from a plain
thread (SyncPublisher), from asyncio (Publisher), from many threads at once, and from a
forked child. A third, in-process server shows which extensions run for such a message.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

import faye
from faye.redis import Publisher, PublishError, SyncPublisher
from tests.support.bayeux import post
from tests.support.live_server import LiveServer
from tests.support.processes import FayeServer
from tests.support.redis_server import RedisServer, redis_available, running_redis
from tests.support.round_trips import count_writes
from tests.support.subscribers import WsSubscriber

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")

TIMEOUT = 10


@dataclass
class Fleet:
    redis: RedisServer
    namespace: str
    servers: list[FayeServer]

    def ws(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.servers[index].port}/faye"

    def http(self, index: int) -> str:
        return self.servers[index].url

    def sync_publisher(self) -> SyncPublisher:
        return SyncPublisher(self.redis.url, namespace=self.namespace, timeout=TIMEOUT)

    def publisher(self) -> Publisher:
        return Publisher(self.redis.url, namespace=self.namespace, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    namespace = f"pub-{uuid.uuid4().hex[:8]}"
    with running_redis() as server:
        servers = [
            FayeServer(
                "--redis", server.url,
                "--namespace", namespace,
                "--timeout", str(TIMEOUT),
                # No collector run (it calls a function too) while round trips are counted.
                "--engine-option", "gc_interval=0",
                "--log-level", "warning",
            )
            for _ in range(2)
        ]  # fmt: skip
        try:
            for s in servers:
                s.start()
            yield Fleet(server, namespace, servers)
        finally:
            for s in servers:
                s.stop()


async def test_a_sync_publish_from_a_plain_thread_reaches_both_servers(fleet: Fleet) -> None:
    publisher = fleet.sync_publisher()
    errors: list[BaseException] = []

    def job() -> None:  # a thread with no event loop, as in a Celery task or a cron script
        try:
            publisher.publish("/news/sports", {"score": [2, 1]})
        except BaseException as exc:
            errors.append(exc)

    async with (
        WsSubscriber(fleet.ws(0), "/news/sports") as exact,
        WsSubscriber(fleet.ws(1), "/news/*") as wildcard,
        WsSubscriber(fleet.ws(1), "/**", "/news/**", "/news/sports") as overlapping,
        WsSubscriber(fleet.ws(0), "/weather/*") as other,
    ):
        thread = threading.Thread(target=job)
        thread.start()
        await asyncio.to_thread(thread.join, 10)
        assert not errors, errors
        for subscriber in (exact, wildcard, overlapping):
            # Exactly once, however many of its subscriptions match.
            assert await subscriber.wait_for(1) == [{"score": [2, 1]}]
        assert exact.messages[0]["channel"] == "/news/sports"
        assert other.messages == []
    await asyncio.to_thread(publisher.close)


async def test_the_async_publisher_publishes_one_and_many_in_order(fleet: Fleet) -> None:
    async with (
        fleet.publisher() as publisher,
        WsSubscriber(fleet.ws(0), "/feed/*") as on_a,
        WsSubscriber(fleet.ws(1), "/feed/**") as on_b,
    ):
        await publisher.publish("/feed/one", "first")
        await publisher.publish_many([("/feed/two", n) for n in range(20)])
        expected = ["first", *range(20)]
        assert await on_a.wait_for(21) == expected
        assert await on_b.wait_for(21) == expected
        assert {m["channel"] for m in on_a.messages} == {"/feed/one", "/feed/two"}


async def test_a_batch_is_one_round_trip(fleet: Fleet) -> None:
    """Counted twice: the writes on the publisher's connection, and Redis's own count of
    function calls (the subscriber is between polls, so no server drains meanwhile)."""
    raw = redis.Redis.from_url(fleet.redis.url)
    async with httpx.AsyncClient(timeout=10) as http, fleet.publisher() as publisher:
        (hs,) = await post(
            http,
            fleet.http(0),
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            },
        )
        client_id = hs["clientId"]
        replies = await post(
            http,
            fleet.http(0),
            [
                {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/batch/*"},
                {
                    "channel": "/meta/connect",
                    "clientId": client_id,
                    "connectionType": "long-polling",
                    "advice": {"timeout": 0},
                },
            ],
        )
        assert [r["successful"] for r in replies] == [True, True], replies
        await publisher.publish("/batch/warm-up", 0)  # loads the function library
        writes = count_writes(publisher.engine.redis)
        raw.config_resetstat()
        await publisher.publish_many([(f"/batch/{n % 3}", n) for n in range(1, 11)])
        stats = raw.info("commandstats")
        assert writes() == 1
        assert stats["cmdstat_fcall"]["calls"] == 1
        assert "cmdstat_evalsha" not in stats
        # The client polls the other server and gets all eleven, in order.
        replies = await post(
            http,
            fleet.http(1),
            {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"},
        )
        assert replies[0]["successful"], replies
        assert [m["data"] for m in replies[1:]] == list(range(11))
    raw.close()


async def test_threads_share_one_sync_publisher(fleet: Fleet) -> None:
    publisher = fleet.sync_publisher()
    threads, per_thread = 8, 25
    errors: list[BaseException] = []

    def job(t: int) -> None:
        try:
            for n in range(per_thread):
                publisher.publish("/threads/x", {"t": t, "n": n})
        except BaseException as exc:
            errors.append(exc)

    async with WsSubscriber(fleet.ws(1), "/threads/x") as subscriber:
        workers = [threading.Thread(target=job, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            await asyncio.to_thread(worker.join, 30)
        assert not errors, errors
        received = await subscriber.wait_for(threads * per_thread, timeout=20)
    await asyncio.to_thread(publisher.close)
    assert len(received) == threads * per_thread
    for t in range(threads):  # each thread's messages once, in its order
        assert [d["n"] for d in received if d["t"] == t] == list(range(per_thread))


def _publish_in_child(publisher: SyncPublisher, channel: str) -> None:
    publisher.publish(channel, "from the child")


async def test_a_forked_child_publishes_through_its_own_connections(fleet: Fleet) -> None:
    """As in Celery's prefork pool: the publisher was used before the fork."""
    publisher = fleet.sync_publisher()
    async with WsSubscriber(fleet.ws(0), "/fork/*") as subscriber:
        await asyncio.to_thread(publisher.publish, "/fork/x", "from the parent")
        context = multiprocessing.get_context("fork")
        child = context.Process(target=_publish_in_child, args=(publisher, "/fork/y"))
        child.start()  # from the main thread, as a prefork pool does
        await asyncio.to_thread(child.join, 20)
        assert child.exitcode == 0
        await asyncio.to_thread(publisher.publish, "/fork/x", "from the parent again")
        received = await subscriber.wait_for(3)
    await asyncio.to_thread(publisher.close)
    assert sorted(received) == ["from the child", "from the parent", "from the parent again"]
    assert received.index("from the parent") < received.index("from the parent again")


async def test_closing_waits_for_nothing_and_refuses_later_publishes(fleet: Fleet) -> None:
    publisher = fleet.sync_publisher()
    started = time.monotonic()
    publisher.close()  # never used: no thread to stop
    assert time.monotonic() - started < 1
    with pytest.raises(PublishError, match="closed"):
        publisher.publish("/x", 1)


class Stamping:
    """Notes the non-meta messages servers receive; stamps deliveries on /ext/x."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        if not str(message.get("channel", "")).startswith("/meta/"):
            self.received.append(message["channel"])
        return message

    def outgoing(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        if message.get("channel") == "/ext/x" and "data" in message:
            message["data"] = {**message["data"], "stamped": True}
        return message


async def test_outgoing_extensions_run_for_a_published_message_and_incoming_ones_do_not(
    fleet: Fleet,
) -> None:
    extension = Stamping()
    engine = {"type": "redis", "url": fleet.redis.url, "namespace": fleet.namespace}
    adapter = faye.ASGIAdapter(
        mount="/faye", timeout=TIMEOUT, engine=engine, extensions=[extension]
    )
    server = LiveServer(adapter).start()
    try:
        async with (
            fleet.publisher() as publisher,
            WsSubscriber(f"{server.ws_base}/faye", "/ext/x") as subscriber,
        ):
            await publisher.publish("/ext/x", {"n": 1})
            assert await subscriber.wait_for(1) == [{"n": 1, "stamped": True}]
        assert extension.received == []
    finally:
        server.stop()

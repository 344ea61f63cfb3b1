"""Publishers on a real Redis Cluster (3 masters) and behind real Sentinels.

On the Cluster a batch spread over every master reaches subscribers on two servers, each
message once, in order per channel; behind Sentinels the publisher finds the master."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import pytest

import faye
from faye.redis import Publisher, SyncPublisher
from tests.support.live_server import LiveServer
from tests.support.redis_cluster import ClusterTopology, SentinelTopology
from tests.support.subscribers import WsSubscriber

CHANNELS = [f"/cluster/c{n}" for n in range(12)]  # homes on every master (checked below)


@contextlib.contextmanager
def two_servers(url: str) -> Iterator[tuple[str, list[LiveServer]]]:
    namespace = f"pubt-{uuid.uuid4().hex[:8]}"
    engine = {"type": "redis", "url": url, "namespace": namespace}
    live = [
        LiveServer(faye.ASGIAdapter(mount="/faye", timeout=10, engine=engine)).start()
        for _ in range(2)
    ]
    try:
        yield namespace, live
    finally:
        for server in live:
            server.stop()


@pytest.fixture
def servers(redis_cluster: ClusterTopology) -> Iterator[tuple[str, list[LiveServer]]]:
    with two_servers(redis_cluster.url) as started:
        yield started


async def test_a_batch_over_every_master_reaches_both_servers(
    redis_cluster: ClusterTopology, servers: tuple[str, list[LiveServer]]
) -> None:
    namespace, (a, b) = servers
    publisher = Publisher(redis_cluster.url, namespace=namespace, timeout=10)
    keys = [publisher.engine.keys.clients(publisher.engine.keys.home(c)) for c in CHANNELS]
    groups = await publisher.engine.redis.group_by_master(keys)
    assert len(groups) == 3, "the channels should be homed on all three masters"
    async with (
        publisher,
        WsSubscriber(f"{a.ws_base}/faye", "/cluster/*") as on_a,
        WsSubscriber(f"{b.ws_base}/faye", "/cluster/**", "/cluster/c0") as on_b,
    ):
        await publisher.publish_many([(c, {"c": c, "n": n}) for n in range(3) for c in CHANNELS])
        sync = SyncPublisher(redis_cluster.url, namespace=namespace, timeout=10)
        await asyncio.to_thread(sync.publish, "/cluster/c0", {"c": "/cluster/c0", "n": 3})
        await asyncio.to_thread(sync.close)
        total = 3 * len(CHANNELS) + 1
        for subscriber in (on_a, on_b):
            received = await subscriber.wait_for(total, timeout=20)
            assert len(received) == total
            for channel in CHANNELS:
                expected = list(range(4 if channel == "/cluster/c0" else 3))
                assert [d["n"] for d in received if d["c"] == channel] == expected


async def test_a_sync_publisher_behind_sentinels(redis_sentinel: SentinelTopology) -> None:
    with two_servers(redis_sentinel.url) as (namespace, (a, b)):
        publisher = SyncPublisher(redis_sentinel.url, namespace=namespace, timeout=10)
        async with (
            WsSubscriber(f"{a.ws_base}/faye", "/sentinel/*") as on_a,
            WsSubscriber(f"{b.ws_base}/faye", "/sentinel/x") as on_b,
        ):
            await asyncio.to_thread(publisher.publish_many, [("/sentinel/x", n) for n in range(5)])
            await asyncio.to_thread(publisher.close)
            assert await on_a.wait_for(5) == list(range(5))
            assert await on_b.wait_for(5) == list(range(5))

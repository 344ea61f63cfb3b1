"""What a publish costs a process that runs no server: Publisher and SyncPublisher.

    python bench/publisher.py [--count 2000]

Starts a private redis-server (never the machine's 6379) with 100 subscribed clients on
the published channel, then times, one call at a time: ``await Publisher.publish``,
``SyncPublisher.publish`` from a plain thread, and ``publish_many`` of 100 messages (per
message). Prints the median and 99th percentile in microseconds. Nobody drains the
queues here, so ``max_queue`` is raised to keep trimming (a cost of full queues, not of
publishing) out of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faye.proxy import EngineProxy
from faye.redis import Publisher, RedisEngine, SyncPublisher
from tests.support.redis_server import running_redis

NAMESPACE = "bench-publisher"
OPTIONS = {"namespace": NAMESPACE, "max_queue": 1_000_000}


def summary(name: str, seconds: list[float], per: int = 1) -> None:
    micros = sorted(s / per * 1e6 for s in seconds)
    p99 = micros[min(len(micros) - 1, int(len(micros) * 0.99))]
    print(f"{name}: median {statistics.median(micros):.0f} us, p99 {p99:.0f} us")


async def subscribe(url: str, clients: int) -> EngineProxy:
    spec = {"url": url, **OPTIONS, "log_level": "silent", "gc_interval": None}
    proxy = EngineProxy(RedisEngine.create, spec, timeout=60)
    await proxy.start()
    for _ in range(clients):
        client_id = await proxy.create_client()
        await proxy.subscribe(client_id, "/bench/publisher")
    return proxy


async def run_async(url: str, count: int) -> None:
    async with Publisher({"url": url, **OPTIONS}, timeout=60) as publisher:
        await publisher.publish("/bench/publisher", "warm-up")
        times = []
        for n in range(count):
            started = time.perf_counter()
            await publisher.publish("/bench/publisher", n)
            times.append(time.perf_counter() - started)
        summary("Publisher.publish", times)
        batches = []
        for _ in range(max(1, count // 100)):
            started = time.perf_counter()
            await publisher.publish_many([("/bench/publisher", n) for n in range(100)])
            batches.append(time.perf_counter() - started)
        summary("Publisher.publish_many(100), per message", batches, per=100)


def run_sync(url: str, count: int) -> None:
    with SyncPublisher({"url": url, **OPTIONS}, timeout=60) as publisher:
        publisher.publish("/bench/publisher", "warm-up")
        times = []
        for n in range(count):
            started = time.perf_counter()
            publisher.publish("/bench/publisher", n)
            times.append(time.perf_counter() - started)
        summary("SyncPublisher.publish", times)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=100)
    args = parser.parse_args()
    with running_redis() as server:
        proxy = await subscribe(server.url, args.subscribers)
        try:
            await run_async(server.url, args.count)
            await asyncio.to_thread(run_sync, server.url, args.count)
        finally:
            await proxy.close()


if __name__ == "__main__":
    asyncio.run(main())

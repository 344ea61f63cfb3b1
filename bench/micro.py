"""Three small measurements on real servers: ``publisher``, ``deflate`` and ``calls``.

``python -m bench publisher``: what one publish costs a process that runs no server.
Starts py-redis (bench/setups.py) with ``--subscribers`` WebSocket clients on the channel,
then times, one call at a time, ``await Publisher.publish``, ``SyncPublisher.publish``
from a plain thread, and ``Publisher.publish_many`` of 100 messages (per message).

``python -m bench deflate``: what permessage-deflate costs the server per message.
Starts py-memory under each ``--ws-compression`` setting; ``--clients`` WebSocket
clients that offer deflate as browsers do each make ``--rounds`` publish round trips
(a browser-sized publish in, its acknowledgement out). Prints the server's CPU per
round trip and the bytes each way on the wire.

``python -m bench calls``: what one small Redis command costs this process's CPU, on a
private redis-server: awaited through redis-py's asyncio client, and as an engine client
call (the Batcher on the calls' own connection, faye/redis/pipe.py), alone and with
``--together`` calls made at once. Then what receiving one pub/sub message costs, with
redis-py's ``PubSub`` and with the engine's listener, while another process publishes
``--count`` messages in pipelines of 100. Redis's own time is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.bayeux import BayeuxClient
from bench.measure import cpu_seconds
from bench.setups import NAMESPACE, SETUPS, Options, Running, start
from faye.redis import Publisher, SyncPublisher
from faye.redis.batching import Batcher
from faye.redis.connection import RedisConnection
from faye.redis.listeners import Listener
from faye.redis.options import RedisOptions
from tests.support.redis_server import running_redis

CHANNEL = "/bench/publisher"
#: A chat message as a browser's Faye client publishes it.
MESSAGE = {"user": "ana", "text": "see you at the station at 6", "room": 42}


def add_arguments(parser: argparse.ArgumentParser, which: str) -> None:
    if which == "publisher":
        parser.add_argument("--count", type=int, default=2000, help="publishes timed")
        parser.add_argument("--subscribers", type=int, default=100)
    elif which == "calls":
        parser.add_argument("--count", type=int, default=20000, help="calls timed per way")
        parser.add_argument("--together", type=int, default=4, help="calls made at once")
    else:
        parser.add_argument("--clients", type=int, default=50)
        parser.add_argument("--rounds", type=int, default=200, help="round trips per client")


def summary(name: str, seconds: list[float], per: int = 1) -> None:
    micros = sorted(s / per * 1e6 for s in seconds)
    p99 = micros[min(len(micros) - 1, int(len(micros) * 0.99))]
    print(f"{name}: median {statistics.median(micros):.0f} us, p99 {p99:.0f} us")


def running_setup(name: str, compression: str = "off") -> Running:
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    return start(SETUPS[name], logs, Options(ws_compression=compression))


async def clients(url: str, count: int, channel: str | None) -> list[BayeuxClient]:
    out = []
    for _ in range(count):
        client = BayeuxClient(url)
        await client.open()
        await client.handshake()
        if channel is not None:
            await client.subscribe(channel)
            client.start_connecting()
        out.append(client)
    return out


async def time_publisher(url: str, count: int) -> None:
    async with Publisher(url, namespace=NAMESPACE) as publisher:
        await publisher.publish(CHANNEL, "warm-up")
        times = []
        for n in range(count):
            started = time.perf_counter()
            await publisher.publish(CHANNEL, n)
            times.append(time.perf_counter() - started)
        summary("Publisher.publish", times)
        batches = []
        for _ in range(max(1, count // 100)):
            started = time.perf_counter()
            await publisher.publish_many([(CHANNEL, n) for n in range(100)])
            batches.append(time.perf_counter() - started)
        summary("Publisher.publish_many(100), per message", batches, per=100)


def time_sync_publisher(url: str, count: int) -> None:
    with SyncPublisher(url, namespace=NAMESPACE) as publisher:
        publisher.publish(CHANNEL, "warm-up")
        times = []
        for n in range(count):
            started = time.perf_counter()
            publisher.publish(CHANNEL, n)
            times.append(time.perf_counter() - started)
        summary("SyncPublisher.publish", times)


async def publisher(args: argparse.Namespace) -> None:
    running = running_setup("py-redis")
    try:
        assert running.redis is not None
        subscribers = await clients(running.urls[-1], args.subscribers, CHANNEL)
        await time_publisher(running.redis.url, args.count)
        await asyncio.to_thread(time_sync_publisher, running.redis.url, args.count)
        for client in subscribers:
            client.close()
    finally:
        running.stop()


async def round_trips(running: Running, args: argparse.Namespace) -> dict[str, Any]:
    group = await clients(running.urls[0], args.clients, None)

    async def one(client: BayeuxClient) -> None:
        for _ in range(args.rounds):
            await client.call(
                {"channel": "/chat/room-42", "clientId": client.client_id, "data": MESSAGE}
            )

    await one(group[0])  # warm-up
    sockets = [c._ws for c in group if c._ws is not None]
    bytes0 = [(s.bytes_in, s.bytes_out) for s in sockets]
    cpu0 = cpu_seconds(running.pids[0])
    await asyncio.gather(*(one(c) for c in group))
    cpu = cpu_seconds(running.pids[0]) - cpu0
    trips = args.clients * args.rounds
    received = sum(s.bytes_in - b[0] for s, b in zip(sockets, bytes0, strict=True))
    sent = sum(s.bytes_out - b[1] for s, b in zip(sockets, bytes0, strict=True))
    deflated = sum(1 for c in group if c.deflate)
    for client in group:
        client.close()
    return {"cpu_us": cpu / trips * 1e6, "in": sent / trips, "out": received / trips, "n": deflated}


async def deflate(args: argparse.Namespace) -> None:
    print(
        "| --ws-compression | deflate accepted | server CPU per round trip | bytes in | bytes out |"
    )
    print("|---|--:|--:|--:|--:|")
    for setting in ("off", "on", "no-context-takeover"):
        running = running_setup("py-memory", setting)
        try:
            row = await round_trips(running, args)
        finally:
            running.stop()
        print(
            f"| {setting} | {row['n']} of {args.clients} | {row['cpu_us']:.1f} µs "
            f"| {row['in']:.0f} | {row['out']:.0f} |"
        )


async def per_call(make: Callable[[], Awaitable[Any]], count: int, together: int) -> float:
    """Process CPU µs per call, ``together`` callers making ``count`` calls in all."""
    await make()

    async def caller() -> None:
        for _ in range(count // together):
            await make()

    started = time.process_time()
    await asyncio.gather(*(caller() for _ in range(together)))
    return (time.process_time() - started) / (count // together * together) * 1e6


async def calls(args: argparse.Namespace) -> None:
    with running_redis() as server:
        client = Redis(port=server.port)
        await client.zadd("clients", {"alice": 1})
        options = RedisOptions.parse({"port": server.port})
        connection = RedisConnection(options)
        await connection.load_scripts()
        batch = Batcher(connection)
        ways: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("redis-py, awaited", lambda: client.execute_command("ZSCORE", "clients", "alice")),
            (
                "engine client call",
                lambda: batch.command("probe", "ZSCORE", "clients", "alice", idempotent=True),
            ),
        ]
        print(f"| ZSCORE | alone | {args.together} at once |")
        print("|---|--:|--:|")
        for name, make in ways:
            alone = await per_call(make, args.count, 1)
            together = await per_call(make, args.count, args.together)
            print(f"| {name} | {alone:.1f} µs | {together:.1f} µs |")
        await batch.close(1.0)
        await connection.close()
        await client.aclose()
        print()
        print("| one pub/sub message received | CPU |")
        print("|---|--:|")
        listeners: list[tuple[str, Listener]] = [
            ("redis-py PubSub.get_message", PubSubListener(Redis(port=server.port))),
            ("engine listener", RedisConnection(options).listener()),
        ]
        for name, listener in listeners:
            cost = await per_message(listener, server.port, args.count)
            print(f"| {name} | {cost:.1f} µs |")


class PubSubListener:
    """redis-py's own pub/sub reading, as a :class:`Listener`."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)

    async def open(self, channels: Sequence[str]) -> None:
        await self.pubsub.subscribe(*channels)

    async def get_message(self, wait: float) -> Mapping[str, Any] | None:
        message: Mapping[str, Any] | None = await self.pubsub.get_message(timeout=wait)
        return message

    async def aclose(self) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        await self.client.aclose()


PUBLISH = """
import sys, redis
client = redis.Redis(port=int(sys.argv[1]))
for _ in range(int(sys.argv[2]) // 100):
    pipe = client.pipeline(transaction=False)
    for n in range(100):
        pipe.publish("bench", b"s 0123456789abcdef 42 /chat/room-42")
    pipe.execute()
"""


async def per_message(listener: Listener, port: int, count: int) -> float:
    """Process CPU µs per message ``listener`` reads while another process publishes."""
    await listener.open(["bench"])
    count = count // 100 * 100
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISH, str(port), str(count)
    )
    started = time.process_time()
    got = 0
    while got < count:
        if await listener.get_message(5.0) is not None:
            got += 1
    cpu = time.process_time() - started
    await publisher.wait()
    await listener.aclose()
    return cpu / count * 1e6


def main(args: argparse.Namespace) -> None:
    import uvloop

    work = {"publisher": publisher, "deflate": deflate, "calls": calls}[args.command]
    uvloop.run(work(args))

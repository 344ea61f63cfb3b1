"""The engine's pub/sub side: notifications and closes, on one Redis or a Cluster.

A listener subscribes once and is read until it fails; the engine then makes a new one
(``RedisConnection.listener``) and resubscribes, so every failure mode ends the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from redis import exceptions as rx
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from faye.redis.pipe import Endpoint, RedisProtocol, connect, pack_commands


class Listener(Protocol):
    """The pub/sub side: subscribe once, then read messages until an error."""

    async def open(self, channels: Sequence[str]) -> None: ...

    async def get_message(self, wait: float) -> Mapping[str, Any] | None: ...

    async def aclose(self) -> None: ...


class PushListener:
    """SUBSCRIBE on a connection of our own (one Redis, or the master a Sentinel names),
    read through hiredis (:mod:`faye.redis.pipe`): about 1 µs of CPU a message, where
    redis-py's ``PubSub.get_message`` takes 13 (``python -m bench calls``)."""

    #: Seconds without a message after which a PING checks the connection.
    HEALTH_EVERY = 10.0

    def __init__(self, endpoint: Endpoint, *, name: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.name = name
        #: How long Redis may take to answer (SUBSCRIBE, a health PING).
        self.timeout = timeout
        self.protocol: RedisProtocol | None = None
        self.messages: deque[list[Any] | None] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.heard = 0.0

    def _pushed(self, reply: list[Any] | None) -> None:
        self.messages.append(reply)  # None: the connection is lost
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def open(self, channels: Sequence[str]) -> None:
        protocol = await connect(
            self.endpoint, name=self.name, answer_within=self.timeout, on_push=self._pushed
        )
        self.protocol = protocol
        confirmed = await protocol.send(pack_commands([("SUBSCRIBE", *channels)]), len(channels))
        for channel, reply in zip(channels, confirmed, strict=True):
            if not (isinstance(reply, list) and reply[:2] == [b"subscribe", channel.encode()]):
                raise rx.ConnectionError(f"SUBSCRIBE {channel} answered {reply!r}")
        self.heard = time.monotonic()

    async def get_message(self, wait: float) -> Mapping[str, Any] | None:
        protocol = self.protocol
        assert protocol is not None, "open() first"
        if not self.messages:
            if time.monotonic() - self.heard >= self.HEALTH_EVERY:
                # Fails (and drops the connection) if Redis does not answer in time.
                await protocol.send(pack_commands([("PING",)]), 1)
                self.heard = time.monotonic()
            loop = asyncio.get_running_loop()
            self.waiter = waiter = loop.create_future()
            timer = loop.call_later(wait, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self.waiter = None
            if not self.messages:
                return None
        reply = self.messages.popleft()
        if reply is None:
            raise protocol.failure or rx.ConnectionError("the listener lost Redis")
        self.heard = time.monotonic()
        # SUBSCRIBE only: every push is ['message', channel, data].
        return {"type": "message", "channel": reply[1], "data": reply[2]}

    async def aclose(self) -> None:
        if self.protocol is not None:
            self.protocol.close()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class TopologyChanged(rx.ConnectionError):
    """A shard channel moved to another master: subscribe again from scratch."""


class ShardedListener:
    """SSUBSCRIBE on a Redis Cluster: one connection per master owning our channels.

    Channels are grouped by slot (one SSUBSCRIBE per slot, as Redis requires) and by
    the master owning the slot. Any sign that the layout changed ends the listener
    with an error, and the engine subscribes again from a fresh slot map:

    * a connection fails (a master died: its replica takes over within the cluster's
      node timeout);
    * Redis itself unsubscribes us (``sunsubscribe`` after a slot moved away, or after
      a master was demoted);
    * the command client learned of a new owner for one of our slots (MOVED).
    """

    #: Seconds between comparisons of our subscriptions with the client's slot map.
    CHECK_EVERY = 1.0

    def __init__(self, cluster: RedisCluster, kwargs: Mapping[str, Any], confirm: float) -> None:
        self.cluster = cluster
        self.kwargs = dict(kwargs)
        self.confirm = confirm
        self.owners: dict[str, str] = {}
        self.clients: list[Redis] = []
        self.pubsubs: list[PubSub] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.queue: asyncio.Queue[Mapping[str, Any] | BaseException] = asyncio.Queue()
        self.checked = time.monotonic()

    async def open(self, channels: Sequence[str]) -> None:
        await self.cluster.nodes_manager.initialize()
        groups: dict[str, tuple[ClusterNode, dict[int, list[str]]]] = {}
        for channel in channels:
            node = self.cluster.get_node_from_key(channel)
            if node is None:
                raise rx.SlotNotCoveredError(f"no master owns {channel}")
            self.owners[channel] = node.name
            slots = groups.setdefault(node.name, (node, {}))[1]
            slots.setdefault(key_slot(channel.encode()), []).append(channel)
        for node, slots in groups.values():
            pool = ConnectionPool(
                host=node.host, port=int(node.port), max_connections=2, **self.kwargs
            )
            client = Redis.from_pool(pool)
            self.clients.append(client)
            pubsub = client.pubsub()
            self.pubsubs.append(pubsub)
            for names in slots.values():
                await pubsub.ssubscribe(*names)
            await self._confirmed(pubsub, sum(len(names) for names in slots.values()))
        for pubsub in self.pubsubs:
            self.tasks.append(asyncio.ensure_future(self._read(pubsub)))

    async def _confirmed(self, pubsub: PubSub, count: int) -> None:
        """Wait until the node has confirmed every SSUBSCRIBE (so no notification is lost)."""
        deadline = time.monotonic() + self.confirm
        while count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise rx.TimeoutError("SSUBSCRIBE was not confirmed in time")
            message = await pubsub.get_message(timeout=left)
            if message is None:
                continue
            if message["type"] == "ssubscribe":
                count -= 1
            else:
                self.queue.put_nowait(message)

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    continue
                if message["type"] == "sunsubscribe":
                    raise TopologyChanged("Redis moved a shard channel away from this master")
                self.queue.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.queue.put_nowait(exc)

    def _moved(self) -> bool:
        for channel, owner in self.owners.items():
            node = self.cluster.get_node_from_key(channel)
            if node is None or node.name != owner:
                return True
        return False

    async def get_message(self, wait: float) -> Mapping[str, Any] | None:
        if time.monotonic() - self.checked >= self.CHECK_EVERY:
            self.checked = time.monotonic()
            if self._moved():
                raise TopologyChanged("the slot map changed")
        try:
            item = await asyncio.wait_for(self.queue.get(), min(wait, self.CHECK_EVERY))
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        for pubsub in self.pubsubs:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.aclose()

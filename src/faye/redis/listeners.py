"""The engine's pub/sub side: notifications and closes, on one Redis or a Cluster.

A listener subscribes once and is read until it fails; the engine then makes a new one
(``RedisConnection.listener``) and resubscribes, so every failure mode ends the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from redis import exceptions as rx
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot


class Listener(Protocol):
    """The pub/sub side: subscribe once, then read messages until an error."""

    async def open(self, channels: Sequence[str]) -> None: ...

    async def get_message(self, wait: float) -> Mapping[str, Any] | None: ...

    async def aclose(self) -> None: ...


class PlainListener:
    """SUBSCRIBE on one connection (one Redis, or the master found through Sentinel)."""

    def __init__(self, client: Redis) -> None:
        self.pubsub: PubSub = client.pubsub(ignore_subscribe_messages=True)

    async def open(self, channels: Sequence[str]) -> None:
        await self.pubsub.subscribe(*channels)

    async def get_message(self, wait: float) -> Mapping[str, Any] | None:
        message: Mapping[str, Any] | None = await self.pubsub.get_message(timeout=wait)
        return message

    async def aclose(self) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


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

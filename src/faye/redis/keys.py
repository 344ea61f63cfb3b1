"""Key and channel names, and which partition holds what.

Keys live in *partitions* ``ns:{T}:`` whose hash tag ``{T}`` puts all of a partition's
keys in one Redis Cluster slot, so each Lua script touches one slot. The scripts
receive the partition prefix and build the other key names from it.

A client's *record* (liveness, owner, the set of its homes) lives in the partition of
its id. A channel's subscribers, and the queues of messages published on it, live in
the channel's *home*, the partition of its name, so that a publish runs in one
partition only; a client subscribed to channels of several homes has a queue in each.
Wildcard subscriptions (``/a/*``, ``/**``) match channels of every home, so they are
kept in every partition. Server-wide keys (the GC lock) sit outside the partitions.
"""

from __future__ import annotations

import zlib
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot


@cache
def balanced_tags(partitions: int) -> tuple[str, ...]:
    """Hash tags whose slots are evenly spaced over the 16384 Cluster slots.

    Partition P gets the smallest decimal number hashing near the middle of the P-th of
    ``partitions`` equal slot ranges (within a quarter of a range), so a Cluster whose
    masters own equal contiguous ranges (what ``redis-cli --cluster create`` makes)
    holds equal numbers of partitions. Plain numbers do not: 16 partitions tagged
    0..15 land 6/6/4 on three masters.
    """
    width = REDIS_CLUSTER_HASH_SLOTS / partitions
    reach = width / 4
    tags: list[str | None] = [None] * partitions
    missing, n = partitions, 0
    while missing:
        slot = key_slot(str(n).encode())
        p = min(int(slot / width), partitions - 1)
        if tags[p] is None and abs(slot - (p + 0.5) * width) <= max(reach, 0.5):
            tags[p] = str(n)
            missing -= 1
        n += 1
    return tuple(t for t in tags if t is not None)


class Keys:
    """Names for one namespace split into ``partitions`` hash-tag groups.

    The tag of partition P is ``P`` itself, or with ``balanced`` (used on a Cluster)
    the number chosen by :func:`balanced_tags`.
    """

    def __init__(self, namespace: str, partitions: int = 1, *, balanced: bool = False) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.namespace = namespace
        self.partitions = partitions
        tags = balanced_tags(partitions) if balanced else tuple(map(str, range(partitions)))
        self._prefixes = tuple(f"{namespace}:{{{tag}}}:" for tag in tags)
        self.gc_lock = f"{namespace}:lock:gc"

    def partition(self, client_id: str) -> int:
        """Where a client's keys live; stable for a given partition count."""
        if self.partitions == 1:
            return 0
        return zlib.crc32(client_id.encode()) % self.partitions

    def home(self, channel: str) -> int:
        """The partition holding a channel's subscribers and its messages' queues."""
        if self.partitions == 1:
            return 0
        return zlib.crc32(channel.encode()) % self.partitions

    def homes(self, channel: str) -> tuple[int, ...]:
        """Where a subscription to ``channel`` is kept: its home, or every partition
        for a wildcard pattern."""
        if "*" in channel:
            return tuple(range(self.partitions))
        return (self.home(channel),)

    def prefix(self, partition: int) -> str:
        """``ns:{T}:`` — ``T`` is the partition's hash tag (see the class)."""
        return self._prefixes[partition]

    # Keys the scripts derive from the prefix (kept here for tests, tools and docs).

    def clients(self, partition: int) -> str:
        """zset: client id → last ping (ms since the epoch)."""
        return self.prefix(partition) + "clients"

    def servers(self, partition: int) -> str:
        """zset: server id → last heartbeat (ms); one copy per partition."""
        return self.prefix(partition) + "servers"

    def owner(self, partition: int) -> str:
        """hash: client id → id of the server holding its connection."""
        return self.prefix(partition) + "owner"

    def homes_of(self, partition: int, client_id: str) -> str:
        """set (record partition): the partitions holding the client's subscriptions."""
        return f"{self.prefix(partition)}homes:{client_id}"

    def dying(self, partition: int) -> str:
        """hash (record partition): destroyed client id → its other homes, until they
        are cleaned (the GC finishes what a failed destroy left)."""
        return self.prefix(partition) + "dying"

    def subscriptions(self, partition: int, client_id: str) -> str:
        return f"{self.prefix(partition)}subs:{client_id}"

    def channel(self, partition: int, channel: str) -> str:
        return f"{self.prefix(partition)}chan:{channel}"

    def queue(self, partition: int, client_id: str) -> str:
        """list: a header naming the server holding the next N messages in flight (see
        :func:`split_queue`), those messages, then the ones not handed out yet."""
        return f"{self.prefix(partition)}queue:{client_id}"

    def in_flight(self, partition: int, client_id: str, server_id: str) -> str:
        """list: the server's in-flight messages of the client while another server
        holds the client's queue (the client moved)."""
        return f"{self.prefix(partition)}flight:{client_id}:{server_id}"

    def flights(self, partition: int, client_id: str) -> str:
        """set: ids of the servers holding in-flight messages of the client."""
        return f"{self.prefix(partition)}flights:{client_id}"

    def flying(self, partition: int, server_id: str) -> str:
        """set: ids of the clients whose queues the server holds or held (a superset of
        those with messages in flight there), or that have an in-flight list of it."""
        return f"{self.prefix(partition)}flying:{server_id}"

    # Pub/sub channels, also inside the partition tag (ready for sharded pub/sub).

    def notify_channel(self, partition: int, server_id: str) -> str:
        return f"{self.prefix(partition)}notify:{server_id}"

    def close_channel(self, partition: int) -> str:
        return f"{self.prefix(partition)}close"


def split_queue(items: list[bytes]) -> tuple[str | None, list[bytes], list[bytes]]:
    """A queue list read whole → (holding server, its in-flight messages, the rest).

    The header ``|<server id>|<n>`` at the head, written by the delivery script, keeps
    drained messages in place instead of moving them into a list of their own: a
    delivery then creates and deletes no key (which costs extra on a Cluster master).
    """
    if items and items[0][:1] == b"|":
        sid, _, count = items[0][1:].decode().rpartition("|")
        if sid and count.isdigit():
            n = int(count)
            return sid, items[1 : 1 + n], items[1 + n :]
    return None, [], items

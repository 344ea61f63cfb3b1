"""Key and channel names, and the client-id → partition function.

Every per-client key lives in a *partition* ``ns:{P}:`` whose hash tag ``{P}`` puts all of
that partition's keys in one Redis Cluster slot, so each Lua script touches one slot.
The scripts receive the partition prefix and build the other key names from it.
Server-wide keys (the GC lock) sit outside the partitions.
"""

from __future__ import annotations

import zlib


class Keys:
    """Names for one namespace split into ``partitions`` hash-tag groups."""

    def __init__(self, namespace: str, partitions: int = 1) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.namespace = namespace
        self.partitions = partitions
        self.gc_lock = f"{namespace}:lock:gc"

    def partition(self, client_id: str) -> int:
        """Where a client's keys live; stable for a given partition count."""
        if self.partitions == 1:
            return 0
        return zlib.crc32(client_id.encode()) % self.partitions

    def prefix(self, partition: int) -> str:
        """``ns:{P}:`` — the hash tag is the partition label."""
        return f"{self.namespace}:{{{partition}}}:"

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

    def subscriptions(self, partition: int, client_id: str) -> str:
        return f"{self.prefix(partition)}subs:{client_id}"

    def channel(self, partition: int, channel: str) -> str:
        return f"{self.prefix(partition)}chan:{channel}"

    def queue(self, partition: int, client_id: str) -> str:
        return f"{self.prefix(partition)}queue:{client_id}"

    def in_flight(self, partition: int, client_id: str, server_id: str) -> str:
        return f"{self.prefix(partition)}flight:{client_id}:{server_id}"

    def flights(self, partition: int, client_id: str) -> str:
        """set: ids of the servers holding in-flight messages of the client."""
        return f"{self.prefix(partition)}flights:{client_id}"

    def flying(self, partition: int, server_id: str) -> str:
        """set: ids of the clients with messages in flight on the server."""
        return f"{self.prefix(partition)}flying:{server_id}"

    # Pub/sub channels, also inside the partition tag (ready for sharded pub/sub).

    def notify_channel(self, partition: int, server_id: str) -> str:
        return f"{self.prefix(partition)}notify:{server_id}"

    def close_channel(self, partition: int) -> str:
        return f"{self.prefix(partition)}close"

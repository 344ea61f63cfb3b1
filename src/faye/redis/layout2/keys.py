"""Key and channel names of layout 2, all inside one partition's hash tag.

The Lua functions build the same names from the prefix (``lua/log_lib.lua`` lists
them); these are for the Python side, tests and tools.
"""

from __future__ import annotations

from faye.redis.keys import Keys


class LogKeys:
    """Names for one namespace; layout 2 keeps everything in partition 0."""

    def __init__(self, keys: Keys) -> None:
        self.prefix = keys.prefix(0)
        #: Which layout the namespace's servers use (``1`` or ``2``), outside the tag.
        self.layout = f"{keys.namespace}:layout"

    @property
    def clients(self) -> str:
        """zset: client id -> time of its last ping (ms)."""
        return self.prefix + "clients"

    @property
    def servers(self) -> str:
        """zset: server id -> its last heartbeat (ms)."""
        return self.prefix + "servers"

    @property
    def owner(self) -> str:
        """hash: client id -> the server holding it."""
        return self.prefix + "owner"

    @property
    def seq(self) -> str:
        """string: the last sequence number given out (a clock in microseconds)."""
        return self.prefix + "seq"

    @property
    def servers_of(self) -> str:
        """hash: subscribed name -> comma-separated ids of the servers holding subscribers."""
        return self.prefix + "servers_of"

    @property
    def cursors(self) -> str:
        """hash: client id -> ``<acked>/<handed>/<server id>``."""
        return self.prefix + "cursors"

    def log(self, name: str) -> str:
        """list: ``<seq> <message>`` entries published on (or matching) ``name``."""
        return f"{self.prefix}log:{name}"

    def route(self, name: str) -> str:
        """hash: server id -> its clients subscribed to ``name``."""
        return f"{self.prefix}route:{name}"

    def subscriptions(self, client_id: str) -> str:
        """hash: name -> the sequence number current when the client subscribed."""
        return f"{self.prefix}subs:{client_id}"

    def wake(self, server_id: str) -> str:
        """Pub/sub: messages and control lines for one server."""
        return f"{self.prefix}w:{server_id}"

    @property
    def close(self) -> str:
        """Pub/sub: ``<sid> <cid>``, a client was destroyed: close its connection."""
        return self.prefix + "close"

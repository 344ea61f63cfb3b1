"""redis-py asyncio connections that encode commands with hiredis.

redis-py's synchronous client encodes commands with hiredis's C packer when hiredis is
installed; its asyncio connections always use the Python one. The engine's calls carry
many arguments (a burst of ten publishes is 40-odd), and redis-py's Python packer walks
them one by one, where hiredis's packs them in C. The bytes are the same
(tests/redis/test_packing.py).
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection


class HiredisPacking:
    """Mixed in before a redis-py asyncio connection class."""

    def pack_command(self, *args: Any) -> list[bytes]:
        # As redis-py: a command name with spaces ("CONFIG GET") is several arguments.
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        return [hiredis.pack_command(args)]


class PackedConnection(HiredisPacking, Connection):
    pass


class PackedSSLConnection(HiredisPacking, SSLConnection):
    pass


class PackedSentinelConnection(HiredisPacking, SentinelManagedConnection):
    pass


class PackedSentinelSSLConnection(HiredisPacking, SentinelManagedSSLConnection):
    pass

"""Count the requests an engine's Redis connection writes: one write is one round trip."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faye.redis.connection import RedisConnection


def count_writes(connection: RedisConnection) -> Callable[[], int]:
    """Count writes on the command pools (one Redis, not Cluster) from now on: the
    shared pool and the lanes' own (publishes and deliveries, which wait out stalls)."""
    counter = {"n": 0}

    def counted(conn: Any) -> Any:
        original = conn.send_packed_command

        async def counting(*args: Any, **kwargs: Any) -> Any:
            counter["n"] += 1
            return await original(*args, **kwargs)

        conn.send_packed_command = counting
        return conn

    lanes = getattr(connection, "lanes_pool", connection.pool)
    pools = {id(pool): pool for pool in (connection.pool, lanes)}
    for pool in pools.values():
        for conn in [*pool._available_connections, *pool._in_use_connections]:
            counted(conn)
        make = pool.make_connection
        pool.make_connection = lambda make=make: counted(make())
    return lambda: counter["n"]


def count_sends(engine: Any) -> Any:
    """Count request writes (round trips) on the engine's command connections (those
    of its lanes included)."""
    return count_writes(engine.redis)

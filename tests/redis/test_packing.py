"""The engine's connections encode commands with hiredis: the same bytes as redis-py."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection

from faye.redis.packing import HiredisPacking, PackedConnection
from tests.redis.conftest import Fleet, engine_of

COMMANDS: list[tuple[Any, ...]] = [
    ("FCALL", "faye_0123456789ab_publish", 1, "ns:{3}:clients", "ns:{3}:", 1.5, -7, 10**20),
    ("SET", "clé", "välue ✓", b"\x00\xffraw", memoryview(b"view")),
    ("CONFIG GET", "maxmemory"),  # a command name of two words
    (b"CLIENT SETNAME", "faye"),
    ("PING",),
    ("SET", "k", "x" * 100_000),  # past redis-py's buffer cutoff
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_the_same_bytes_as_redis_py(command: tuple[Any, ...]) -> None:
    ours = b"".join(PackedConnection().pack_command(*command))
    theirs = b"".join(Connection().pack_command(*command))
    assert ours == theirs


def test_a_pipeline_packs_the_same_bytes() -> None:
    ours = b"".join(PackedConnection().pack_commands(COMMANDS))
    theirs = b"".join(Connection().pack_commands(COMMANDS))
    assert ours == theirs


async def test_one_redis_uses_packing_connections(fleet: Fleet) -> None:
    proxy = await fleet.proxy()
    alice = await proxy.create_client()
    assert await proxy.client_exists(alice)
    connection = engine_of(proxy).redis.pool.connection_class
    assert issubclass(connection, HiredisPacking)

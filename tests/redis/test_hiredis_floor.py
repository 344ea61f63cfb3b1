"""The ``[redis]`` extra's hiredis is one that redis-py parses replies with.

redis-py ignores hiredis releases older than it supports and falls back to its
pure-Python parser without a word; the extra's floor must stay above that line.
"""

from __future__ import annotations

from redis.asyncio.connection import DefaultParser
from redis.utils import HIREDIS_AVAILABLE

from faye.redis.packing import PackedConnection


def test_redis_py_parses_with_the_installed_hiredis() -> None:
    assert HIREDIS_AVAILABLE
    assert DefaultParser.__name__ == "_AsyncHiredisParser"


def test_engine_connections_use_the_hiredis_parser() -> None:
    connection = PackedConnection()
    assert type(connection._parser).__name__ == "_AsyncHiredisParser"

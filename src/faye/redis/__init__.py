"""The Redis engine: one Faye fleet across processes and hosts.

``engine={"type": "redis", "url": "redis://..."}``, ``engine={"type": faye.Redis, ...}``
or ``engine="redis://..."`` select it; see docs/redis.md.
"""

from __future__ import annotations

from faye.redis.engine import RedisEngine, collect_garbage
from faye.redis.keys import Keys
from faye.redis.options import RedisOptions, SSLOptions

Redis = RedisEngine

__all__ = ["Keys", "Redis", "RedisEngine", "RedisOptions", "SSLOptions", "collect_garbage"]

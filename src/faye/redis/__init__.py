"""The Redis engine: one Faye fleet across processes and hosts.

``engine={"type": "redis", "url": "redis://..."}``, ``engine={"type": faye.Redis, ...}``
or ``engine="redis://..."`` select it; see docs/redis.md.
"""

from __future__ import annotations

import faye.redis.dependencies  # noqa: F401  (a clear error without the [redis] extra)
from faye.redis.engine import RedisEngine, collect_garbage
from faye.redis.keys import Keys
from faye.redis.options import RedisOptions, SSLOptions

Redis = RedisEngine

__all__ = ["Keys", "Redis", "RedisEngine", "RedisOptions", "SSLOptions", "collect_garbage"]

"""The Redis engine: one Faye fleet across processes and hosts.

``engine={"type": "redis", "url": "redis://..."}``, ``engine={"type": faye.Redis, ...}``
or ``engine="redis://..."`` select it; see docs/redis.md. :class:`Publisher` and
:class:`SyncPublisher` publish into such a fleet from processes that run no server.
"""

from __future__ import annotations

import faye.redis.dependencies  # noqa: F401  (a clear error without the [redis] extra)
from faye.redis.engine import RedisEngine
from faye.redis.gc import collect_garbage
from faye.redis.keys import Keys
from faye.redis.options import RedisOptions, SSLOptions
from faye.redis.publisher import ChannelError, Publisher, PublishError
from faye.redis.sync_publisher import SyncPublisher

Redis = RedisEngine

__all__ = [
    "ChannelError",
    "Keys",
    "PublishError",
    "Publisher",
    "Redis",
    "RedisEngine",
    "RedisOptions",
    "SSLOptions",
    "SyncPublisher",
    "collect_garbage",
]

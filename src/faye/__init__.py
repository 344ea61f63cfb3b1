"""faye: a Faye-compatible Bayeux server for ASGI, with memory and Redis engines."""

from __future__ import annotations

from typing import Any

from faye.adapter import ASGIAdapter
from faye.client import BayeuxError, Client, LongPollingTransport
from faye.engine import Engine, EngineError
from faye.engines.memory import MemoryEngine

__version__ = "0.1.0"

__all__ = [
    "ASGIAdapter",
    "BayeuxError",
    "Client",
    "Engine",
    "EngineError",
    "LongPollingTransport",
    "MemoryEngine",
    "Redis",
    "RedisEngine",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The Redis engine pulls in redis-py; load it only when asked for.
    if name in ("Redis", "RedisEngine"):
        from faye.redis import RedisEngine  # type: ignore[import-not-found, unused-ignore]

        return RedisEngine
    raise AttributeError(name)

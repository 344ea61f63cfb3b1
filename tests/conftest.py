from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.engines import EngineKit
from tests.support.live_server import LiveServer
from tests.support.redis_cluster import ClusterTopology, SentinelTopology, running
from tests.support.redis_server import RedisServer, redis_available


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the whole run (never the machine's 6379)."""
    if not redis_available():
        pytest.skip("redis-server is not installed")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


def _redis_engine_importable() -> bool:
    try:
        import faye.redis  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterTopology]:
    """A private 6-node Redis Cluster (3 masters, 3 replicas) for the whole run."""
    with running(ClusterTopology()) as topology:
        yield topology


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelTopology]:
    """A private master, replica and 3 Sentinels for the whole run."""
    with running(SentinelTopology()) as topology:
        yield topology


ENGINE_KINDS = [
    "memory",
    "redis",
    "redis-cluster",
    "redis-sentinel",
    "redis-layout2",
    "redis-cluster-layout2",
    "redis-sentinel-layout2",
]


def _redis_url(request: pytest.FixtureRequest, kind: str) -> str:
    """The URL of the private Redis topology an engine kind runs on."""
    topology = kind.removesuffix("-layout2")
    fixture = {
        "redis": "redis_server",
        "redis-cluster": "redis_cluster",
        "redis-sentinel": "redis_sentinel",
    }[topology]
    return str(request.getfixturevalue(fixture).url)


def _layout(kind: str) -> int:
    """``-layout2`` kinds run the Redis engine on key layout 2 (the ``layout`` option)."""
    return 2 if kind.endswith("-layout2") else 1


@pytest.fixture(params=ENGINE_KINDS)
async def engines(request: pytest.FixtureRequest) -> AsyncIterator[EngineKit]:
    """The same contract suite runs against every engine."""
    kind = request.param
    if kind == "memory":
        kit = EngineKit("memory")
    else:
        if not _redis_engine_importable():
            pytest.skip("faye.redis is not built yet")
        kit = EngineKit(kind, _redis_url(request, kind), layout=_layout(kind))
    try:
        yield kit
    finally:
        await kit.close()


@pytest.fixture
def live(adapter: Any) -> Iterator[LiveServer]:
    """The module's ``adapter`` fixture served by uvicorn on a loopback port."""
    server = LiveServer(adapter).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base, timeout=10) as client:
        yield client


@pytest.fixture(params=ENGINE_KINDS)
def engine_spec(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """An ``ASGIAdapter(engine=...)`` value for each engine kind (None: memory), each in
    a namespace of its own."""
    if request.param == "memory":
        return None
    if not _redis_engine_importable():
        pytest.skip("faye.redis is not built yet")
    url = _redis_url(request, request.param)
    return {
        "type": "redis",
        "url": url,
        "namespace": f"events-{uuid.uuid4().hex[:10]}",
        "log_level": "silent",
        **({"layout": 2} if _layout(request.param) == 2 else {}),
    }

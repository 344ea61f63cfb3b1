"""``/healthz`` and ``/readyz`` on the memory engine and on Redis, Redis stopped included."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from faye import ASGIAdapter
from tests.support.live_server import LiveServer
from tests.support.processes import FayeServer
from tests.support.redis_server import RedisServer, redis_available

MOUNT = "/faye"


async def test_probes_on_the_memory_engine() -> None:
    server = LiveServer(ASGIAdapter(mount=MOUNT, strict_origin=True)).start()
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
            alive = await http.get(f"{MOUNT}/healthz")
            assert (alive.status_code, alive.text) == (200, "ok\n")
            ready = await http.get(f"{MOUNT}/readyz")
            assert (ready.status_code, ready.text) == (200, "ready\n")
            assert (await http.head(f"{MOUNT}/readyz")).status_code == 200
            # Probes are not Bayeux requests: a POST there is the endpoint's business.
            assert (await http.post(f"{MOUNT}/healthz", content=b"")).status_code == 403
    finally:
        server.stop()


async def test_probe_paths_are_configurable() -> None:
    adapter = ASGIAdapter(mount=MOUNT, health_path="/livez", ready_path=None)
    server = LiveServer(adapter).start()
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
            assert (await http.get("/livez")).status_code == 200
            assert (await http.get(f"{MOUNT}/healthz")).status_code == 400  # a Bayeux GET
            assert (await http.get(f"{MOUNT}/readyz")).status_code == 400
    finally:
        server.stop()


@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")
async def test_readiness_follows_redis() -> None:
    redis = RedisServer().start()
    adapter = ASGIAdapter(mount=MOUNT, engine={"type": "redis", "url": redis.url}, ready_timeout=1)
    server = LiveServer(adapter).start()
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
            assert (await http.get(f"{MOUNT}/readyz")).status_code == 200
            redis.stop()
            started = time.perf_counter()
            down = await http.get(f"{MOUNT}/readyz")
            assert down.status_code == 503, down.text
            assert down.text.startswith("engine unreachable")
            assert time.perf_counter() - started < 3
            # Still alive: only readiness depends on Redis.
            assert (await http.get(f"{MOUNT}/healthz")).status_code == 200
            redis.start()
            deadline = time.monotonic() + 10
            while (await http.get(f"{MOUNT}/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "never ready again"
                await asyncio.sleep(0.1)
    finally:
        server.stop()
        redis.cleanup()


async def test_faye_serve_probe_flags() -> None:
    server = FayeServer("--health-path", "/healthz", "--log-level", "warning").start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            base = f"http://127.0.0.1:{server.port}"
            assert (await http.get(f"{base}/healthz")).status_code == 200
            assert (await http.get(f"{base}/faye/readyz")).status_code == 200
    finally:
        server.stop()

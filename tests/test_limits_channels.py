"""Channel-name limits: the many-segment publish is refused in milliseconds and keeps nothing.

The crafted publish (``'/a' * 50000``, about 100 KB) used to be expanded into every
prefix of the name: quadratic time and memory, the event loop blocked for seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from faye import ASGIAdapter
from faye.protocol import channels, meta
from faye.protocol.channels import ChannelLimits, expand, expand_cache
from tests.support.bayeux import exchange, post, ws_handshake
from tests.support.live_server import LiveServer
from tests.support.processes import FayeServer
from tests.support.redis_server import RedisServer

MOUNT = "/faye"
CRAFTED = "/a" * 50_000


def rss_bytes() -> int:
    """This process's resident memory (the live server runs in a thread of it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# -- the pure rules -----------------------------------------------------------------------


def test_caps_are_inclusive() -> None:
    limits = ChannelLimits(max_length=20, max_segments=3)
    assert limits.allow("/a/b/c")
    assert not limits.allow("/a/b/c/d")
    assert limits.allow("/" + "x" * 19)
    assert not limits.allow("/" + "x" * 20)
    assert not limits.allow(None)


def test_publish_past_the_caps_is_405() -> None:
    reply: dict[str, Any] = {"successful": True}
    assert not meta.check_publish({"channel": CRAFTED, "data": 1}, reply)
    assert reply["error"] == f"405:{CRAFTED}:Invalid channel"


def test_subscribe_past_the_caps_is_405_and_stops_there() -> None:
    reply: dict[str, Any] = {"successful": True}
    accepted = meta.check_channels(["/ok", CRAFTED, "/later"], reply, local=False)
    assert accepted == ["/ok"]
    assert reply["error"] == f"405:{CRAFTED}:Invalid channel"


def test_the_default_caps_allow_ordinary_names() -> None:
    deep = "/" + "/".join(f"s{i}" for i in range(channels.DEFAULT_MAX_SEGMENTS))
    assert ChannelLimits().allow(deep)
    assert not ChannelLimits().allow(deep + "/one-more")


def test_expand_cache_is_bounded_in_bytes() -> None:
    expand_cache.clear()
    limits = ChannelLimits()
    # Distinct names at the caps: each expansion is as large as the caps allow.
    segment = "x" * (limits.max_length // limits.max_segments - 1)
    for i in range(3000):
        name = f"/{i:06d}" + ("/" + segment) * (limits.max_segments - 1)
        assert limits.allow(name), len(name)
        assert expand(name)[1] == name
    assert 0 < expand_cache.size <= channels.EXPAND_CACHE_BYTES
    expand_cache.clear()


def test_expand_is_fast_at_the_caps() -> None:
    name = "/" + "/".join(["abcdefghijklmnopqrstuvwxyz012"] * 32)
    assert ChannelLimits().allow(name)
    start = time.perf_counter()
    for i in range(2000):
        expand(f"{name[:-4]}{i:04d}")
    assert time.perf_counter() - start < 2.0


# -- over real sockets --------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def adapter(request: pytest.FixtureRequest) -> Iterator[ASGIAdapter]:
    if request.param == "memory":
        yield ASGIAdapter(mount=MOUNT, timeout=2)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    yield ASGIAdapter(mount=MOUNT, timeout=2, engine={"type": "redis", "url": server.url})


async def handshake(http: httpx.AsyncClient) -> str:
    (reply,) = await post(
        http,
        MOUNT,
        {
            "channel": "/meta/handshake",
            "version": "1.0",
            "supportedConnectionTypes": ["long-polling"],
        },
    )
    client_id: str = reply["clientId"]
    return client_id


@pytest.fixture
async def victim_latencies(http: httpx.AsyncClient) -> AsyncIterator[list[float]]:
    """Another client publishing in a loop: its round trips, recorded during the test."""
    latencies: list[float] = []
    client_id = await handshake(http)

    async def loop() -> None:
        while True:
            start = time.perf_counter()
            (reply,) = await post(
                http, MOUNT, {"channel": "/victim", "data": 1, "clientId": client_id}
            )
            assert reply["successful"], reply
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.01)

    task = asyncio.ensure_future(loop())
    await asyncio.sleep(0.1)
    try:
        yield latencies
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_crafted_publish_over_http(
    live: LiveServer, http: httpx.AsyncClient, victim_latencies: list[float]
) -> None:
    body = json.dumps([{"channel": CRAFTED, "data": 1}])
    async with httpx.AsyncClient(base_url=live.base, timeout=10) as attacker:
        await attacker.post(MOUNT, content=body, headers={"content-type": "application/json"})
        before = rss_bytes()
        victim_latencies.clear()
        started = time.perf_counter()
        for _ in range(20):
            t0 = time.perf_counter()
            response = await attacker.post(
                MOUNT, content=body, headers={"content-type": "application/json"}
            )
            assert time.perf_counter() - t0 < 1.0
            (reply,) = response.json()
            assert reply["successful"] is False
            assert reply["error"] == f"405:{CRAFTED}:Invalid channel"
        elapsed = time.perf_counter() - started
    grown = rss_bytes() - before
    await asyncio.sleep(0.1)  # the victim's round trip under way at the end completes
    assert elapsed < 5, elapsed
    assert grown < 20 * 1024 * 1024, grown
    assert CRAFTED not in expand_cache._entries
    assert victim_latencies, "the other client was starved"
    assert max(victim_latencies) < 1.0, max(victim_latencies)


async def test_crafted_publish_and_subscribe_over_websocket(
    live: LiveServer, victim_latencies: list[float]
) -> None:
    async with connect(f"{live.ws_base}{MOUNT}", max_size=None) as ws:
        client_id = await ws_handshake(ws)
        victim_latencies.clear()
        for message in 10 * (
            {"channel": CRAFTED, "data": 1, "clientId": client_id},
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": CRAFTED},
            {"channel": "/meta/unsubscribe", "clientId": client_id, "subscription": CRAFTED},
        ):
            t0 = time.perf_counter()
            (reply,) = await exchange(ws, [message])
            assert time.perf_counter() - t0 < 1.0
            assert reply["successful"] is False
            assert reply["error"] == f"405:{CRAFTED}:Invalid channel"
        # Still a working client afterwards.
        (ok,) = await exchange(ws, [{"channel": "/fine", "data": 2, "clientId": client_id}])
        assert ok["successful"] is True
    await asyncio.sleep(0.1)  # the victim's round trip under way at the end completes
    assert victim_latencies
    assert max(victim_latencies) < 1.0, max(victim_latencies)


def test_adapter_options_set_the_caps() -> None:
    small = ASGIAdapter(mount=MOUNT, max_channel_length=10, max_channel_segments=2)
    assert small.limits.channels == ChannelLimits(10, 2)
    with pytest.raises(ValueError):
        ASGIAdapter(mount=MOUNT, max_channel_segments=0)


async def test_faye_serve_flags_set_the_caps() -> None:
    server = FayeServer("--max-channel-segments", "3", "--max-channel-length", "40").start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            replies = await post(
                http,
                server.url,
                [
                    {"channel": "/a/b/c", "data": 1},
                    {"channel": "/a/b/c/d", "data": 1},
                    {"channel": "/" + "x" * 40, "data": 1},
                ],
            )
    finally:
        server.stop()
    outcome = {r["channel"]: r.get("error") for r in replies}
    assert outcome == {
        "/a/b/c": None,
        "/a/b/c/d": "405:/a/b/c/d:Invalid channel",
        "/" + "x" * 40: f"405:/{'x' * 40}:Invalid channel",
    }

"""Per-client caps over real sockets: subscriptions, queue, publish and handshake rates,
and the byte cap on a slow WebSocket reader's outbox."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from faye import ASGIAdapter
from faye.limits import EXEMPT_SEEN_MAX, Limits
from tests.support.bayeux import connect_msg, exchange, post, ws_handshake
from tests.support.live_server import LiveServer
from tests.support.processes import FayeServer

MOUNT = "/faye"
HANDSHAKE = {
    "channel": "/meta/handshake",
    "version": "1.0",
    "supportedConnectionTypes": ["long-polling"],
}


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[tuple[ASGIAdapter, LiveServer]]:
    adapter = ASGIAdapter(mount=MOUNT, timeout=2, **getattr(request, "param", {}))
    server = LiveServer(adapter).start()
    try:
        yield adapter, server
    finally:
        server.stop()


async def handshake(http: httpx.AsyncClient, url: str = MOUNT) -> str:
    (reply,) = await post(http, url, HANDSHAKE)
    assert reply["successful"], reply
    client_id: str = reply["clientId"]
    return client_id


def subscribe_msg(client_id: str, channels: Any) -> dict[str, Any]:
    return {"channel": "/meta/subscribe", "clientId": client_id, "subscription": channels}


def poll_connect(client_id: str) -> dict[str, Any]:
    return {
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": "long-polling",
        "advice": {"timeout": 0},
    }


@pytest.mark.parametrize("served", [{"max_subscriptions": 5}], indirect=True)
async def test_subscriptions_past_the_cap_are_refused(
    served: tuple[ASGIAdapter, LiveServer],
) -> None:
    adapter, server = served
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        client_id = await handshake(http)
        wanted = [f"/c{i}" for i in range(7)]
        (reply,) = await post(http, MOUNT, subscribe_msg(client_id, wanted))
        assert reply["successful"] is False
        assert reply["error"] == "429:/c5:Too many subscriptions"
        assert adapter.proxy.subscription_count(client_id) == 5
        # Repeating a subscription it holds is not a new one, but the cap counts first.
        (again,) = await post(http, MOUNT, subscribe_msg(client_id, "/c6"))
        assert again["error"] == "429:/c6:Too many subscriptions"
        # Unsubscribing makes room.
        await post(
            http,
            MOUNT,
            {"channel": "/meta/unsubscribe", "clientId": client_id, "subscription": "/c0"},
        )
        (room,) = await post(http, MOUNT, subscribe_msg(client_id, "/c6"))
        assert room["successful"] is True
        # The first five (less /c0) and /c6 receive; /c5 was never subscribed.
        await post(http, MOUNT, [{"channel": c, "data": c} for c in ("/c0", "/c4", "/c5", "/c6")])
        replies = await post(http, MOUNT, poll_connect(client_id))
        got = sorted(m["data"] for m in replies if "data" in m)
        assert got == ["/c4", "/c6"]
        # Another client has its own cap.
        other = await handshake(http)
        (fine,) = await post(http, MOUNT, subscribe_msg(other, wanted[:5]))
        assert fine["successful"] is True


@pytest.mark.parametrize("served", [{"engine": {"type": "memory", "max_queue": 10}}], indirect=True)
async def test_memory_engine_queue_keeps_the_newest(served: tuple[ASGIAdapter, LiveServer]) -> None:
    _, server = served
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        client_id = await handshake(http)
        await post(http, MOUNT, subscribe_msg(client_id, "/q"))
        await post(http, MOUNT, [{"channel": "/q", "data": n} for n in range(25)])
        replies = await post(http, MOUNT, poll_connect(client_id))
        assert [m["data"] for m in replies if "data" in m] == list(range(15, 25))


def test_memory_engine_rejects_a_bad_max_queue() -> None:
    with pytest.raises(ValueError):
        ASGIAdapter(engine={"type": "memory", "max_queue": 0})


@pytest.mark.parametrize("served", [{"publish_rate": 10, "publish_burst": 20}], indirect=True)
async def test_publish_rate_per_client(served: tuple[ASGIAdapter, LiveServer]) -> None:
    _, server = served
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        flooder = await handshake(http)
        polite = await handshake(http)
        replies = await post(
            http, MOUNT, [{"channel": "/r", "data": n, "clientId": flooder} for n in range(50)]
        )
        outcomes = [r["successful"] for r in replies]
        assert outcomes.count(True) == 20
        refused = [r for r in replies if not r["successful"]]
        assert {r["error"] for r in refused} == {"429:/r:Publish rate exceeded"}
        # Another client is not affected, and meta messages are never counted.
        (ok,) = await post(http, MOUNT, {"channel": "/r", "data": 1, "clientId": polite})
        assert ok["successful"] is True
        (connect_reply,) = await post(http, MOUNT, poll_connect(flooder))
        assert connect_reply["successful"] is True
        await asyncio.sleep(0.35)  # refills at 10 per second
        (later,) = await post(http, MOUNT, {"channel": "/r", "data": 1, "clientId": flooder})
        assert later["successful"] is True


@pytest.mark.parametrize(
    "served", [{"handshake_rate": 2, "handshake_burst": 5, "handshake_exempt": ()}], indirect=True
)
async def test_handshake_rate_per_address(served: tuple[ASGIAdapter, LiveServer]) -> None:
    adapter, server = served
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        replies = await post(http, MOUNT, [HANDSHAKE] * 12)
        assert [r["successful"] for r in replies] == [True] * 5 + [False] * 7
        refused = replies[-1]
        assert refused["error"] == "429::Handshake rate exceeded"
        assert "clientId" not in refused
        assert refused["advice"]["reconnect"] == "handshake"
        # The in-process client is the application: never limited.
        await adapter.get_client().publish("/x", {"n": 1})
        await asyncio.sleep(0.6)
        (again,) = await post(http, MOUNT, HANDSHAKE)
        assert again["successful"] is True


@pytest.mark.parametrize("served", [{"handshake_rate": 2, "handshake_burst": 5}], indirect=True)
async def test_loopback_handshakes_are_exempt_by_default(
    served: tuple[ASGIAdapter, LiveServer],
) -> None:
    _, server = served
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        replies = await post(http, MOUNT, [HANDSHAKE] * 12)
    assert all(r["successful"] for r in replies)


@pytest.mark.parametrize("served", [{"max_outbox_bytes": 1 << 20}], indirect=True)
async def test_slow_websocket_reader_is_dropped_and_memory_stays_bounded(
    served: tuple[ASGIAdapter, LiveServer],
) -> None:
    adapter, server = served
    url = server.ws_base + MOUNT
    payload = "x" * 100_000
    # max_queue=1: the client library stops reading the socket once one frame waits.
    async with connect(url, max_queue=1, max_size=None) as slow, connect(url) as healthy:
        slow_id = await ws_handshake(slow)
        await exchange(slow, [subscribe_msg(slow_id, "/flood"), connect_msg(slow_id)])
        await slow.send(json.dumps([connect_msg(slow_id)]))
        healthy_id = await ws_handshake(healthy)
        before = rss_bytes()
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
            started = time.perf_counter()
            for start in range(0, 500, 10):  # 50 MB of deliveries for the slow reader
                batch = [
                    {"channel": "/flood", "data": [n, payload]} for n in range(start, start + 10)
                ]
                assert (await http.post(MOUNT, json=batch)).status_code == 200
                # The healthy client is served meanwhile.
                t0 = time.perf_counter()
                (reply,) = await exchange(
                    healthy, [{"channel": "/ok", "data": 1, "clientId": healthy_id}]
                )
                assert reply["successful"] is True
                assert time.perf_counter() - t0 < 1.0
            elapsed = time.perf_counter() - started
        grown = rss_bytes() - before
        assert grown < 40 * 1024 * 1024, grown
        assert elapsed < 30, elapsed
        await asyncio.sleep(0.2)
        # Dropped: it must handshake again.
        assert not await adapter.proxy.client_exists(slow_id)


async def test_faye_serve_flags_set_the_caps() -> None:
    server = FayeServer(
        "--max-subscriptions", "2",
        "--max-client-queue", "3",
        "--handshake-rate", "0.1",
        "--handshake-burst", "3",
        "--handshake-exempt", "",
        "--publish-rate", "0.1",
        "--publish-burst", "6",
        "--log-level", "warning",
    ).start()  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            handshakes = await post(http, server.url, [HANDSHAKE] * 4)
            assert [r["successful"] for r in handshakes] == [True, True, True, False]
            client_id = handshakes[0]["clientId"]
            (sub,) = await post(http, server.url, subscribe_msg(client_id, ["/a", "/b", "/c"]))
            assert sub["error"] == "429:/c:Too many subscriptions"
            publishes = await post(
                http, server.url, [{"channel": "/a", "data": n} for n in range(7)]
            )
            assert [r["successful"] for r in publishes].count(True) == 6
            replies = await post(http, server.url, poll_connect(client_id))
            assert [m["data"] for m in replies if "data" in m] == [3, 4, 5]
    finally:
        server.stop()


@pytest.mark.parametrize("served", [{"max_outbox_bytes": 256 * 1024}], indirect=True)
async def test_slow_eventsource_reader_is_dropped(served: tuple[ASGIAdapter, LiveServer]) -> None:
    adapter, server = served
    payload = "x" * 100_000
    async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
        (reply,) = await post(
            http, MOUNT, {**HANDSHAKE, "supportedConnectionTypes": ["eventsource"]}
        )
        client_id = reply["clientId"]
        await post(http, MOUNT, subscribe_msg(client_id, "/flood"))
        async with (
            httpx.AsyncClient(base_url=server.base, timeout=10) as stream_client,
            stream_client.stream(
                "GET", f"{MOUNT}/{client_id}", headers={"accept": "text/event-stream"}
            ) as stream,
        ):
            assert stream.status_code == 200  # and never read from again
            before = rss_bytes()
            for start in range(0, 300, 10):  # 30 MB for a reader that reads nothing
                batch = [
                    {"channel": "/flood", "data": [n, payload]} for n in range(start, start + 10)
                ]
                assert (await http.post(MOUNT, json=batch)).status_code == 200
                if not await adapter.proxy.client_exists(client_id):
                    break
            grown = rss_bytes() - before
            await asyncio.sleep(0.2)
            assert not await adapter.proxy.client_exists(client_id)
            assert grown < 30 * 1024 * 1024, grown


def test_exempt_addresses_are_remembered_within_a_bound() -> None:
    limits = Limits(handshake_exempt=("10.0.0.0/8",))
    assert limits.exempt("10.1.2.3") and limits.exempt("10.1.2.3")
    assert not limits.exempt("192.0.2.1") and not limits.exempt("192.0.2.1")
    assert not limits.exempt("not an address")
    for n in range(EXEMPT_SEEN_MAX + 10):
        assert limits.exempt(f"10.0.{n // 256}.{n % 256}")
    assert len(limits._exempt_seen) <= EXEMPT_SEEN_MAX
    assert not limits.exempt("192.0.2.1")

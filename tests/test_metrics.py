"""Prometheus metrics at ``<mount>/metrics``: counts that follow real traffic, and a token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from faye import ASGIAdapter
from tests.support.bayeux import post, receive, subscribed_socket
from tests.support.live_server import LiveServer
from tests.support.metrics import samples
from tests.support.processes import FayeServer

MOUNT = "/faye"
TOKEN = "scrape-me"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served() -> Iterator[LiveServer]:
    adapter = ASGIAdapter(mount=MOUNT, timeout=2, metrics_path="metrics", metrics_token=TOKEN)
    server = LiveServer(adapter).start()
    try:
        yield server
    finally:
        server.stop()


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get(f"{MOUNT}/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_metrics_follow_traffic(served: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=served.base, timeout=10) as http:
        assert (await http.get(f"{MOUNT}/metrics")).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert (await http.get(f"{MOUNT}/metrics", headers=wrong)).status_code == 401
        before = await scrape(http)
        assert before[("faye_connections", (("transport", "websocket"),))] == 0
        async with connect(served.ws_base + MOUNT) as ws:
            client_id = await subscribed_socket(ws, "/m")
            for n in range(3):
                (reply,) = await post(http, MOUNT, {"channel": "/m", "data": n})
                assert reply["successful"]
            seen = 0
            while seen < 3:  # the deliveries are written before we look at the counters
                seen += sum(1 for m in await receive(ws) if m.get("channel") == "/m")
            await post(http, MOUNT, {"channel": "/a" * 100, "data": 1})  # over the caps
            during = await scrape(http)
            assert during[("faye_connections", (("transport", "websocket"),))] == 1
            assert during[("faye_connected_clients", ())] >= 1
            assert during[("faye_subscriptions", ())] == 1
            assert client_id
    after = during
    assert after[("faye_handshakes_total", ())] - before[("faye_handshakes_total", ())] == 1
    assert after[("faye_subscribes_total", ())] == 1
    assert after[("faye_publishes_total", ())] == 3
    assert after[("faye_deliveries_total", ())] >= 3
    assert after[("faye_limit_hits_total", (("limit", "channel"),))] == 1
    assert ("python_gc_collections_total", (("generation", "0"),)) in after


async def test_faye_serve_metrics_flags() -> None:
    server = FayeServer("--metrics-path", "/metrics", "--log-level", "warning").start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"http://127.0.0.1:{server.port}/metrics")
            assert response.status_code == 200
            assert "faye_handshakes_total" in response.text
            assert (await http.get(f"{server.url}/metrics")).status_code == 400  # off there
    finally:
        server.stop()


def test_metrics_are_off_by_default() -> None:
    assert ASGIAdapter(mount=MOUNT).metrics_path is None

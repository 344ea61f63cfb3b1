"""One events source (faye.events.Monitor): Bayeux events, engine counters and limit
hits, read the same by listeners and by /metrics, against a real Redis-backed server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from faye import ASGIAdapter
from faye.events import Monitor
from tests.support.bayeux import polling_client, post
from tests.support.live_server import LiveServer
from tests.support.metrics import samples
from tests.support.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="needs redis-server")

MOUNT = "/faye"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


async def _metrics(http: httpx.AsyncClient) -> dict[str, float]:
    response = await http.get(f"{MOUNT}/metrics")
    assert response.status_code == 200
    return {name: value for (name, labels), value in samples(response.text).items() if not labels}


def test_a_monitor_counts_every_event_it_publishes() -> None:
    monitor = Monitor()
    heard: list[tuple[Any, ...]] = []
    monitor.bind("publish", lambda *args: heard.append(args))
    monitor.trigger("publish", "c1", "/a", 1)
    monitor.trigger("handshake", "c2")
    monitor.count("redis_round_trips", 3)
    assert heard == [("c1", "/a", 1)]
    assert monitor.counts == {"publish": 1, "handshake": 1, "redis_round_trips": 3}


async def test_metrics_and_listeners_read_one_source(redis_server: RedisServer) -> None:
    adapter = ASGIAdapter(
        mount=MOUNT,
        timeout=0.5,
        engine={"type": "redis", "url": redis_server.url, "gc_interval": 0.2},
        metrics_path="metrics",
    )
    heard: dict[str, int] = {}

    def listen(event: str) -> None:
        adapter.bind(event, lambda *_: heard.__setitem__(event, heard.get(event, 0) + 1))

    for event in ("handshake", "subscribe", "publish", "deliver", "close"):
        listen(event)
    served = LiveServer(adapter).start()
    try:
        async with httpx.AsyncClient(base_url=served.base, timeout=10) as http:
            before = await _metrics(http)
            client_id = await polling_client(http, MOUNT, "/m")
            (reply,) = await post(http, MOUNT, {"channel": "/m", "data": 1})
            assert reply["successful"]
            connect = {
                "channel": "/meta/connect",
                "clientId": client_id,
                "connectionType": "long-polling",
                "advice": {"timeout": 0},
            }
            replies = await post(http, MOUNT, connect)
            assert [m.get("data") for m in replies if m["channel"] == "/m"] == [1]
            # The client never connects again: a collection destroys it (timeout 0.5 s).
            for _ in range(100):
                if heard.get("close"):
                    break
                await asyncio.sleep(0.05)
            after = await _metrics(http)
    finally:
        served.stop()

    assert heard == {"handshake": 1, "subscribe": 1, "publish": 1, "deliver": 1, "close": 1}
    assert after["faye_handshakes_total"] - before["faye_handshakes_total"] == 1
    assert after["faye_publishes_total"] - before["faye_publishes_total"] == 1
    assert after["faye_deliveries_total"] - before["faye_deliveries_total"] == 1
    assert after["faye_client_closes_total"] - before["faye_client_closes_total"] == 1
    assert after["faye_redis_round_trips_total"] > before["faye_redis_round_trips_total"] + 4
    assert after["faye_gc_runs_total"] >= 1
    assert after["faye_gc_clients_collected_total"] == 1
    assert after["faye_redis_errors_total"] == 0


async def test_redis_errors_are_counted(redis_server: RedisServer) -> None:
    adapter = ASGIAdapter(
        mount=MOUNT,
        timeout=5,
        engine={"type": "redis", "url": redis_server.url, "max_retries": 1},
        metrics_path="metrics",
    )
    served = LiveServer(adapter).start()
    try:
        async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
            handshake = {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            }
            (ok,) = await post(http, MOUNT, handshake)
            assert ok["successful"]
            assert (await _metrics(http))["faye_redis_errors_total"] == 0
            redis_server.stop()  # for real: the next call finds no Redis
            (failed,) = await post(http, MOUNT, handshake)
            assert not failed["successful"]
            assert (await _metrics(http))["faye_redis_errors_total"] >= 1
    finally:
        served.stop()

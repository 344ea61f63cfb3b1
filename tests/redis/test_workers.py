"""``faye serve --workers N``: several processes on one port, sharing clients through Redis."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import redis

from faye.redis.keys import Keys
from tests.support.processes import ROOT, FayeServer
from tests.support.redis_server import RedisServer


def post(http: httpx.Client, url: str, *messages: dict[str, Any]) -> list[dict[str, Any]]:
    response = http.post(url, json=list(messages))
    assert response.status_code == 200, response.text
    replies: list[dict[str, Any]] = response.json()
    return replies


def registered_servers(url: str, namespace: str, expected: int) -> int:
    """Engines that have announced themselves in Redis (one per worker process)."""
    store = redis.Redis.from_url(url)
    key = Keys(namespace).servers(0)
    try:
        deadline = time.monotonic() + 20
        while (count := store.zcard(key)) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return int(count)
    finally:
        store.close()


def test_two_workers_share_one_port_and_their_clients(redis_server: RedisServer) -> None:
    namespace = f"workers-{uuid.uuid4().hex[:8]}"
    server = FayeServer(
        "--workers", "2", "--redis", redis_server.url, "--namespace", namespace,
        "--timeout", "5", "--log-level", "warning",
    ).start()  # fmt: skip
    try:
        assert registered_servers(redis_server.url, namespace, 2) == 2

        # A new connection per request: each may reach either worker, and
        # every request must find the client whichever worker holds it.
        def fresh() -> httpx.Client:
            return httpx.Client(timeout=10, headers={"connection": "close"})

        with fresh() as http:
            (hello,) = post(
                http,
                server.url,
                {
                    "channel": "/meta/handshake",
                    "version": "1.0",
                    "supportedConnectionTypes": ["long-polling"],
                },
            )
        client_id = hello["clientId"]
        with fresh() as http:
            post(http, server.url, {"channel": "/meta/subscribe", "clientId": client_id,
                                    "subscription": "/work"})  # fmt: skip
        for n in range(10):
            with fresh() as http:
                (ack,) = post(http, server.url, {"channel": "/work", "data": n})
                assert ack["successful"], ack
        received: list[Any] = []
        while len(received) < 10:
            with fresh() as http:
                replies = post(
                    http,
                    server.url,
                    {"channel": "/meta/connect", "clientId": client_id,
                     "connectionType": "long-polling"},
                )  # fmt: skip
            assert all(r["successful"] for r in replies if r["channel"] == "/meta/connect")
            received += [r["data"] for r in replies if r["channel"] == "/work"]
        assert received == list(range(10))
    finally:
        server.stop()


def test_memory_engine_refuses_several_workers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faye", "serve", "--workers", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers needs the Redis engine (--redis URL)" in result.stderr

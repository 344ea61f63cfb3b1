"""examples/fastapi against real sockets: the app under uvicorn on a private Redis, its
subscriber script and a WebSocket client subscribed, the view and the worker publishing."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.support.examples import run, serving, start
from tests.support.redis_server import RedisServer, redis_available, running_redis
from tests.support.subscribers import WsSubscriber

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


async def test_the_view_and_the_worker_publish_to_subscribers(redis_server: RedisServer) -> None:
    with serving("fastapi", "app:app", redis_server.url) as base:
        ws_url = base.replace("http://", "ws://") + "/faye"
        printer = start(
            "fastapi", ["subscriber.py", "/orders/**", f"{base}/faye"], redis_server.url
        )
        try:
            assert await asyncio.to_thread(read_line, printer) == "READY"
            async with WsSubscriber(ws_url, "/orders/*") as ws, httpx.AsyncClient() as http:
                created = await http.post(f"{base}/orders", json={"item": "tea", "quantity": 2})
                assert created.status_code == 201, created.text
                assert created.json() == {"item": "tea", "quantity": 2}
                # FastAPI's validation answers; nothing is published.
                refused = await http.post(f"{base}/orders", json={"item": "", "quantity": 0})
                assert refused.status_code == 422
                worker = await asyncio.to_thread(
                    run, "fastapi", ["worker.py", "7", "8"], redis_server.url
                )
                assert worker.returncode == 0, worker.stderr
                expected = [
                    {"item": "tea", "quantity": 2},
                    {"id": 7, "status": "shipped"},
                    {"id": 8, "status": "shipped"},
                ]
                assert await ws.wait_for(3) == expected
                assert [m["channel"] for m in ws.messages] == [
                    "/orders/new",
                    "/orders/7",
                    "/orders/8",
                ]
            printed = [json.loads(await asyncio.to_thread(read_line, printer)) for _ in range(3)]
            assert printed == expected
        finally:
            printer.terminate()
            printer.communicate(timeout=10)

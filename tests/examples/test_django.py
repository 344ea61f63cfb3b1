"""examples/django against real sockets: the project under uvicorn on a private Redis, a
WebSocket subscriber on its /faye, the sync view and the management command publishing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.support.examples import run, serving
from tests.support.redis_server import RedisServer, free_port, redis_available, running_redis
from tests.support.subscribers import WsSubscriber

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")

APP = "shop.asgi:application"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


async def test_the_view_and_the_worker_publish_to_subscribers(redis_server: RedisServer) -> None:
    with serving("django", APP, redis_server.url) as base:
        ws_url = base.replace("http://", "ws://") + "/faye"
        async with WsSubscriber(ws_url, "/orders/**") as ws, httpx.AsyncClient() as http:
            created = await http.post(f"{base}/orders/", json={"item": "tea", "quantity": 2})
            assert created.status_code == 201, created.text
            assert created.json() == {"item": "tea", "quantity": 2}
            refused = await http.post(f"{base}/orders/", content=b"not json")
            assert refused.status_code == 400
            assert (await http.get(f"{base}/orders/")).status_code == 405
            shipped = await asyncio.to_thread(
                run, "django", ["manage.py", "ship", "7", "8"], redis_server.url
            )
            assert shipped.returncode == 0, shipped.stderr
            assert shipped.stdout.splitlines() == ["order 7 shipped", "order 8 shipped"]
            assert await ws.wait_for(3) == [
                {"item": "tea", "quantity": 2},
                {"id": 7, "status": "shipped"},
                {"id": 8, "status": "shipped"},
            ]
            assert [m["channel"] for m in ws.messages] == ["/orders/new", "/orders/7", "/orders/8"]


async def test_the_view_answers_503_when_redis_is_unreachable() -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with serving("django", APP, nowhere) as base:
        async with httpx.AsyncClient(timeout=15) as http:
            reply = await http.post(f"{base}/orders/", json={"item": "tea"})
    assert reply.status_code == 503
    assert "unreachable" in reply.json()["error"]
    failed = await asyncio.to_thread(run, "django", ["manage.py", "ship", "7"], nowhere)
    assert failed.returncode != 0
    assert "PublishError" in failed.stderr

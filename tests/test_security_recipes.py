"""The authentication recipes of docs/security.md, run as written against a live server."""

from __future__ import annotations

import asyncio
import re
import sys
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faye import ASGIAdapter
from tests.support.bayeux import post
from tests.support.live_server import LiveServer
from tests.support.processes import FayeServer

DOCS = Path(__file__).resolve().parent.parent / "docs" / "security.md"
MOUNT = "/faye"


def recipes_source() -> str:
    text = DOCS.read_text()
    block = re.search(
        r"<!-- recipes:start -->\n```python\n(.*?)```\n<!-- recipes:end -->", text, re.S
    )
    assert block is not None, "the recipes block is missing from docs/security.md"
    return block.group(1)


@pytest.fixture(scope="module")
def recipes() -> types.ModuleType:
    module = types.ModuleType("security_recipes")
    exec(compile(recipes_source(), str(DOCS), "exec"), module.__dict__)
    return module


@pytest.fixture
def served(recipes: types.ModuleType) -> Iterator[tuple[ASGIAdapter, LiveServer]]:
    adapter = ASGIAdapter(mount=MOUNT, timeout=2, extensions=recipes.extensions())
    server = LiveServer(adapter).start()
    try:
        yield adapter, server
    finally:
        server.stop()


@pytest.fixture
async def http(served: tuple[ASGIAdapter, LiveServer]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served[1].base, timeout=10) as client:
        yield client


def handshake_msg(ext: Any = None) -> dict[str, Any]:
    message = {
        "channel": "/meta/handshake",
        "version": "1.0",
        "supportedConnectionTypes": ["long-polling"],
        "id": "h",
    }
    if ext is not None:
        message["ext"] = ext
    return message


async def login(http: httpx.AsyncClient, recipes: types.ModuleType, user: str) -> str:
    (reply,) = await post(http, MOUNT, handshake_msg({"token": recipes.sign(user)}))
    assert reply["successful"], reply
    client_id: str = reply["clientId"]
    return client_id


async def subscribe(http: httpx.AsyncClient, client_id: str, pattern: str) -> dict[str, Any]:
    (reply,) = await post(
        http,
        MOUNT,
        {"channel": "/meta/subscribe", "clientId": client_id, "subscription": pattern},
    )
    return reply


async def publish(http: httpx.AsyncClient, client_id: str, channel: str, data: Any) -> Any:
    (reply,) = await post(http, MOUNT, {"channel": channel, "clientId": client_id, "data": data})
    return reply


async def test_token_on_handshake(http: httpx.AsyncClient, recipes: types.ModuleType) -> None:
    for ext in (None, {"token": "alice.forged"}, {"token": None}, "text", ["token"]):
        (refused,) = await post(http, MOUNT, handshake_msg(ext))
        assert refused["successful"] is False
        assert refused["error"] == "401::Authentication required"
        assert "clientId" not in refused
    alice = await login(http, recipes, "alice")
    assert (await subscribe(http, alice, "/users/alice/inbox"))["successful"] is True
    # An id the server never bound (made up, or issued without a token) gets nowhere.
    stranger = "0" * 31
    assert (await publish(http, stranger, "/users/alice/inbox", 1))["error"].startswith("401")


async def test_channel_rules(http: httpx.AsyncClient, recipes: types.ModuleType) -> None:
    alice = await login(http, recipes, "alice")
    bob = await login(http, recipes, "bob")
    assert (await subscribe(http, alice, "/users/alice/**"))["successful"] is True
    assert (await subscribe(http, alice, "/news/*"))["successful"] is True
    for pattern in ("/users/bob/inbox", "/users/*", "/**"):
        reply = await subscribe(http, alice, pattern)
        assert reply["error"] == f"403:{pattern}:Forbidden channel"
    assert (await publish(http, alice, "/users/alice/notes", 1))["successful"] is True
    assert (await publish(http, alice, "/news/today", 1))["error"].startswith("403")
    assert (await publish(http, bob, "/users/alice/inbox", 1))["error"].startswith("403")


async def test_service_channels(
    served: tuple[ASGIAdapter, LiveServer], http: httpx.AsyncClient, recipes: types.ModuleType
) -> None:
    adapter, _ = served
    received: list[Any] = []
    await adapter.get_client().subscribe("/service/**", received.append)
    alice = await login(http, recipes, "alice")
    reply = await publish(http, alice, "/service/orders", {"item": 7, "from": "mallory"})
    assert reply["successful"] is True
    for _ in range(50):
        if received:
            break
        await asyncio.sleep(0.02)
    assert received == [{"from": "alice", "body": {"item": 7, "from": "mallory"}}]
    # Remote clients cannot listen in.
    assert (await subscribe(http, alice, "/service/orders"))["error"].startswith("403")


async def test_disconnect_unbinds(
    served: tuple[ASGIAdapter, LiveServer], http: httpx.AsyncClient, recipes: types.ModuleType
) -> None:
    alice = await login(http, recipes, "alice")
    await post(http, MOUNT, {"channel": "/meta/disconnect", "clientId": alice})
    await asyncio.sleep(0.05)
    assert (await publish(http, alice, "/users/alice/x", 1))["error"].startswith("401")


async def test_faye_serve_loads_the_recipes(tmp_path: Path, recipes: types.ModuleType) -> None:
    (tmp_path / "bayeux_auth.py").write_text(recipes_source())
    server = FayeServer(
        "--extension",
        "bayeux_auth:extensions",
        "--log-level",
        "warning",
        env={"PYTHONPATH": f"{tmp_path}:{':'.join(sys.path)}"},
    ).start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            (refused,) = await post(http, server.url, handshake_msg())
            assert refused["error"] == "401::Authentication required"
            (ok,) = await post(http, server.url, handshake_msg({"token": recipes.sign("carol")}))
            assert ok["successful"] is True
            (sub,) = await post(
                http,
                server.url,
                {"channel": "/meta/subscribe", "clientId": ok["clientId"], "subscription": "/**"},
            )
            assert sub["error"] == "403:/**:Forbidden channel"
    finally:
        server.stop()

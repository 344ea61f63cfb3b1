"""The adapter inside other ASGI apps: wrapping one, and mounted in Starlette."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from websockets.asyncio.client import connect

from faye import ASGIAdapter
from tests.support.live_server import LiveServer

HANDSHAKE = {
    "channel": "/meta/handshake",
    "version": "1.0",
    "supportedConnectionTypes": ["websocket"],
}


async def check_bayeux(base: str, ws_base: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        reply = (await http.post(path, json=HANDSHAKE)).json()
        assert reply[0]["successful"], reply
    async with connect(ws_base + path) as ws:
        await ws.send(json.dumps([HANDSHAKE]))
        assert json.loads(await ws.recv())[0]["successful"]


async def test_wrapping_an_app_passes_other_paths_through() -> None:
    published: list[object] = []

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    inner = Starlette(routes=[Route("/hello", hello)])
    adapter = ASGIAdapter(mount="/faye", timeout=2, app=inner)
    adapter.bind("publish", lambda client_id, channel, data: published.append(data))
    server = LiveServer(adapter).start()
    try:
        async with httpx.AsyncClient(base_url=server.base) as http:
            assert (await http.get("/hello")).json() == {"hello": "world"}
            assert (await http.get("/missing")).status_code == 404
            await http.post("/faye", json={"channel": "/x", "data": 1})
        await check_bayeux(server.base, server.ws_base, "/faye")
        assert published == [1]
    finally:
        server.stop()


async def test_mounted_in_starlette() -> None:
    bayeux = ASGIAdapter(mount="/", timeout=2)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await bayeux.start()
        yield
        await bayeux.close()

    app = Starlette(routes=[Mount("/realtime", app=bayeux)], lifespan=lifespan)
    server = LiveServer(app).start()
    try:
        # Starlette's Mount only matches below its prefix: clients use "/realtime/".
        await check_bayeux(server.base, server.ws_base, "/realtime/")
    finally:
        server.stop()

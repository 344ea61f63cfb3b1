"""The origin allowlist and strict mode, on every transport, over real sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from faye import ASGIAdapter
from tests.support.bayeux import exchange
from tests.support.live_server import LiveServer
from tests.support.processes import FayeServer

MOUNT = "/faye"
GOOD = "https://app.example.com"
EVIL = "https://evil.example.net"
HANDSHAKE = {
    "channel": "/meta/handshake",
    "version": "1.0",
    "supportedConnectionTypes": ["long-polling", "websocket", "eventsource"],
}


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    options: dict[str, Any] = getattr(request, "param", {})
    server = LiveServer(ASGIAdapter(mount=MOUNT, timeout=2, **options)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def http(served: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        yield client


async def post(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.post(
        MOUNT,
        content=json.dumps(HANDSHAKE),
        headers={"content-type": "application/json", **headers},
    )


async def jsonp(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    query = f"message={quote(json.dumps(HANDSHAKE))}&jsonp=cb"
    return await http.get(f"{MOUNT}?{query}", headers=headers)


ALLOWLIST = {"allow_origins": ["https://*.example.com", "http://localhost:*"]}


@pytest.mark.parametrize("served", [ALLOWLIST], indirect=True)
async def test_allowlist_on_http_transports(http: httpx.AsyncClient) -> None:
    allowed = await post(http, {"origin": GOOD})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == GOOD
    assert allowed.json()[0]["successful"]
    assert (await post(http, {"origin": "http://localhost:3000"})).status_code == 200

    refused = await post(http, {"origin": EVIL})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    assert (await post(http, {"origin": "null"})).status_code == 403

    # The Referer stands in when there is no Origin (JSON-P script tags).
    assert (await jsonp(http, {"referer": f"{GOOD}/page"})).status_code == 200
    assert (await jsonp(http, {"referer": f"{EVIL}/page"})).status_code == 403

    preflight = {"origin": EVIL, "access-control-request-method": "POST"}
    assert (await http.options(MOUNT, headers=preflight)).status_code == 403
    preflight["origin"] = GOOD
    ok = await http.options(MOUNT, headers=preflight)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == GOOD

    # Non-browser clients send neither header: allowed unless strict.
    assert (await post(http, {})).status_code == 200


@pytest.mark.parametrize("served", [ALLOWLIST], indirect=True)
async def test_allowlist_on_eventsource(http: httpx.AsyncClient) -> None:
    client_id = (await post(http, {"origin": GOOD})).json()[0]["clientId"]
    accept = {"accept": "text/event-stream"}
    refused = await http.get(f"{MOUNT}/{client_id}", headers={**accept, "origin": EVIL})
    assert refused.status_code == 403
    async with http.stream(
        "GET", f"{MOUNT}/{client_id}", headers={**accept, "origin": GOOD}
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"] == "text/event-stream"


@pytest.mark.parametrize("served", [ALLOWLIST], indirect=True)
async def test_allowlist_on_websocket(served: LiveServer) -> None:
    url = served.ws_base + MOUNT
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin=EVIL):
            pass
    assert refused.value.response.status_code == 403
    async with connect(url, origin=GOOD) as ws:
        (reply,) = await exchange(ws, [HANDSHAKE])
        assert reply["successful"]


@pytest.mark.parametrize("served", [{"strict_origin": True}], indirect=True)
async def test_strict_mode_refuses_requests_without_origin_or_referer(
    served: LiveServer, http: httpx.AsyncClient
) -> None:
    assert (await post(http, {})).status_code == 403
    assert (await jsonp(http, {})).status_code == 403
    assert (await post(http, {"origin": EVIL})).status_code == 200  # no allowlist: any origin
    assert (await jsonp(http, {"referer": f"{GOOD}/x"})).status_code == 200
    with pytest.raises(InvalidStatus):
        async with connect(served.ws_base + MOUNT):
            pass
    # The client script stays public.
    assert (await http.get(f"{MOUNT}/client.js")).status_code != 403


async def test_default_trusts_every_origin_as_faye_does(http: httpx.AsyncClient) -> None:
    for origin in (EVIL, "null"):
        response = await post(http, {"origin": origin})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
    assert (await post(http, {})).status_code == 200


async def test_faye_serve_flags() -> None:
    server = FayeServer("--allow-origin", GOOD, "--strict-origin", "--log-level", "warning").start()
    try:
        async with httpx.AsyncClient(base_url=server.url.removesuffix(MOUNT), timeout=10) as http:
            assert (await post(http, {"origin": GOOD})).status_code == 200
            assert (await post(http, {"origin": EVIL})).status_code == 403
            assert (await post(http, {})).status_code == 403
    finally:
        server.stop()

"""An extension that raises, or a message it cannot read, fails only that message;
``faye serve --extension`` loads extensions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from faye import ASGIAdapter
from tests.support.bayeux import exchange, post, ws_handshake
from tests.support.extensions import Broken
from tests.support.live_server import LiveServer
from tests.support.processes import FayeServer

MOUNT = "/faye"
SECRET = "PAYLOAD-MARKER-" + "s" * 2000
HANDSHAKE = {
    "channel": "/meta/handshake",
    "version": "1.0",
    "supportedConnectionTypes": ["long-polling"],
}


class PushOnly:
    """The README's example: only holders of the password may publish."""

    def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        if not message["channel"].startswith("/meta/"):
            ext = message.get("ext")
            if not isinstance(ext, dict) or ext.get("password") != "pw":
                message["error"] = "403::Password required"
        return message

    def outgoing(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        ext = message.get("ext")
        if isinstance(ext, dict):
            ext.pop("password", None)
        return message


@pytest.fixture
def served() -> Iterator[LiveServer]:
    server = LiveServer(ASGIAdapter(mount=MOUNT, timeout=2, extensions=[Broken(), PushOnly()]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_raising_extension_fails_only_its_message(
    served: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    batch = [
        {"channel": "/fine", "data": 1, "ext": {"password": "pw"}, "id": "1"},
        {"channel": "/boom", "data": SECRET, "ext": {"password": "pw"}, "id": "2"},
        {"channel": "/fine", "data": 3, "ext": {"password": "pw"}, "id": "3"},
    ]
    with caplog.at_level(logging.INFO):
        async with httpx.AsyncClient(base_url=served.base, timeout=10) as http:
            replies = await post(http, MOUNT, batch)
    by_id = {r["id"]: r for r in replies}
    assert by_id["1"]["successful"] is True
    assert by_id["3"]["successful"] is True
    assert by_id["2"] == {
        "id": "2",
        "channel": "/boom",
        "successful": False,
        "error": "500::Internal server error",
    }
    assert "incoming extension failed" in caplog.text
    assert "PAYLOAD-MARKER" not in caplog.text


async def test_raising_outgoing_extension_fails_only_its_reply(served: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=served.base, timeout=10) as http:
        replies = await post(
            http,
            MOUNT,
            [
                {"channel": "/boom-out", "data": 1, "ext": {"password": "pw"}, "id": "a"},
                {"channel": "/fine", "data": 2, "ext": {"password": "pw"}, "id": "b"},
            ],
        )
    by_id = {r["id"]: r for r in replies}
    assert by_id["a"]["error"] == "500::Internal server error"
    assert by_id["b"]["successful"] is True


@pytest.mark.parametrize("ext", [None, "text", 7, ["password"]])
async def test_bad_ext_is_one_refused_message(
    served: LiveServer, ext: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(base_url=served.base, timeout=10) as http:
        replies = await post(
            http,
            MOUNT,
            [
                {"channel": "/fine", "data": SECRET, "ext": ext, "id": "x"},
                {"channel": "/fine", "data": 2, "ext": {"password": "pw"}, "id": "y"},
            ],
        )
    by_id = {r["id"]: r for r in replies}
    assert by_id["x"]["error"] == "403::Password required"
    assert by_id["y"]["successful"] is True
    assert "PAYLOAD-MARKER" not in caplog.text


async def test_raising_extension_on_websocket(served: LiveServer) -> None:
    async with connect(served.ws_base + MOUNT) as ws:
        client_id = await ws_handshake(ws)
        (reply,) = await exchange(ws, [{"channel": "/boom", "data": 1, "clientId": client_id}])
        assert reply["error"] == "500::Internal server error"
        (ok,) = await exchange(
            ws, [{"channel": "/fine", "data": 1, "clientId": client_id, "ext": {"password": "pw"}}]
        )
        assert ok["successful"] is True


async def test_faye_serve_loads_extensions() -> None:
    server = FayeServer(
        "--extension",
        "tests.support.extensions:RequireToken",
        "--extension",
        "tests.support.extensions:broken",
        "--log-level",
        "warning",
        env={"FAYE_TEST_TOKEN": "t0k3n"},
    ).start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            (refused,) = await post(http, server.url, HANDSHAKE)
            assert refused["error"] == "403::Invalid token"
            (nulled,) = await post(http, server.url, {**HANDSHAKE, "ext": None})
            assert nulled["error"] == "403::Invalid token"
            (welcome,) = await post(http, server.url, {**HANDSHAKE, "ext": {"token": "t0k3n"}})
            assert welcome["successful"] is True
            (boom,) = await post(http, server.url, {"channel": "/boom", "data": 1})
            assert boom["error"] == "500::Internal server error"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("spec", "says"),
    [("nocolon", "expects MODULE:FACTORY"), ("no_such_module_x:f", "cannot load extension")],
)
def test_faye_serve_explains_a_bad_extension(spec: str, says: str) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "faye", "serve", "--port", "1", "--extension", spec],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert says in result.stderr
    assert "Traceback" not in result.stderr

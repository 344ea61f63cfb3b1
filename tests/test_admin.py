"""The admin page (faye.admin): off by default, token only, bounded, live; and in
headless Chromium (npm playwright-core driving Debian's Chromium) against a server
under real traffic. The screenshot goes to the test's temporary folder; with
``FAYE_UPDATE_SCREENSHOTS=1`` it also replaces docs/images/admin.png."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from faye import ASGIAdapter
from faye.admin import NAME_CHARS, TOP_CHANNELS
from tests.support.bayeux import polling_client, post
from tests.support.live_server import LiveServer
from tests.support.subscribers import WsSubscriber, wait_until

MOUNT = "/faye"
TOKEN = "let-me-see"
ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "tests" / "interop"
DRIVER = INTEROP / "admin_browser.js"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def served() -> Iterator[LiveServer]:
    server = LiveServer(ASGIAdapter(mount=MOUNT, timeout=5, admin_token=TOKEN)).start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_page_is_off_without_a_token() -> None:
    server = LiveServer(ASGIAdapter(mount=MOUNT, timeout=5)).start()
    try:
        async with httpx.AsyncClient(base_url=server.base) as http:
            for path in ("/admin", "/admin/stats"):
                assert (await http.get(MOUNT + path)).status_code == 404
                bearer = {"authorization": f"Bearer {TOKEN}"}
                assert (await http.get(MOUNT + path, headers=bearer)).status_code == 404
    finally:
        server.stop()


async def test_only_the_token_opens_it(served: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=served.base) as http:
        for path in ("/admin", "/admin/stats"):
            refused = await http.get(MOUNT + path)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Basic ")
            for wrong in (
                {"authorization": "Bearer nope"},
                {"authorization": "Basic !!!"},
                {"authorization": f"Bearer {TOKEN}x"},
            ):
                assert (await http.get(MOUNT + path, headers=wrong)).status_code == 401
            assert (await http.get(MOUNT + path, auth=("anyone", "nope"))).status_code == 401
            assert (await http.get(MOUNT + path, auth=("anyone", TOKEN))).status_code == 200
        page = await http.get(MOUNT + "/admin", headers={"authorization": f"Bearer {TOKEN}"})
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"


async def test_stats_follow_traffic_and_stay_bounded(served: LiveServer) -> None:
    ws_url = served.ws_base + MOUNT
    long_name = "/long/" + "x" * 500
    async with contextlib.AsyncExitStack() as stack:
        subscribers = [
            await stack.enter_async_context(WsSubscriber(ws_url, "/room", f"/own/{n}"))
            for n in range(TOP_CHANNELS + 5)
        ]
        await stack.enter_async_context(WsSubscriber(ws_url, "/room", long_name))
        async with httpx.AsyncClient(base_url=served.base, auth=("admin", TOKEN)) as http:
            for n in range(3):
                (reply,) = await post(http, MOUNT, {"channel": "/room", "data": n})
                assert reply["successful"]
            await wait_until(lambda: all(len(s.messages) == 3 for s in subscribers))
            stats = (await http.get(MOUNT + "/admin/stats")).json()
            await subscribers[0].__aexit__(None, None, None)
            await post(
                http,
                MOUNT,
                {"channel": "/meta/disconnect", "clientId": subscribers[1].client_id},
            )
            await asyncio.sleep(0.2)
            later = (await http.get(MOUNT + "/admin/stats")).json()

    clients = TOP_CHANNELS + 6
    assert stats["clients"] == clients
    assert stats["connections"]["websocket"] == clients
    assert stats["subscriptions"] == 2 * clients
    assert stats["counts"]["publish"] == 3
    assert stats["counts"]["deliveries"] == 3 * clients
    assert len(stats["channels"]) == TOP_CHANNELS  # of 2 * clients - ... channels
    assert stats["channel_count"] == clients + 1
    assert stats["channels"][0] == {"channel": "/room", "subscribers": clients}
    assert all(len(c["channel"]) <= NAME_CHARS for c in stats["channels"])
    # One disconnected: its subscriptions are gone from the counts (the closed socket's
    # client stays until it expires, as it would for a client that may come back).
    assert later["channels"][0] == {"channel": "/room", "subscribers": clients - 1}
    assert later["channel_count"] == clients


@contextlib.asynccontextmanager
async def traffic(served: LiveServer) -> AsyncIterator[None]:
    """Three WebSocket subscribers, one long-polling client and ~20 publishes a second."""
    ws_url = served.ws_base + MOUNT
    async with (
        WsSubscriber(ws_url, "/chat/lobby", "/news"),
        WsSubscriber(ws_url, "/chat/lobby"),
        WsSubscriber(ws_url, "/chat/lobby", "/chat/help"),
        httpx.AsyncClient(base_url=served.base, timeout=30) as http,
    ):
        polling = await polling_client(http, MOUNT, "/news")
        running = True

        async def poll() -> None:
            while running:
                await post(
                    http,
                    MOUNT,
                    {
                        "channel": "/meta/connect",
                        "clientId": polling,
                        "connectionType": "long-polling",
                    },
                )

        async def publish() -> None:
            n = 0
            while running:
                channel = "/chat/lobby" if n % 4 else "/news"
                await post(http, MOUNT, {"channel": channel, "data": {"n": n}})
                n += 1
                await asyncio.sleep(0.05)

        tasks = [asyncio.ensure_future(poll()), asyncio.ensure_future(publish())]
        try:
            await asyncio.sleep(0.5)
            yield
        finally:
            running = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
@pytest.mark.skipif(
    not (INTEROP / "node_modules" / "playwright-core").is_dir(),
    reason="run tests/interop/install.sh",
)
async def test_the_page_in_chromium(served: LiveServer, tmp_path: Path) -> None:
    shot = tmp_path / "admin.png"
    async with traffic(served):
        driver = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            f"{served.base}{MOUNT}/admin",
            TOKEN,
            str(shot),
            "--chromium",
            CHROMIUM,
            cwd=INTEROP,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(driver.communicate(), 90)
    assert driver.returncode == 0, err.decode()
    shown = json.loads(out)
    assert shown["error"] == ""
    assert shown["clients"] == "4"  # three sockets and the held long-polling connect
    connections = dict(shown["connections"])
    assert connections["websocket"] == "3"
    assert connections["long-polling"] == "1"
    channels = [tuple(row) for row in shown["channels"]]
    assert channels[0] == ("/chat/lobby", "3")
    assert ("/news", "2") in channels and ("/chat/help", "1") in channels
    rates = dict(shown["rates"])
    assert float(rates["publishes"]) > 5
    assert float(rates["deliveries"]) > float(rates["publishes"])
    image = shot.read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 10_000
    if os.environ.get("FAYE_UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs" / "images" / "admin.png").write_bytes(image)

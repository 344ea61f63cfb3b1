"""``faye.Client`` over ``faye.LongPollingTransport`` (the ``[client]`` extra), for real."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from faye import ASGIAdapter, Client, LongPollingTransport
from tests.support.live_server import LiveServer


async def test_publish_reaches_a_subscriber_over_http() -> None:
    server = LiveServer(ASGIAdapter(mount="/faye", timeout=2)).start()
    subscriber = Client(LongPollingTransport(server.base + "/faye"))
    publisher = Client(LongPollingTransport(server.base + "/faye"))
    try:
        received: asyncio.Queue[Any] = asyncio.Queue()
        await subscriber.subscribe("/http/*", received.put)
        reply = await publisher.publish("/http/news", {"text": "over HTTP"})
        assert reply["successful"]
        assert await asyncio.wait_for(received.get(), 10) == {"text": "over HTTP"}
    finally:
        await subscriber.close()
        await publisher.close()
        server.stop()


async def test_an_http_error_is_raised_not_read_as_bayeux() -> None:
    server = LiveServer(ASGIAdapter(mount="/faye", timeout=2)).start()
    transport = LongPollingTransport(server.base + "/elsewhere")
    try:
        with pytest.raises(httpx.HTTPStatusError, match="404"):
            await transport.send([{"channel": "/meta/handshake", "version": "1.0"}])
    finally:
        await transport.close()
        server.stop()

"""A WebSocket Bayeux subscriber that keeps its connect going and records every delivery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.support.bayeux import connect_msg, exchange, ws_handshake


class WsSubscriber:
    """``async with WsSubscriber(url, "/a/*", "/a/b") as sub``: ``sub.messages`` fills up.

    Subscribes, then answers every ``/meta/connect`` reply with the next connect, as a
    real client does, so deliveries keep arriving for as long as it is open.
    """

    def __init__(self, ws_url: str, *subscriptions: str) -> None:
        self.ws_url = ws_url
        self.subscriptions = list(subscriptions)
        self.messages: list[dict[str, Any]] = []
        self.client_id = ""
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WsSubscriber:
        self._ws = ws = await connect(self.ws_url)
        self.client_id = await ws_handshake(ws)
        replies = await exchange(
            ws,
            [
                {"channel": "/meta/subscribe", "clientId": self.client_id, "subscription": s}
                for s in self.subscriptions
            ]
            + [connect_msg(self.client_id, advice={"timeout": 0})],
        )
        subscribed = [r for r in replies if r["channel"] == "/meta/subscribe"]
        assert [r["successful"] for r in subscribed] == [True] * len(self.subscriptions), replies
        await ws.send(json.dumps([connect_msg(self.client_id)]))
        self._reader = asyncio.ensure_future(self._read(ws))
        return self

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                for message in json.loads(frame):
                    if message.get("channel") == "/meta/connect":
                        await ws.send(json.dumps([connect_msg(self.client_id)]))
                    elif "data" in message:
                        self.messages.append(message)

    def data(self) -> list[Any]:
        return [m["data"] for m in self.messages]

    async def wait_for(self, count: int, timeout: float = 10, quiet: float = 0.3) -> list[Any]:
        """Wait until ``count`` deliveries arrived, then ``quiet`` seconds more (so that
        a duplicate would show); returns the data received."""
        await wait_until(lambda: len(self.messages) >= count, timeout)
        await asyncio.sleep(quiet)
        return self.data()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._ws is not None:
            await self._ws.close()


async def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)

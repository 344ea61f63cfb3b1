"""A lean Bayeux load generator: WebSocket subscribers and a publisher, in one process.

It speaks the protocol itself (no client library in the way), so its own cost per
message is small and is reported next to the server's: a reader can tell whether
the generator or the server was the bottleneck.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect


@dataclass
class Subscriber:
    """One WebSocket client: handshake, subscribe, hold connects, record arrivals."""

    url: str
    channel: str
    latencies: list[float] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)
    client_id: str = ""
    _ws: ClientConnection | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ws = await connect(self.url, max_size=None, compression=None)
        reply = await self._call(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["websocket"],
            }
        )
        self.client_id = reply[0]["clientId"]
        replies = await self._call(
            {
                "channel": "/meta/subscribe",
                "clientId": self.client_id,
                "subscription": self.channel,
            },
            self._connect(timeout=0),
        )
        assert all(r.get("successful") for r in replies), replies
        self._reader = asyncio.ensure_future(self._read())
        await self._ws.send(orjson.dumps([self._connect()]).decode())

    def _connect(self, timeout: int | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "channel": "/meta/connect",
            "clientId": self.client_id,
            "connectionType": "websocket",
            "id": str(next(self._ids)),
        }
        if timeout is not None:
            message["advice"] = {"timeout": timeout}
        return message

    async def _call(self, *messages: dict[str, Any]) -> list[dict[str, Any]]:
        assert self._ws is not None
        await self._ws.send(orjson.dumps(list(messages)).decode())
        result: list[dict[str, Any]] = orjson.loads(await self._ws.recv())
        return result

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            now = time.time()
            for message in orjson.loads(frame):
                channel = message.get("channel")
                if channel == "/meta/connect":
                    await self._ws.send(orjson.dumps([self._connect()]).decode())
                elif "data" in message:
                    data = message["data"]
                    seq = data["seq"]
                    self.seen[seq] = self.seen.get(seq, 0) + 1
                    self.latencies.append(now - data["sent"])

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()


class Publisher:
    """Publishes over its own WebSocket; acknowledgements are counted, not awaited one by one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acks = 0
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ws = await connect(self.url, max_size=None, compression=None)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            self.acks += sum(1 for m in orjson.loads(frame) if m.get("successful"))

    async def publish(self, channel: str, seq: int, payload: str) -> None:
        assert self._ws is not None
        message = {
            "channel": channel,
            "data": {"seq": seq, "sent": time.time(), "payload": payload},
            "id": str(seq),
        }
        await self._ws.send(orjson.dumps([message]).decode())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]

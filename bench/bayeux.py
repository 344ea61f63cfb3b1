"""A lean Bayeux client for the load generator, over bench/wire.py's WebSocket or HTTP.

Every wait has a timeout, every loop a count or a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.wire import HttpConnection, ProtocolError, WebSocket

DataCallback = Callable[[dict[str, Any], float], None]


class BayeuxClient:
    """One Bayeux client over a WebSocket or long-polling.

    ``on_data(data, received_at)`` is called for every delivered message's ``data``;
    publish acknowledgements are counted in ``acks`` (and passed to ``on_ack``).
    After ``start_connecting()`` the client keeps a ``/meta/connect`` outstanding.
    """

    def __init__(
        self,
        url: str,
        transport: str = "websocket",
        on_data: DataCallback | None = None,
        on_ack: Callable[[dict[str, Any], float], None] | None = None,
    ) -> None:
        if transport not in ("websocket", "long-polling"):
            raise ValueError(transport)
        self.url = url
        self.transport = transport
        self.on_data = on_data
        self.on_ack = on_ack
        self.client_id = ""
        self.acks = 0
        self.failures = 0
        self.rehandshakes = 0
        self.channels: list[str] = []
        self._recovery: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ws: WebSocket | None = None
        self._http: HttpConnection | None = None
        self._poller: asyncio.Task[None] | None = None
        self._connecting = False

    @property
    def deflate(self) -> bool:
        """Whether the server accepted our permessage-deflate offer."""
        return self._ws is not None and self._ws.deflate

    # -- lifecycle -------------------------------------------------------------------

    async def open(self, timeout: float = 10.0) -> None:
        if self.transport == "websocket":
            self._ws = await WebSocket.open(self.url, self._on_payload, timeout)
        else:
            self._http = HttpConnection(self.url)

    async def handshake(self, timeout: float = 10.0) -> str:
        reply = await self.call(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": [self.transport],
            },
            timeout=timeout,
        )
        if not reply[0].get("successful"):
            raise ProtocolError(f"handshake failed: {reply}")
        self.client_id = reply[0]["clientId"]
        return self.client_id

    async def subscribe(self, channel: str, timeout: float = 10.0, remember: bool = True) -> None:
        reply = await self.call(
            {"channel": "/meta/subscribe", "clientId": self.client_id, "subscription": channel},
            timeout=timeout,
        )
        if not reply[0].get("successful"):
            raise ProtocolError(f"subscribe failed: {reply}")
        if remember:
            self.channels.append(channel)

    async def disconnect(self, timeout: float = 10.0) -> None:
        self._connecting = False
        await self.call(
            {"channel": "/meta/disconnect", "clientId": self.client_id}, timeout=timeout
        )

    async def disconnect_nowait(self, timeout: float = 5.0) -> None:
        """Send /meta/disconnect without waiting for the reply (WebSocket), or POST it
        on a fresh connection (long-polling, whose own connection holds a connect)."""
        self._connecting = False
        if not self.client_id:
            return
        body = orjson.dumps([{"channel": "/meta/disconnect", "clientId": self.client_id}])
        if self._ws is not None:
            self._ws.send(body)
            return
        http = HttpConnection(self.url)
        try:
            await http.post(body, timeout)
        finally:
            http.close()

    def start_connecting(self) -> None:
        """Keep one /meta/connect outstanding from now on (held by the server)."""
        self._connecting = True
        if self._ws is not None:
            self._send_connect()
        else:
            self._poller = asyncio.ensure_future(self._poll())

    def close(self) -> None:
        self._connecting = False
        if self._recovery is not None:
            self._recovery.cancel()
        if self._poller is not None:
            self._poller.cancel()
        if self._ws is not None:
            self._ws.close()
        if self._http is not None:
            self._http.close()
        for future in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()

    # -- messages --------------------------------------------------------------------

    def _connect_message(self) -> dict[str, Any]:
        return {
            "channel": "/meta/connect",
            "clientId": self.client_id,
            "connectionType": self.transport,
        }

    def _send_connect(self) -> None:
        if self._ws is not None and self._connecting:
            try:
                self._ws.send(orjson.dumps([self._connect_message()]))
            except ConnectionError:
                self._connecting = False

    async def call(self, *messages: dict[str, Any], timeout: float = 10.0) -> list[dict[str, Any]]:
        """Send a batch and wait for the reply to each message (matched by id)."""
        futures = []
        loop = asyncio.get_running_loop()
        for message in messages:
            message["id"] = mid = str(next(self._ids))
            futures.append(self._pending.setdefault(mid, loop.create_future()))
        body = orjson.dumps(list(messages))
        try:
            if self._ws is not None:
                self._ws.send(body)
                return list(await asyncio.wait_for(asyncio.gather(*futures), timeout))
            assert self._http is not None
            self._on_payload(await self._http.post(body, timeout))
            return [f.result() for f in futures]
        finally:
            for message in messages:
                self._pending.pop(message["id"], None)

    def publish(self, messages: list[dict[str, Any]]) -> None:
        """Send publishes (channel + data each) in one frame without waiting (WebSocket)."""
        assert self._ws is not None
        for message in messages:
            message["clientId"] = self.client_id
            message["id"] = str(next(self._ids))
        self._ws.send(orjson.dumps(messages))

    def _on_payload(self, payload: bytes) -> None:
        now = time.time()
        decoded = orjson.loads(payload)
        for message in decoded if isinstance(decoded, list) else (decoded,):
            data = message.get("data")
            if data is not None and "successful" not in message:
                if self.on_data is not None:
                    self.on_data(data, now)
                continue
            channel = message.get("channel")
            if channel == "/meta/connect" and message.get("id") is None:
                if not message.get("successful"):
                    self.failures += 1
                    advice = message.get("advice") or {}
                    if advice.get("reconnect") == "handshake" and self._connecting:
                        self._recover()  # as Faye's client does: handshake, resubscribe
                        continue
                self._send_connect()
                continue
            future = self._pending.get(message.get("id", ""))
            if future is not None and not future.done():
                future.set_result(message)
            elif channel is not None and not channel.startswith("/meta/"):
                if message.get("successful"):
                    self.acks += 1
                else:
                    self.failures += 1
                if self.on_ack is not None:
                    self.on_ack(message, now)

    def _recover(self) -> None:
        if self._recovery is not None and not self._recovery.done():
            return
        if self.rehandshakes >= 10:
            self._connecting = False
            return
        self.rehandshakes += 1
        self._recovery = asyncio.ensure_future(self._rehandshake())

    async def _rehandshake(self) -> None:
        """The server forgot us (401): a new client id, the same subscriptions."""
        try:
            await self.handshake()
            for channel in self.channels:
                await self.subscribe(channel, remember=False)
        except Exception:
            self.failures += 1
            self._connecting = False
            return
        self._send_connect()

    async def _poll(self) -> None:
        """Long-polling: one /meta/connect after another until closed (each bounded)."""
        assert self._http is not None
        for _ in range(10_000_000):
            if not self._connecting:
                return
            try:
                self._on_payload(
                    await self._http.post(orjson.dumps([self._connect_message()]), 60.0)
                )
                if self._recovery is not None and not self._recovery.done():
                    await self._recovery
            except (OSError, ProtocolError, asyncio.IncompleteReadError, TimeoutError):
                self.failures += 1
                await asyncio.sleep(0.1)

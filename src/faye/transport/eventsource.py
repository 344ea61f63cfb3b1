"""The EventSource transport: a held GET that streams deliveries as ``data:`` events.

Messages from the client still arrive by POST with ``connectionType: eventsource``;
those connects return at once, and this stream is where deliveries go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from faye.envelope import Envelope
from faye.limits import DEFAULT_MAX_OUTBOX_BYTES
from faye.transport.codec import encode_items
from faye.transport.port import ServerPort
from faye.transport.request import Request
from faye.transport.responses import NO_CACHE, Receive, Scope, Send, plain

log = logging.getLogger("faye.transport.eventsource")

RETRY_MS = 5000


class EventSourceSession:
    def __init__(
        self,
        server: ServerPort,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        client_id: str,
        ping: float,
        max_queue: int,
        max_outbox_bytes: int = DEFAULT_MAX_OUTBOX_BYTES,
    ) -> None:
        self.server = server
        self.request = Request(scope)
        self.client_id = client_id
        self._receive = receive
        self._send = send
        self._ping = ping
        self._max_queue = max_queue
        self._outbox: deque[Envelope] = deque()
        self._outbox_bytes = 0
        self._max_outbox_bytes = max_outbox_bytes
        self._wakeup = asyncio.Event()
        self._closing = False

    def push(self, messages: Sequence[Envelope]) -> None:
        if self._closing:
            self.server.requeue(self.client_id, messages)
            return
        self._outbox.extend(messages)
        self._outbox_bytes += sum(len(message.raw) for message in messages)
        if self._outbox_bytes > self._max_outbox_bytes:
            # Dropped with what it has not been sent; it must handshake again (the same
            # policy as WebSocket, docs/security.md).
            log.warning(
                "client %s fell %d bytes behind (cap %d); dropping it",
                self.client_id,
                self._outbox_bytes,
                self._max_outbox_bytes,
            )
            self._outbox.clear()
            self._outbox_bytes = 0
            self._closing = True
            self.server.drop_client(self.client_id, "outbox_bytes")
        elif len(self._outbox) > self._max_queue:
            log.warning("client %s is not reading; closing its stream", self.client_id)
            self.server.limit_hit("stalled")
            self._closing = True
        self._wakeup.set()

    def close(self) -> None:
        self._closing = True
        self._wakeup.set()

    async def run(self) -> None:
        server = self.server
        if not await server.client_exists(self.client_id):
            await plain(self._send, 400, "Bad request")
            return
        try:
            await self._send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        NO_CACHE,
                        (b"connection", b"close"),
                    ],
                }
            )
            await self._write(f"retry: {RETRY_MS}\r\n\r\n".encode())
        except OSError:
            return  # the client left before the stream began
        server.open_socket(self.client_id, self)
        gone = asyncio.ensure_future(self._wait_for_disconnect())
        try:
            await self._pump(gone)
        except OSError as exc:
            log.debug("EventSource write failed: %s", exc)
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
            server.close_socket(self.client_id, self)
            with contextlib.suppress(Exception):
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, gone: asyncio.Future[None]) -> None:
        while not gone.done():
            waiter: asyncio.Future[Any] = asyncio.ensure_future(self._wakeup.wait())
            watched: set[asyncio.Future[Any]] = {waiter, gone}
            done, _ = await asyncio.wait(
                watched, timeout=self._ping, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if gone.done():
                return
            self._wakeup.clear()
            if self._outbox:
                batch = list(self._outbox)
                self._outbox.clear()
                self._outbox_bytes = 0
                out = await self.server.outgoing(list(batch), self.request)
                if out:
                    try:
                        await self._write(b"data: " + encode_items(out) + b"\r\n\r\n")
                    except OSError:
                        self.server.requeue(self.client_id, batch)
                        raise
                self.server.acknowledge(self.client_id, len(batch))
            elif not done:
                await self._write(b":\r\n\r\n")
            if self._closing:
                return

    async def _write(self, chunk: bytes) -> None:
        await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _wait_for_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass

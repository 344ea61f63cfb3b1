"""The EventSource transport: a held GET that streams deliveries as ``data:`` events.

Messages from the client still arrive by POST with ``connectionType: eventsource``;
those connects return at once, and this stream is where deliveries go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any

from faye.envelope import Envelope
from faye.limits import DEFAULT_MAX_OUTBOX_BYTES
from faye.transport.codec import encode_items
from faye.transport.outbox import Outbox
from faye.transport.port import ServerPort
from faye.transport.responses import NO_CACHE, Receive, Scope, Send, plain

log = logging.getLogger("faye.transport.eventsource")

RETRY_MS = 5000


class EventSourceSession(Outbox):
    __slots__ = ("_ping", "_wakeup")

    def __init__(
        self,
        server: ServerPort,
        client_id: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        ping: float,
        max_queue: int,
        max_outbox_bytes: int = DEFAULT_MAX_OUTBOX_BYTES,
    ) -> None:
        # Everything queued goes out as one event: a stream has no frame size limit.
        connection = (scope, receive, send)
        limits = {"max_queue": max_queue, "max_bytes": max_outbox_bytes}
        super().__init__(server, connection, client_id, max_frame=sys.maxsize, **limits)
        self._ping = ping
        self._wakeup = asyncio.Event()

    # -- the outbox's hooks ------------------------------------------------------------

    def close(self) -> None:
        self._closing = True
        self._wakeup.set()

    def _wake(self) -> None:
        self._wakeup.set()

    def _stalled(self) -> None:
        self.close()

    def _dropped(self) -> None:
        self.close()

    async def _write_reply(self, text: bytes) -> None:
        raise AssertionError("an EventSource stream carries no replies")  # pragma: no cover

    async def _write_deliveries(self, messages: list[Envelope]) -> None:
        out = await self.server.outgoing(list(messages), self.request)
        if out:
            await self._write(b"data: " + encode_items(out) + b"\r\n\r\n")

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        server = self.server
        client_id = self.client_id
        assert client_id is not None
        if not await server.client_exists(client_id):
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
        server.open_socket(client_id, self)
        gone = asyncio.ensure_future(self._wait_for_disconnect())
        try:
            await self._pump(gone)
        except OSError as exc:
            log.debug("EventSource write failed: %s", exc)
        finally:
            self._closing = True
            self._stop_checks()
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
            server.close_socket(client_id, self)
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
            if self._queue:
                await self._write_queued()
            elif not done:
                await self._write(b":\r\n\r\n")
            if self._closing:
                return

    async def _write(self, chunk: bytes) -> None:
        await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _wait_for_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass

"""The WebSocket transport: one socket, many frames, deliveries pushed as they arrive.

Every frame is processed in its own task so a held ``/meta/connect`` never blocks the
frames behind it. A frame with nothing queued before it goes straight onto the socket
when the server offers that (``faye serve`` does: :mod:`faye.transport.uvicorn_websocket`);
otherwise writes go through one writer task per socket: replies keep their order,
deliveries waiting together are sent as one frame, and a client that cannot keep up is
disconnected instead of growing the server's memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from faye.batch import Batch
from faye.envelope import Envelope, Item
from faye.limits import DEFAULT_MAX_OUTBOX_BYTES
from faye.protocol import channels
from faye.transport.codec import BadRequest, decode_messages, encode_items
from faye.transport.frames import WRITE_EXTENSION, delivery_frame, delivery_text, text_frame
from faye.transport.port import ServerPort
from faye.transport.request import Request
from faye.transport.responses import Receive, Scope, Send

log = logging.getLogger("faye.transport.websocket")

CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013

#: How long a server-side close waits for replies still being processed.
CLOSE_GRACE = 1.0

#: How long a socket may stay more than ``max_queue`` messages behind before it is
#: closed with 1013 (its undelivered messages go back to the engine).
STALL_GRACE = 5.0


def _abandon_if_cancelled(batch: Batch, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        batch.abandon()


class _Frame:
    """A reply frame, and the batch whose deliveries it carries."""

    __slots__ = ("batch", "text")

    def __init__(self, text: bytes, batch: Batch) -> None:
        self.text = text
        self.batch = batch


class WebSocketSession:
    """One accepted WebSocket, bound to at most one client id at a time.

    An idle socket costs as little as we can make it: no writer task waits on it (one
    is started when there is something to send and ends when all is sent), and its
    queues are plain lists.
    """

    def __init__(
        self,
        server: ServerPort,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        max_message_size: int,
        max_queue: int,
        max_outbox_bytes: int = DEFAULT_MAX_OUTBOX_BYTES,
    ) -> None:
        self.server = server
        self.request = Request(scope)
        self._receive = receive
        self._send = send
        direct = scope.get("extensions", {}).get(WRITE_EXTENSION, {})
        self._write_now: Callable[[bytes], bool] | None = direct.get("write")
        self._abort: Callable[[], None] | None = direct.get("abort")
        self._max_message_size = max_message_size
        self._max_queue = max_queue
        self._outbox: list[_Frame | Envelope] = []
        # Bytes in _outbox (not yet taken by the writer), capped by max_outbox_bytes.
        self._outbox_bytes = 0
        self._max_outbox_bytes = max_outbox_bytes
        self._writer: asyncio.Task[None] | None = None
        self._frames: set[asyncio.Task[None]] = set()
        self._inbox: list[Any] = []
        self._dispatcher: asyncio.Task[None] | None = None
        self._client_id: str | None = None
        self._closing = False
        self._close_code = CLOSE_NORMAL
        self._close_deadline = 0.0
        self._stall_check: asyncio.TimerHandle | None = None

    # -- PushSocket --------------------------------------------------------------------

    def push(self, messages: Sequence[Envelope]) -> None:
        if self._closing:
            if self._client_id is not None:
                self.server.requeue(self._client_id, messages)
            return
        client_id = self._client_id
        if (
            client_id is not None
            and self._can_write_now()
            and not self.server.has_outgoing
            and self._frame_end(messages, 0) == len(messages)
        ) and self._write_now(delivery_frame(messages)):  # type: ignore[misc]
            self.server.acknowledge(client_id, len(messages))
            return
        self._outbox.extend(messages)
        self._outbox_bytes += sum(len(message.raw) for message in messages)
        if self._outbox_bytes > self._max_outbox_bytes:
            self._drop_slow_client()
            return
        if len(self._outbox) > self._max_queue and self._stall_check is None:
            # A burst (a backlog handed over on reconnect) may overfill the queue for a
            # moment; a client still that far behind after STALL_GRACE is not reading.
            loop = asyncio.get_running_loop()
            self._stall_check = loop.call_later(STALL_GRACE, self._check_stalled)
        self._wake_writer()

    def close(self) -> None:
        self._close_soon(CLOSE_NORMAL)

    def _check_stalled(self) -> None:
        self._stall_check = None
        if len(self._outbox) > self._max_queue:
            log.warning("client %s is not reading; closing its socket", self._client_id)
            self.server.limit_hit("stalled")
            # What it has not been sent waits in the engine for its next connect.
            kept = [item for item in self._outbox if isinstance(item, _Frame)]
            unsent = [item for item in self._outbox if isinstance(item, Envelope)]
            self._outbox = kept  # type: ignore[assignment]
            self._outbox_bytes = sum(len(item.text) for item in kept)
            if unsent and self._client_id is not None:
                self.server.requeue(self._client_id, unsent)
            self._close_soon(CLOSE_TRY_AGAIN)

    def _drop_slow_client(self) -> None:
        """The client fell more than max_outbox_bytes behind: drop it, undelivered
        messages and all. Its client id is destroyed, so it handshakes again (and its
        client library subscribes again) instead of resuming with a gap it cannot see."""
        client_id = self._client_id
        log.warning(
            "client %s fell %d bytes behind (cap %d); dropping it",
            client_id,
            self._outbox_bytes,
            self._max_outbox_bytes,
        )
        self._outbox = []
        self._outbox_bytes = 0
        self._close_soon(CLOSE_TRY_AGAIN)
        if self._abort is not None:
            self._abort()
        self.server.drop_client(client_id, "outbox_bytes")

    def _close_soon(self, code: int) -> None:
        """Close once the replies being worked on are written (a disconnect's own reply)."""
        if not self._closing:
            self._closing = True
            self._close_code = code
            self._close_deadline = asyncio.get_running_loop().time() + CLOSE_GRACE
            self._wake_writer()

    def _can_write_now(self) -> bool:
        """Whether a frame may skip the writer task: nothing is queued before it and the
        server lets us write directly (:data:`WRITE_EXTENSION`)."""
        return (
            self._write_now is not None
            and self._writer is None
            and not self._outbox
            and not self._closing
        )

    def _frame_end(self, items: Sequence[_Frame | Envelope], start: int) -> int:
        """Where the deliveries from ``items[start]`` that share one frame end.

        They share it up to the size the server would accept from a client, so no
        client's limit (often the same 1 MiB) is ever exceeded by our batching.
        """
        first = items[start]
        assert isinstance(first, Envelope)
        end, size = start + 1, len(first.raw)
        while end < len(items):
            following = items[end]
            if not isinstance(following, Envelope):
                break
            size += len(following.raw) + 1
            if size > self._max_message_size:
                break
            end += 1
        return end

    def _wake_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        first = await self._receive()
        if first["type"] != "websocket.connect":
            return
        try:
            await self._send({"type": "websocket.accept"})
        except OSError:
            return  # the client left before we answered its handshake
        try:
            while True:
                message = await self._receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive":
                    continue
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                if len(data) > self._max_message_size:
                    self._close_soon(CLOSE_TOO_BIG)
                    continue
                self._on_frame(data)
        finally:
            self._closing = True
            if self._stall_check is not None:
                self._stall_check.cancel()
            for task in list(self._frames):
                task.cancel()
            if self._frames:
                await asyncio.gather(*self._frames, return_exceptions=True)
            if self._client_id is not None:
                self.server.close_socket(self._client_id, self)
            writer = self._writer
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer

    def _on_frame(self, data: str | bytes) -> None:
        try:
            messages = decode_messages(data)
        except BadRequest as exc:
            log.info("ignoring WebSocket frame: %s", exc)
            return
        self._bind(messages)
        self._inbox.append(messages)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = self._track(self._dispatch())

    def _track(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._frames.add(task)
        task.add_done_callback(self._frame_done)
        return task

    async def _dispatch(self) -> None:
        """Start frames strictly in arrival order; only their held connects overlap."""
        while self._inbox:
            messages = self._inbox.pop(0)
            try:
                batch = await self.server.begin(messages, self.request)
            except Exception:
                log.exception("failed to process a WebSocket frame")
                continue
            if batch.waiting:
                task = self._track(self._complete(batch))
                # Cancelled before it ever ran (the socket closed at once), it never
                # reached Batch.finish: release the held connects and their messages.
                task.add_done_callback(functools.partial(_abandon_if_cancelled, batch))
            else:
                self._write_frame(batch.replies, batch)

    def _frame_done(self, task: asyncio.Task[None]) -> None:
        self._frames.discard(task)
        if self._closing:
            self._wake_writer()

    def _bind(self, messages: Any) -> None:
        """Bind the socket to the client of the frame's first connect, as Faye does."""
        batch = messages if isinstance(messages, list) else [messages]
        for message in batch:
            if isinstance(message, dict) and message.get("channel") == channels.CONNECT:
                client_id = message.get("clientId")
                if isinstance(client_id, str) and client_id and client_id != self._client_id:
                    if self._client_id is not None:
                        self.server.close_socket(self._client_id, self, flush=True)
                    self._client_id = client_id
                    self.server.open_socket(client_id, self)
                return

    async def _complete(self, batch: Batch) -> None:
        try:
            replies = await batch.finish()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("failed to process a WebSocket frame")
            return
        self._write_frame(replies, batch)

    def _write_frame(self, replies: list[Item], batch: Batch) -> None:
        text = encode_items(replies)
        if self._can_write_now() and self._write_now(text_frame(text)):  # type: ignore[misc]
            batch.written()
            return
        self._outbox.append(_Frame(text, batch))
        self._outbox_bytes += len(text)
        if self._outbox_bytes > self._max_outbox_bytes and not self._closing:
            self._drop_slow_client()
            return
        self._wake_writer()

    async def _push_frame(self, batch: list[Envelope]) -> str:
        """The frame for pushed deliveries; without outgoing extensions, shared text."""
        if not self.server.has_outgoing:
            return delivery_text(batch)
        out = await self.server.outgoing(list(batch), self.request)
        return encode_items(out).decode() if out else ""

    async def _write(self) -> None:
        """Send in order until nothing is left; deliveries count once their frame is out."""
        pushed: list[Envelope] = []
        items: list[_Frame | Envelope] = []
        index = 0
        client_id = None
        try:
            while True:
                while self._outbox:
                    items, self._outbox = self._outbox, []
                    self._outbox_bytes = 0
                    index = 0
                    while index < len(items):
                        item = items[index]
                        if isinstance(item, _Frame):
                            index += 1
                            text = item.text.decode()
                            await self._send({"type": "websocket.send", "text": text})
                            item.batch.written()
                            continue
                        end = self._frame_end(items, index)
                        pushed = items[index:end]  # type: ignore[assignment]
                        index = end
                        client_id = self._client_id
                        frame = await self._push_frame(pushed)
                        if frame:
                            await self._send({"type": "websocket.send", "text": frame})
                        if client_id is not None:
                            self.server.acknowledge(client_id, len(pushed))
                        pushed = []
                if not self._closing:
                    return
                remaining = self._close_deadline - asyncio.get_running_loop().time()
                if not self._frames or remaining <= 0:
                    await self._send({"type": "websocket.close", "code": self._close_code})
                    return
                await asyncio.wait(set(self._frames), timeout=remaining)
        except (OSError, RuntimeError) as exc:
            # The socket is gone: what was not written goes back to the engine.
            log.debug("WebSocket write failed: %s", exc)
            unsent = [*pushed, *items[index:], *self._outbox]
            self._outbox = []
            self._outbox_bytes = 0
            envelopes = [item for item in unsent if isinstance(item, Envelope)]
            client_id = client_id or self._client_id
            if envelopes and client_id is not None:
                self.server.requeue(client_id, envelopes)
        finally:
            self._writer = None

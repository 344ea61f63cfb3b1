"""The WebSocket transport: one socket, many frames, deliveries pushed as they arrive.

Every frame is processed in its own task so a held ``/meta/connect`` never blocks the
frames behind it. A frame with nothing queued before it goes straight onto the socket
when the server offers that (``faye serve`` does: :mod:`faye.transport.uvicorn_websocket`);
otherwise writes go through one writer task per socket: replies keep their order,
deliveries waiting together are sent as one frame, and a client that cannot keep up is
disconnected instead of growing the server's memory without bound
(:mod:`faye.transport.outbox`).
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
from faye.transport.outbox import Outbox
from faye.transport.port import ServerPort
from faye.transport.responses import Receive, Scope, Send

log = logging.getLogger("faye.transport.websocket")

CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013

#: Messages received and not yet started before the socket is read no further: a
#: client sending faster than its messages are processed waits (TCP pushes back on it)
#: instead of growing the server's memory.
MAX_WAITING_FRAMES = 32

#: How long a server-side close waits for replies still being processed.
CLOSE_GRACE = 1.0


def _abandon_if_cancelled(batch: Batch, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        batch.abandon()


class WebSocketSession(Outbox):
    """One accepted WebSocket, bound to at most one client id at a time.

    An idle socket costs as little as we can make it: no writer task waits on it (one
    is started when there is something to send and ends when all is sent), and its
    queues are plain lists.
    """

    __slots__ = (
        "_abort",
        "_close_code",
        "_close_deadline",
        "_dispatcher",
        "_frames",
        "_held",
        "_inbox",
        "_pause",
        "_take_frames",
        "_write_now",
        "_writer",
    )

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
        limits = {"max_queue": max_queue, "max_bytes": max_outbox_bytes}
        super().__init__(server, (scope, receive, send), None, max_frame=max_message_size, **limits)
        direct = scope.get("extensions", {}).get(WRITE_EXTENSION, {})
        self._write_now: Callable[[bytes], bool] | None = direct.get("write")
        self._abort: Callable[[], None] | None = direct.get("abort")
        self._take_frames: Callable[..., Callable[[bool], None]] | None = direct.get("frames")
        self._pause: Callable[[bool], None] | None = None
        self._writer: asyncio.Task[None] | None = None
        # Frames being worked on: the batch of a lone held connect (the usual one) and,
        # made when first needed, other held connects' futures with their batch and the
        # tasks of frames that need more work.
        self._held: Batch | None = None
        self._frames: dict[asyncio.Future[Any], Batch | None] | None = None
        self._inbox: list[Any] = []
        self._dispatcher: asyncio.Task[None] | None = None
        self._close_code = CLOSE_NORMAL
        self._close_deadline = 0.0

    # -- the outbox's hooks ------------------------------------------------------------

    def close(self) -> None:
        self._close_soon(CLOSE_NORMAL)

    def _wake(self) -> None:
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())

    def _write_directly(self, messages: Sequence[Envelope]) -> bool:
        client_id = self.client_id
        if (
            client_id is not None
            and self._can_write_now()
            and not self.server.has_outgoing
            and self._group_end(messages, 0) == len(messages)
            and self._write_now(delivery_frame(messages))  # type: ignore[misc]
        ):
            self.server.acknowledge(client_id, len(messages))
            return True
        return False

    def _stalled(self) -> None:
        self._close_soon(CLOSE_TRY_AGAIN)

    def _dropped(self) -> None:
        self._close_soon(CLOSE_TRY_AGAIN)
        if self._abort is not None:
            self._abort()

    async def _write_reply(self, text: bytes) -> None:
        await self._send({"type": "websocket.send", "text": text.decode()})

    async def _write_deliveries(self, messages: list[Envelope]) -> None:
        """Without outgoing extensions, the text every recipient shares."""
        if not self.server.has_outgoing:
            frame = delivery_text(messages)
        else:
            out = await self.server.outgoing(list(messages), self.request)
            frame = encode_items(out).decode() if out else ""
        if frame:
            await self._send({"type": "websocket.send", "text": frame})

    def _close_soon(self, code: int) -> None:
        """Close once the replies being worked on are written (a disconnect's own reply)."""
        if not self._closing:
            self._closing = True
            self._close_code = code
            self._close_deadline = asyncio.get_running_loop().time() + CLOSE_GRACE
            self._wake()

    def _can_write_now(self) -> bool:
        """Whether a frame may skip the writer task: nothing is queued before it and the
        server lets us write directly (:data:`WRITE_EXTENSION`)."""
        return (
            self._write_now is not None
            and self._writer is None
            and not self._queue
            and not self._closing
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        first = await self._receive()
        if first["type"] != "websocket.connect":
            return
        if self._take_frames is not None:
            # Messages now come to _on_message as they are parsed. Taken before the 101
            # goes out, so a client that waits for it (RFC 6455, 4.1) sends nothing
            # before; what one that did not wait got through is queued, and read below
            # first.
            self._pause = self._take_frames(self._on_message)
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
                self._on_message(data)
        finally:
            self._closing = True
            self._stop_checks()
            tasks = []
            held, self._held = self._held, None
            if held is not None:
                held.abandon()
            frames = self._frames or {}
            for pending, batch in list(frames.items()):
                if batch is None:
                    pending.cancel()
                    tasks.append(pending)
                else:
                    del frames[pending]
                    batch.abandon()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if self.client_id is not None:
                self.server.close_socket(self.client_id, self)
            writer = self._writer
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer

    def _on_message(self, data: str | bytes) -> None:
        if len(data) > self._max_frame:
            self._close_soon(CLOSE_TOO_BIG)
        else:
            self._on_frame(data)

    def _on_frame(self, data: str | bytes) -> None:
        try:
            messages = decode_messages(data)
        except BadRequest as exc:
            log.info("ignoring WebSocket frame: %s", exc)
            return
        self._bind(messages)
        self._inbox.append(messages)
        if self._pause is not None and len(self._inbox) == MAX_WAITING_FRAMES:
            self._pause(True)  # resumed once the dispatcher has worked through them
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = self._track(self._dispatch())

    def _track(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        if self._frames is None:
            self._frames = {}
        self._frames[task] = None
        task.add_done_callback(self._frame_done)
        return task

    def _pending(self) -> set[asyncio.Future[Any]]:
        """What the frames being worked on wait for."""
        pending = set(self._frames or ())
        if self._held is not None:
            pending.add(self._held.held[0].waiter)
        return pending

    async def _dispatch(self) -> None:
        """Start frames strictly in arrival order; only their held connects overlap."""
        while self._inbox:
            if self._pause is not None and len(self._inbox) == MAX_WAITING_FRAMES:
                self._pause(False)
            messages = self._inbox.pop(0)
            try:
                batch = await self.server.begin(messages, self.request)
            except Exception:
                log.exception("failed to process a WebSocket frame")
                continue
            if not batch.waiting:
                self._write_frame(batch.replies, batch)
                continue
            waiter = batch.lone_waiter()
            if waiter is not None:
                # The usual frame, a lone held connect: answered from the future's
                # callback, so an idle socket keeps no task or coroutine alive.
                if self._held is None:
                    self._held = batch
                else:  # a connect sent before the last one was answered
                    if self._frames is None:
                        self._frames = {}
                    self._frames[waiter] = batch
                waiter.add_done_callback(self._held_done)
                continue
            task = self._track(self._complete(batch))
            # Cancelled before it ever ran (the socket closed at once), it never
            # reached Batch.finish: release the held connects and their messages.
            task.add_done_callback(functools.partial(_abandon_if_cancelled, batch))

    def _held_done(self, waiter: asyncio.Future[Any]) -> None:
        batch = self._held
        if batch is not None and batch.held and batch.held[0].waiter is waiter:
            self._held = None
        else:
            batch = self._frames.pop(waiter, None) if self._frames else None
        if batch is not None:  # else abandoned with the socket
            self._write_frame(batch.collect(), batch)
        if self._closing:
            self._wake()

    def _frame_done(self, task: asyncio.Future[Any]) -> None:
        if self._frames is not None:
            self._frames.pop(task, None)
        if task is self._dispatcher:
            self._dispatcher = None  # a finished task is no small thing to keep
        if self._closing:
            self._wake()

    def _bind(self, messages: Any) -> None:
        """Bind the socket to the client of the frame's first connect, as Faye does."""
        batch = messages if isinstance(messages, list) else [messages]
        for message in batch:
            if isinstance(message, dict) and message.get("channel") == channels.CONNECT:
                client_id = message.get("clientId")
                if isinstance(client_id, str) and client_id and client_id != self.client_id:
                    if self.client_id is not None:
                        self.server.close_socket(self.client_id, self, flush=True)
                    self.client_id = client_id
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
        self._add_reply(text, batch)

    async def _write(self) -> None:
        """Write in order until nothing is left, then close if asked to."""
        try:
            while True:
                await self._write_queued()
                if not self._closing:
                    return
                remaining = self._close_deadline - asyncio.get_running_loop().time()
                pending = self._pending()
                if not pending or remaining <= 0:
                    await self._send({"type": "websocket.close", "code": self._close_code})
                    return
                await asyncio.wait(pending, timeout=remaining)
        except (OSError, RuntimeError) as exc:
            # The socket is gone; what was not written went back to the engine.
            log.debug("WebSocket write failed: %s", exc)
        finally:
            self._writer = None

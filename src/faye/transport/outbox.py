"""What waits to be written to one push connection (WebSocket, EventSource), and the
rules both follow.

- Write, then acknowledge: a delivery counts as delivered (and a Redis engine forgets
  it) only once its frame or event was written; what a failed write did not carry goes
  back to the engine for the client's next connect.
- A byte bound: a client more than ``max_outbox_bytes`` behind is dropped with what it
  was not sent (counted as ``outbox_bytes`` in the limits hit). Its client id is
  destroyed, so its client library handshakes and subscribes again instead of
  resuming with a gap it cannot see.
- Stalls: a connection still more than ``max_queue`` messages behind
  :data:`STALL_GRACE` seconds after it got there is not reading. It is closed
  (``stalled``), and its unsent messages go back to the engine: a backlog handed over
  on reconnect may overfill the queue for a moment, a dead reader stays behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from faye.batch import Batch
from faye.envelope import Envelope
from faye.transport.port import ServerPort
from faye.transport.request import Request
from faye.transport.responses import Receive, Scope, Send

log = logging.getLogger("faye.transport.outbox")

#: How long a connection may stay more than ``max_queue`` messages behind before it is
#: closed (its undelivered messages go back to the engine).
STALL_GRACE = 5.0


class ReplyFrame:
    """Encoded replies to a client's request, and the batch whose deliveries they carry."""

    __slots__ = ("batch", "text")

    def __init__(self, text: bytes, batch: Batch) -> None:
        self.text = text
        self.batch = batch


Queued = ReplyFrame | Envelope


class Outbox:
    """The queue of one push connection (an ASGI connection that stays open); a
    transport's session extends it with how to write (:meth:`_write_reply`,
    :meth:`_write_deliveries`) and how to close."""

    __slots__ = (
        "_closing",
        "_max_bytes",
        "_max_frame",
        "_max_queue",
        "_queue",
        "_queued_bytes",
        "_receive",
        "_send",
        "_stall_check",
        "client_id",
        "request",
        "server",
    )

    def __init__(
        self,
        server: ServerPort,
        connection: tuple[Scope, Receive, Send],
        client_id: str | None,
        *,
        max_queue: int,
        max_bytes: int,
        max_frame: int,
    ) -> None:
        self.server = server
        scope, self._receive, self._send = connection
        self.request = Request(scope)
        #: Whose deliveries this connection carries (None until a WebSocket is bound).
        self.client_id = client_id
        self._max_queue = max_queue
        self._max_bytes = max_bytes
        #: Deliveries written together share one frame up to this many bytes.
        self._max_frame = max_frame
        self._queue: list[Queued] = []
        self._queued_bytes = 0  # in _queue, not yet taken by a write
        self._stall_check: asyncio.TimerHandle | None = None
        self._closing = False

    # -- what a session provides --------------------------------------------------------

    def _wake(self) -> None:
        """Something was queued: make sure a write of the queue is under way."""
        raise NotImplementedError

    def _write_directly(self, messages: Sequence[Envelope]) -> bool:
        """Write deliveries at once, bypassing an empty queue; False if not possible."""
        return False

    def _stalled(self) -> None:
        """Close the connection: the client stopped reading."""
        raise NotImplementedError

    def _dropped(self) -> None:
        """End the connection now: the client is being dropped."""
        raise NotImplementedError

    async def _write_reply(self, text: bytes) -> None:
        raise NotImplementedError

    async def _write_deliveries(self, messages: list[Envelope]) -> None:
        raise NotImplementedError

    # -- PushSocket --------------------------------------------------------------------

    def push(self, messages: Sequence[Envelope]) -> None:
        if self._closing:
            if self.client_id is not None:
                self.server.requeue(self.client_id, messages)
            return
        if not self._write_directly(messages):
            self._add(messages, sum(len(message.raw) for message in messages))

    # -- the queue ---------------------------------------------------------------------

    def _add(self, items: Sequence[Queued], size: int) -> None:
        self._queue.extend(items)
        self._queued_bytes += size
        if self._queued_bytes > self._max_bytes and not self._closing:
            self._drop()
            return
        if len(self._queue) > self._max_queue and self._stall_check is None:
            loop = asyncio.get_running_loop()
            self._stall_check = loop.call_later(STALL_GRACE, self._check_stalled)
        self._wake()

    def _add_reply(self, text: bytes, batch: Batch) -> None:
        self._add((ReplyFrame(text, batch),), len(text))

    def _drop(self) -> None:
        log.warning(
            "client %s fell %d bytes behind (cap %d); dropping it",
            self.client_id,
            self._queued_bytes,
            self._max_bytes,
        )
        self._queue = []
        self._queued_bytes = 0
        self._dropped()
        self.server.drop_client(self.client_id, "outbox_bytes")

    def _check_stalled(self) -> None:
        self._stall_check = None
        if len(self._queue) <= self._max_queue:
            return
        log.warning("client %s is not reading; closing its connection", self.client_id)
        self.server.limit_hit("stalled")
        # Replies still go out before the close; deliveries wait in the engine.
        replies = [item for item in self._queue if isinstance(item, ReplyFrame)]
        unsent = [item for item in self._queue if isinstance(item, Envelope)]
        self._queue = list(replies)
        self._queued_bytes = sum(len(reply.text) for reply in replies)
        if unsent and self.client_id is not None:
            self.server.requeue(self.client_id, unsent)
        self._stalled()

    def _stop_checks(self) -> None:
        if self._stall_check is not None:
            self._stall_check.cancel()
            self._stall_check = None

    async def _write_queued(self) -> None:
        """Write the queue in order until it is empty, acknowledging each write.

        Raises what the write raised, after putting back what was not written.
        """
        items: list[Queued] = []
        index = 0
        try:
            while self._queue:
                items, self._queue = self._queue, []
                self._queued_bytes = 0
                index = 0
                while index < len(items):
                    item = items[index]
                    if isinstance(item, ReplyFrame):
                        await self._write_reply(item.text)
                        index += 1
                        item.batch.written()
                        continue
                    end = self._group_end(items, index)
                    client_id = self.client_id
                    await self._write_deliveries(items[index:end])  # type: ignore[arg-type]
                    count, index = end - index, end
                    if client_id is not None:
                        self.server.acknowledge(client_id, count)
        except BaseException:
            unsent, self._queue = [*items[index:], *self._queue], []
            self._queued_bytes = 0
            self._unwritten(unsent)
            raise

    def _unwritten(self, items: list[Queued]) -> None:
        envelopes = []
        for item in items:
            if isinstance(item, ReplyFrame):
                item.batch.unwritten()
            else:
                envelopes.append(item)
        if envelopes and self.client_id is not None:
            self.server.requeue(self.client_id, envelopes)

    def _group_end(self, items: Sequence[Queued], start: int) -> int:
        """Where the deliveries from ``items[start]`` that share one write end.

        They share it up to ``max_frame`` bytes (for WebSocket, the size the server
        accepts from a client), so batching never exceeds a client's own limit.
        """
        first = items[start]
        assert isinstance(first, Envelope)
        end, size = start + 1, len(first.raw)
        while end < len(items):
            following = items[end]
            if not isinstance(following, Envelope):
                break
            size += len(following.raw) + 1
            if size > self._max_frame:
                break
            end += 1
        return end

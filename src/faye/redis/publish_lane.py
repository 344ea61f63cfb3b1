"""The publish lane, shared by both layouts (a :class:`~faye.redis.turns.TurnLane`).

Batches keep their order, so publishes reach Redis in the order they were called even
when a caller does not wait for one before making the next; and a burst costs one
round trip per master, not one per message. What a batch becomes in Redis is the
layout's business (the ``send`` it is given); a batch waits out a Redis stall until its
oldest publish has waited ``stall_timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from faye.engine import EngineError
from faye.envelope import Envelope
from faye.redis.turns import TurnLane

#: A publish waiting in the lane: the message, its channel's expansion (the names a
#: subscription may have matched) and its caller's future.
Publish = tuple[Envelope, Sequence[str], "asyncio.Future[None]"]

#: Sends one batch; ``until`` is the loop time up to which a stall is waited out (None:
#: no waiting, no retry). It settles every future it can; the lane fails the rest.
SendBatch = Callable[[list[Publish], "float | None"], Awaitable[None]]


class PublishLane:
    def __init__(self, send: SendBatch, stall_timeout: float) -> None:
        self._send = send
        self._stall = stall_timeout
        self._lane: TurnLane[Publish] = TurnLane(self._send_batch)
        self._tokens = 0

    def submit(self, envelope: Envelope, channels: Sequence[str]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lane.add((envelope, channels, future))
        return future

    def token(self) -> str:
        """A new token for a retriable call: a call Redis already ran finds its token
        (kept ``stall_timeout`` plus a margin) and does nothing again."""
        self._tokens += 1
        return str(self._tokens)

    async def _send_batch(self, batch: list[Publish]) -> None:
        # A batch waits out a stall until its oldest publish has waited stall_timeout
        # (0: no waiting, no retry).
        until = self._lane.since + self._stall if self._stall else None
        try:
            await self._send(batch, until)
        except BaseException as exc:
            error = exc if isinstance(exc, EngineError) else EngineError(repr(exc))
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise

    def fail(self, error: EngineError) -> None:
        """Fail every publish not yet sent (the engine is closing)."""
        for _, _, future in self._lane.take_waiting():
            if not future.done():
                future.set_exception(error)

    async def finish(self, limit: float) -> None:
        """Wait (at most ``limit`` seconds) for the batch on the wire."""
        await self._lane.finish(limit)

    def cancel(self) -> None:
        self._lane.cancel()

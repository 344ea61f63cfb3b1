"""One batch per event-loop turn, one batch on the wire at a time.

The engine's lanes (publishes, deliveries, connects, long-poll replies) all work this
way: whatever is added during one turn of the event loop goes to Redis as one batch,
so that a burst costs one round trip instead of one per item, and the next batch waits
for the one on the wire, so that batches reach Redis in the order they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TurnLane(Generic[T]):
    def __init__(self, send: Callable[[list[T]], Awaitable[None]]) -> None:
        self._send = send
        self._waiting: list[T] = []
        self._task: asyncio.Task[None] | None = None
        #: Loop time at which the oldest item waiting was added.
        self.since = 0.0

    def add(self, item: T) -> None:
        if not self._waiting:
            self.since = asyncio.get_running_loop().time()
        self._waiting.append(item)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    @property
    def busy(self) -> bool:
        """Whether anything waits or is on the wire."""
        return bool(self._waiting) or self._task is not None

    @property
    def waiting(self) -> int:
        """How many items wait for the next batch."""
        return len(self._waiting)

    def take_waiting(self) -> list[T]:
        """Remove what waits, unsent (to fail it: the engine is closing)."""
        waiting, self._waiting = self._waiting, []
        return waiting

    async def _run(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # let this turn's items join the batch
                batch, self._waiting = self._waiting, []
                await self._send(batch)
        finally:
            self._task = None

    async def idle(self) -> None:
        """Wait until nothing waits or is on the wire (errors are the sender's)."""
        while self.busy:
            task = self._task
            if task is None:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def finish(self, limit: float) -> None:
        """Wait (at most ``limit`` seconds) for the batch on the wire."""
        task = self._task
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), limit)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

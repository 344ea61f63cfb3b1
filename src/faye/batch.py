"""One request's messages after dispatch: replies, work still to wait for, and the
deliveries its replies carry.

A transport owns the deliveries once it has the replies: written, they are
acknowledged (:meth:`Batch.written`) so the engine may forget them; lost with the
connection, they go back to the engine (:meth:`Batch.unwritten`) for the client's next
connect. A batch given up before its replies exist puts back what its connects were
holding (:meth:`Batch.abandon`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from faye.envelope import Envelope, Item, Message


class BatchOwner(Protocol):
    """What a batch needs from the server that dispatched it."""

    @property
    def has_outgoing(self) -> bool: ...

    async def outgoing(self, items: list[Item], request: Any) -> list[Item]: ...

    def acknowledge(self, client_id: str, count: int) -> None: ...

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None: ...

    def release(self, client_id: str, waiter: asyncio.Future[list[Envelope]]) -> None:
        """A held connect's request went away: keep what it had for the next connect."""


class Held:
    """A ``/meta/connect`` waiting for deliveries: its reply (advice and all, ready but
    for the deliveries) and the future the proxy answers with them.

    No coroutine waits behind it: a held connect costs this object and a future, and
    whoever holds the batch decides how to wait (:meth:`Batch.finish` or a callback).
    """

    __slots__ = ("client_id", "reply", "waiter")

    def __init__(
        self, client_id: str, reply: Message, waiter: asyncio.Future[list[Envelope]]
    ) -> None:
        self.client_id = client_id
        self.reply = reply
        self.waiter = waiter


class Batch:
    """A batch after dispatch: its immediate replies, and what is still to wait for."""

    __slots__ = ("deliveries", "held", "late", "owner", "publishing", "replies", "request")

    def __init__(self, owner: BatchOwner, request: Any) -> None:
        self.owner = owner
        self.request = request
        self.replies: list[Item] = []
        self.publishing: list[asyncio.Task[list[Item]]] = []
        self.held: list[Held] = []
        #: Replies to connects answered at once (refused ones), which come after the
        #: publishes like every connect's.
        self.late: list[Item] = []
        #: (client id, its deliveries) for each connect answered with deliveries.
        self.deliveries: list[tuple[str, list[Envelope]]] = []

    @property
    def waiting(self) -> bool:
        return bool(self.held or self.publishing)

    def lone_waiter(self) -> asyncio.Future[list[Envelope]] | None:
        """The one future this batch still waits for, when nothing else remains to be
        done (no publish pending, no outgoing extension): the transport may then answer
        from the future's callback with :meth:`collect` instead of running a task."""
        if len(self.held) == 1 and not self.publishing and not self.owner.has_outgoing:
            return self.held[0].waiter
        return None

    def collect(self) -> list[Item]:
        """The replies, once :meth:`lone_waiter` is done."""
        held = self.held.pop()
        self.replies.extend(self._answer(held))
        return self.replies

    def _answer(self, held: Held) -> list[Item]:
        waiter = held.waiter
        envelopes = [] if waiter.cancelled() else waiter.result()
        if envelopes:
            self.deliveries.append((held.client_id, envelopes))
        return [held.reply, *envelopes]

    async def finish(self) -> list[Item]:
        """Publish replies in request order, then connects as they are answered."""
        completed = False
        try:
            for task in self.publishing:
                self.replies.extend(await task)
            self.publishing = []
            self.replies.extend(self.late)
            self.late = []
            while self.held:
                pending = {held.waiter for held in self.held}
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for held in [held for held in self.held if held.waiter.done()]:
                    self.held.remove(held)
                    answer = self._answer(held)
                    if self.owner.has_outgoing:
                        answer = await self.owner.outgoing(answer, self.request)
                    self.replies.extend(answer)
            completed = True
        finally:
            if not completed:
                self.abandon()
        return self.replies

    def written(self) -> None:
        """The replies reached the client: its deliveries are done with."""
        deliveries, self.deliveries = self.deliveries, []
        for client_id, envelopes in deliveries:
            self.owner.acknowledge(client_id, len(envelopes))

    def unwritten(self) -> None:
        """The replies did not reach the client: its deliveries wait for the next connect."""
        deliveries, self.deliveries = self.deliveries, []
        for client_id, envelopes in deliveries:
            self.owner.requeue(client_id, envelopes)

    def abandon(self) -> None:
        """Give the batch up before its replies exist (the transport went away)."""
        for task in self.publishing:
            task.cancel()
        held, self.held = self.held, []
        for connect in held:
            self.owner.release(connect.client_id, connect.waiter)
        self.unwritten()

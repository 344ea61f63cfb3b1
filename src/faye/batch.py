"""One request's messages after dispatch: replies, work still to wait for, and the
deliveries its replies carry.

A transport owns the deliveries once it has the replies: written, they are
acknowledged (:meth:`Batch.written`) so the engine may forget them; lost with the
connection, they go back to the engine (:meth:`Batch.unwritten`) for the client's next
connect. A batch given up before its replies exist puts them back itself
(:meth:`Batch.abandon`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from faye.envelope import Envelope, Item

#: What settles a client's deliveries: ``(client_id, count)`` acknowledges them,
#: ``(client_id, messages)`` puts them back.
Acknowledge = Callable[[str, int], None]
Requeue = Callable[[str, Sequence[Envelope]], None]


class Batch:
    """A batch after dispatch: its immediate replies, and what is still to wait for.

    Held connects are kept as coroutines and only started by :meth:`finish`: a lone
    connect (the usual case) is then awaited directly, so a waiting client costs no
    task of its own beyond its transport's.
    """

    __slots__ = ("_acknowledge", "_requeue", "deliveries", "held", "publishing", "replies")

    def __init__(self, acknowledge: Acknowledge, requeue: Requeue) -> None:
        self._acknowledge = acknowledge
        self._requeue = requeue
        self.replies: list[Item] = []
        self.publishing: list[asyncio.Task[list[Item]]] = []
        self.held: list[Coroutine[Any, Any, list[Item]]] = []
        #: (client id, its deliveries) for each connect answered with deliveries.
        self.deliveries: list[tuple[str, list[Envelope]]] = []

    @property
    def waiting(self) -> bool:
        return bool(self.held or self.publishing)

    async def finish(self) -> list[Item]:
        """Publish replies in request order, then connects as they are answered."""
        completed = False
        held, self.held = self.held, []
        tasks: list[asyncio.Task[list[Item]]] = []
        try:
            for task in self.publishing:
                self.replies.extend(await task)
            if len(held) == 1:
                self.replies.extend(await held.pop())
            else:
                tasks = [asyncio.ensure_future(coro) for coro in held]
                held = []
                pending: set[asyncio.Task[list[Item]]] = set(tasks)
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in tasks:
                        if task in done:
                            self.replies.extend(task.result())
            completed = True
        finally:
            for coro in held:
                coro.close()
            if not completed:
                for task in tasks:
                    task.cancel()
                self.abandon()
        return self.replies

    def written(self) -> None:
        """The replies reached the client: its deliveries are done with."""
        deliveries, self.deliveries = self.deliveries, []
        for client_id, envelopes in deliveries:
            self._acknowledge(client_id, len(envelopes))

    def unwritten(self) -> None:
        """The replies did not reach the client: its deliveries wait for the next connect."""
        deliveries, self.deliveries = self.deliveries, []
        for client_id, envelopes in deliveries:
            self._requeue(client_id, envelopes)

    def abandon(self) -> None:
        """Give the batch up before its replies exist (the transport went away)."""
        for task in self.publishing:
            task.cancel()
        for coro in self.held:
            coro.close()
        self.held = []
        self.unwritten()

"""What a transport may ask of the server: the one door from transports inward.

Like Faye's adapters, transports only turn bytes into batches and replies into bytes;
everything else (the engine, held connects, counters) stays behind this port, so a
transport can be read, tested and replaced without knowing the proxy or the engine.
:class:`faye.server.Server` implements it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from faye.batch import Batch
from faye.envelope import Envelope, Item
from faye.proxy import PushSocket


class ServerPort(Protocol):
    @property
    def has_outgoing(self) -> bool:
        """Whether outgoing extensions may change what each recipient gets (then a
        delivery cannot be written as the shared frame)."""

    async def begin(self, messages: Any, request: Any) -> Batch:
        """Dispatch a batch; its held connects are awaited by :meth:`Batch.finish`."""

    async def handle(self, messages: Any, request: Any) -> Batch:
        """Dispatch a batch and wait for all of it; the transport then writes
        ``batch.replies`` and settles them (:meth:`Batch.written` or ``unwritten``)."""

    async def outgoing(self, items: list[Item], request: Any) -> list[Item]:
        """Deliveries pushed on a socket, through the outgoing extensions."""

    async def client_exists(self, client_id: Any) -> bool: ...

    def open_socket(self, client_id: str, socket: PushSocket) -> None:
        """From now on the client's deliveries are pushed on ``socket``."""

    def close_socket(self, client_id: str, socket: PushSocket, *, flush: bool = False) -> None:
        """``socket`` no longer serves the client; with ``flush`` its held connect is
        answered now, otherwise it stays held for a request still waiting."""

    def acknowledge(self, client_id: str, count: int) -> None:
        """The client's next ``count`` pushed deliveries were written."""

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None:
        """Deliveries that were not written wait for the client's next connect."""

    def drop_client(self, client_id: str | None, reason: str) -> None:
        """Destroy a client a transport gave up on (it handshakes again), counting
        ``reason`` among the limits hit."""

    def limit_hit(self, reason: str) -> None:
        """Count a limit a transport enforced (``stalled``, ``outbox_bytes``)."""

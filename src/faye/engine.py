"""The contract every engine satisfies.

An engine owns the shared state: client ids and their liveness, subscriptions and
per-client message queues. It knows nothing of HTTP or held connects; those belong
to the :class:`~faye.proxy.EngineProxy`, which calls the engine and is called back
through the small :class:`EngineHost` surface.

Monitoring events are raised by the proxy, from the values engines return, so each
engine does not have to get the order and the "only if it changed" rules right again.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Generator, Mapping, Sequence
from typing import Any, Protocol

from faye.envelope import Envelope


class EngineHost(Protocol):
    """What an engine may call on the proxy that owns it."""

    timeout: float

    def has_connection(self, client_id: str) -> bool: ...

    def deliver(self, client_id: str, messages: Sequence[Envelope]) -> bool: ...

    def on_close(self, client_id: str) -> None:
        """The client is gone (in any process): answer its held connect, close its socket."""

    async def destroy_client(self, client_id: str) -> None:
        """Destroy with events; engines call this from their garbage collector."""


class Completed:
    """An awaitable that is already done: the result of work finished synchronously."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator that finishes at once


COMPLETED = Completed()


class EngineError(Exception):
    """The engine could not do what was asked (for example Redis is unreachable)."""


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
#: Every two-digit string in base 36, so an id takes 16 divisions instead of 31.
_DIGIT_PAIRS = tuple(a + b for a in _DIGITS for b in _DIGITS)


def generate_id() -> str:
    """A 160-bit random id in base 36, padded to 31 characters, like Faye's."""
    number = secrets.randbits(160)
    out = []
    for _ in range(16):
        number, rem = divmod(number, 1296)
        out.append(_DIGIT_PAIRS[rem])
    out.reverse()
    return "".join(out)[1:]  # 2**160 < 36**31: the 32nd digit is always 0


class Engine(ABC):
    """Shared state behind one or many servers."""

    def __init__(self, host: EngineHost, options: Mapping[str, Any] | None = None) -> None:
        self.host = host
        self.options = dict(options or {})

    async def resolve(self) -> Engine:
        """The engine to run in this one's place, found before :meth:`start`: itself,
        unless the deployment calls for another (the Redis engine with ``layout: auto``
        runs the layout its namespace's servers use)."""
        return self

    async def start(self) -> None:
        """Open connections and start background work; called once before use."""

    @abstractmethod
    async def create_client(self) -> str:
        """Register a new client (alive from now on) and return its id."""

    @abstractmethod
    async def client_exists(self, client_id: str) -> bool: ...

    async def client_known(self, client_id: str) -> bool:
        """``client_exists``, or an answer this process may give from memory (the
        lookup before a subscribe, unsubscribe or disconnect, which the operation
        itself settles); a connect asks ``client_exists``."""
        return await self.client_exists(client_id)

    @abstractmethod
    async def destroy_client(self, client_id: str) -> list[str] | None:
        """Forget a client; return the channels it was subscribed to, None if unknown.

        Must make ``host.on_close(client_id)`` happen in every *other* process; the
        proxy runs it here itself, after the unsubscribe and disconnect events, so the
        events keep Faye's order.
        """

    @abstractmethod
    async def ping(self, client_id: str) -> None:
        """The client proved it is alive (handshake or successful connect)."""

    @abstractmethod
    async def subscribe(self, client_id: str, channel: str) -> bool:
        """True only if the subscription is new."""

    @abstractmethod
    async def unsubscribe(self, client_id: str, channel: str) -> bool:
        """True only if the subscription existed."""

    @abstractmethod
    def publish(self, envelope: Envelope, channels: Sequence[str]) -> Awaitable[None]:
        """Queue ``envelope`` once for every client subscribed to any of ``channels``.

        Not a coroutine on purpose: the publish takes its place in the engine's order
        when this is *called*, and the returned awaitable completes when it is done.
        So a server may start the next publish of a connection before the previous
        one completed (pipelining them) without reordering them.
        """

    @abstractmethod
    async def empty_queue(self, client_id: str) -> None:
        """If this process holds the client's connection, deliver its whole queue."""

    async def connect(self, client_id: str) -> None:
        """A successful ``/meta/connect``: the client is alive, and its queue is wanted.

        Engines that can do both in one round trip override this.
        """
        await self.ping(client_id)
        await self.empty_queue(client_id)

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None:
        """Put back messages taken for a reply that could not be sent (client vanished).

        Called at the moment of the failure and must not block: an engine that needs
        I/O queues it (and logs its failure) itself.
        """

    def connection_closed(self, client_id: str) -> None:
        """The client's last connection in this process ended (its socket closed, or
        its held connect was answered). Its next one may reach another process: an
        engine that records a client's progress lazily records it now. Must not block.
        """

    async def hand_over(self) -> None:
        """The server is draining: its clients are about to connect to other servers.
        Called before their sockets are closed; an engine stops handing messages out
        here and records how far each client got, so that the next server neither
        skips nor repeats what was written."""

    #: Set by engines that keep taken messages "in flight" until they are written,
    #: so that the proxy only reports writes to engines that care.
    tracks_delivery: bool = False

    def acknowledge(self, client_id: str, count: int) -> None:
        """The client's next ``count`` deliveries, in delivery order, were written out.

        Engines that keep messages in flight (to survive a server dying between
        taking and sending them) release them here; ``requeue`` is the failure path.
        Called for every write, so it must not block or start a task per call.
        """

    async def close(self) -> None:
        """Release connections and background tasks."""

    @classmethod
    def create(cls, host: EngineHost, options: Mapping[str, Any]) -> Engine:
        """Faye's engine factory hook: ``engine={"type": SomeEngine, ...}``."""
        return cls(host, options)

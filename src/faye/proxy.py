"""Held ``/meta/connect`` requests, push sockets and delivery, around any engine.

A held connect is a Future and an entry in the deadlines of its tick: waiting costs
no task, no timer handle of its own and no polling. Deliveries that arrive in the same
event-loop turn are answered together, as Faye does with its zero-delay delivery timer.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from faye.engine import COMPLETED, Engine
from faye.envelope import Envelope, Message
from faye.events import Monitor
from faye.protocol import channels

log = logging.getLogger("faye.proxy")


class PushSocket(Protocol):
    """A transport that can push deliveries between connects (WebSocket, EventSource)."""

    def push(self, messages: Sequence[Envelope]) -> None:
        """Queue messages for sending; must not block."""

    def close(self) -> None:
        """Close after whatever was already queued has been sent."""


#: The resolution of held connects' deadlines, in seconds.
TICK = 0.1


class Deadlines:
    """When held connects time out, to the next :data:`TICK`: one timer for them all.

    A timer handle per held connect (with its bound method) is kept for every idle
    client; here a held connect is one entry in the set of connects whose deadline
    falls in the same tick, and the process keeps one timer, for the earliest tick. A
    connect is held up to one tick longer than asked.
    """

    __slots__ = ("_buckets", "_ticks", "_timer", "_timer_tick")

    def __init__(self) -> None:
        self._buckets: dict[int, dict[Connection, None]] = {}
        self._ticks: list[int] = []  # a heap of the keys of _buckets
        self._timer: asyncio.TimerHandle | None = None
        self._timer_tick = 0

    def add(self, connection: Connection, delay: float) -> dict[Connection, None]:
        """Flush ``connection`` in ``delay`` seconds; returns what :meth:`remove` takes."""
        loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + delay) / TICK)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = {}
            heapq.heappush(self._ticks, tick)
            if self._timer is None or tick < self._timer_tick:
                self._schedule(loop, tick)
        bucket[connection] = None
        return bucket

    @staticmethod
    def remove(connection: Connection, bucket: dict[Connection, None]) -> None:
        bucket.pop(connection, None)

    def clear(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()
        self._ticks.clear()

    def _schedule(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_tick = tick
        self._timer = loop.call_at(tick * TICK, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time() / TICK + 1e-6  # call_at may fire a clock resolution early
        ticks = self._ticks
        while ticks and ticks[0] <= now:
            bucket = self._buckets.pop(heapq.heappop(ticks))
            for connection in list(bucket):
                connection.flush()
        if ticks:
            self._schedule(loop, ticks[0])


class Connection:
    """One client's presence in this process: a held connect and/or a bound socket."""

    __slots__ = ("_deadline", "_flush_handle", "client_id", "inbox", "proxy", "socket", "waiter")

    def __init__(self, proxy: EngineProxy, client_id: str) -> None:
        self.proxy = proxy
        self.client_id = client_id
        self.socket: PushSocket | None = None
        self.waiter: asyncio.Future[list[Envelope]] | None = None
        self.inbox: list[Envelope] = []
        self._deadline: dict[Connection, None] | None = None
        self._flush_handle: asyncio.Handle | None = None

    def wait(self, hold: float | None) -> asyncio.Future[list[Envelope]]:
        """Hold a connect for ``hold`` seconds (None: until flushed) or until something
        is delivered.

        A connect that supersedes a held one answers the older one at once (empty and
        successful) instead of leaving it hanging as Faye does.
        """
        loop = asyncio.get_running_loop()
        previous = self.waiter
        if previous is not None and not previous.done():
            previous.set_result([])
        waiter: asyncio.Future[list[Envelope]] = loop.create_future()
        self.waiter = waiter
        if self._deadline is not None:
            Deadlines.remove(self, self._deadline)
            self._deadline = None
        if hold is not None:
            self._deadline = self.proxy.deadlines.add(self, hold)
        if self.inbox:
            self._schedule_flush()
        return waiter

    def deliver(self, message: Envelope) -> None:
        if self.socket is not None:
            self.socket.push((message,))
            return
        self.inbox.append(message)
        if self.waiter is not None:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    def _cancel_timers(self) -> None:
        if self._deadline is not None:
            Deadlines.remove(self, self._deadline)
            self._deadline = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def flush(self) -> None:
        """Answer the held connect with the inbox; a socket-less connection then ends."""
        self._cancel_timers()
        waiter, self.waiter = self.waiter, None
        inbox, self.inbox = self.inbox, []
        if waiter is not None and not waiter.done():
            waiter.set_result(inbox)
        elif inbox:
            if self.socket is not None:
                self.socket.push(inbox)
            else:
                self.proxy.requeue(self.client_id, inbox)
        if self.socket is None:
            self.proxy.close_connection(self.client_id)

    def abandon(self, waiter: asyncio.Future[list[Envelope]]) -> None:
        """The request holding ``waiter`` went away: keep its messages for the next connect."""
        if waiter is not self.waiter:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.proxy.requeue(self.client_id, waiter.result())
            return
        self._cancel_timers()
        self.waiter = None
        inbox, self.inbox = self.inbox, []
        if inbox:
            self.proxy.requeue(self.client_id, inbox)
        if self.socket is None:
            self.proxy.close_connection(self.client_id)


EngineFactory = Callable[["EngineProxy", Mapping[str, Any]], Engine]


class EngineProxy(Monitor):
    """What the server talks to: engine calls plus connections, timers and events (it is
    the server's :class:`~faye.events.Monitor`, which its engine counts into too)."""

    def __init__(
        self,
        engine: EngineFactory,
        options: Mapping[str, Any] | None = None,
        *,
        timeout: float = 60.0,
        interval: float = 0.0,
    ) -> None:
        super().__init__()
        self.timeout = float(timeout)
        self.interval = float(interval)
        self._connections: dict[str, Connection] = {}
        self._subscription_counts: dict[str, int] = {}
        self.deadlines = Deadlines()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self.backend: Engine = engine(self, dict(options or {}))

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if not self._started:
            self._started = True
            self.backend = await self.backend.resolve()
            await self.backend.start()

    async def close(self) -> None:
        self.flush_all()
        self.deadlines.clear()
        await self.backend.close()
        self._started = False

    async def cleanup_expired(self) -> int:
        """One garbage collection now, for ``bayeux.get_engine().cleanup_expired()``.

        Returns how many expired clients were destroyed. Only engines that collect on
        demand (the Redis engine) have it; the memory engine sweeps on its own timer.
        """
        cleanup = getattr(self.backend, "cleanup_expired", None)
        if cleanup is None:
            raise NotImplementedError(
                f"{type(self.backend).__name__} collects expired clients on its own; "
                "cleanup_expired() is the Redis engine's"
            )
        collected: int = await cleanup()
        return collected

    # -- client lifecycle, with Faye's events ----------------------------------------

    async def create_client(self) -> str:
        client_id = await self.backend.create_client()
        self.trigger("handshake", client_id)
        return client_id

    async def client_exists(self, client_id: Any) -> bool:
        if not isinstance(client_id, str) or not client_id:
            return False
        return await self.backend.client_exists(client_id)

    async def client_known(self, client_id: Any) -> bool:
        if not isinstance(client_id, str) or not client_id:
            return False
        return await self.backend.client_known(client_id)

    async def destroy_client(self, client_id: str) -> None:
        removed = await self.backend.destroy_client(client_id)
        if removed is None:
            return
        for channel in removed:
            self.trigger("unsubscribe", client_id, channel)
        self.trigger("disconnect", client_id)
        self.on_close(client_id)

    async def subscribe(self, client_id: str, channel: str) -> bool:
        """True if the subscription is new."""
        if not await self.backend.subscribe(client_id, channel):
            return False
        self._subscription_counts[client_id] = self._subscription_counts.get(client_id, 0) + 1
        self.trigger("subscribe", client_id, channel)
        return True

    async def unsubscribe(self, client_id: str, channel: str) -> bool:
        """True if the subscription existed."""
        if not await self.backend.unsubscribe(client_id, channel):
            return False
        count = self._subscription_counts.get(client_id, 0) - 1
        if count > 0:
            self._subscription_counts[client_id] = count
        else:
            self._subscription_counts.pop(client_id, None)
        self.trigger("unsubscribe", client_id, channel)
        return True

    def subscriptions_held(self) -> int:
        """All subscriptions counted by :meth:`subscription_count`, for metrics."""
        return sum(self._subscription_counts.values())

    def connections_held(self) -> int:
        """Clients with a held connect or a bound socket in this process."""
        return len(self._connections)

    def subscription_count(self, client_id: str) -> int:
        """Subscriptions the client made through this process (all of them on the memory
        engine; on a shared engine, those made here and not yet undone here)."""
        return self._subscription_counts.get(client_id, 0)

    def publish(self, message: Message) -> Awaitable[None]:
        """Fan a message out; the returned awaitable completes when the engine is done.

        The publish is ordered when this is called (see :meth:`Engine.publish`).
        Raises TypeError at once if the message cannot be sent as JSON.
        """
        envelope = Envelope.from_message(message)
        channel = message["channel"]
        pending = self.backend.publish(envelope, channels.expand(channel))
        if pending is COMPLETED:
            # Done already (the memory engine): no coroutine to wrap, no task to await it.
            self.trigger("publish", message.get("clientId"), channel, message.get("data"))
            return COMPLETED
        return self._published(pending, message.get("clientId"), channel, message.get("data"))

    async def _published(
        self, pending: Awaitable[None], client_id: Any, channel: str, data: Any
    ) -> None:
        await pending
        self.trigger("publish", client_id, channel, data)

    # -- connects and delivery --------------------------------------------------------

    async def connect(self, client_id: str, hold: float) -> list[Envelope]:
        """Hold a connect; return what arrived for the client (possibly nothing)."""
        waiter = await self.hold(client_id, hold)
        try:
            return await waiter
        except BaseException:
            self.release(client_id, waiter)
            raise

    async def hold(self, client_id: str, hold: float) -> asyncio.Future[list[Envelope]]:
        """Hold a connect: the future is answered with what arrives for the client
        (possibly nothing) within ``hold`` seconds. If its request goes away first,
        :meth:`release` it."""
        connection = self._connection(client_id)
        # An immediate connect (hold 0) is answered once the engine has handed over the
        # client's queue, not on the next loop turn: an engine that drains over the
        # network (Redis) would otherwise find it answered already, empty.
        immediate = hold <= 0
        waiter = connection.wait(None if immediate else hold)
        try:
            await self.backend.connect(client_id)
        except BaseException:
            connection.abandon(waiter)
            raise
        if immediate and connection.waiter is waiter:
            connection.flush()
        return waiter

    def release(self, client_id: str, waiter: asyncio.Future[list[Envelope]]) -> None:
        """The request holding ``waiter`` went away: what it had, or was to get, waits
        for the client's next connect."""
        connection = self._connections.get(client_id)
        if connection is not None:
            connection.abandon(waiter)
        elif waiter.done() and not waiter.cancelled() and waiter.result():
            self.requeue(client_id, waiter.result())

    def _connection(self, client_id: str) -> Connection:
        connection = self._connections.get(client_id)
        if connection is None:
            connection = Connection(self, client_id)
            self._connections[client_id] = connection
            self.trigger("connection:open", client_id)
        return connection

    def has_connection(self, client_id: str) -> bool:
        return client_id in self._connections

    def has_socket(self, client_id: str) -> bool:
        """Whether deliveries to the client are pushed on a socket (WebSocket,
        EventSource) rather than answered to a held connect."""
        connection = self._connections.get(client_id)
        return connection is not None and connection.socket is not None

    def deliver(self, client_id: str, messages: Sequence[Envelope]) -> bool:
        connection = self._connections.get(client_id)
        if connection is None or not messages:
            return False
        for message in messages:
            connection.deliver(message)
        return True

    def open_socket(self, client_id: str, socket: PushSocket) -> None:
        self._connection(client_id).socket = socket

    def detach_socket(self, client_id: str, socket: PushSocket, *, flush: bool = False) -> None:
        """The socket stops serving this client (closed, or it switched client ids).

        With ``flush`` the client's held connect is answered now (on this socket,
        which switched clients); otherwise it stays held for a request still waiting.
        """
        connection = self._connections.get(client_id)
        if connection is None or connection.socket is not socket:
            return
        connection.socket = None
        if flush:
            connection.flush()
        elif connection.waiter is None:
            self.close_connection(client_id)

    def close_connection(self, client_id: str) -> None:
        connection = self._connections.pop(client_id, None)
        if connection is not None:
            self.trigger("connection:close", client_id)
            self.backend.connection_closed(client_id)

    async def hand_over(self) -> None:
        """A drain begins: the engine records its clients' progress before their
        connections close (:meth:`faye.engine.Engine.hand_over`)."""
        await self.backend.hand_over()

    def flush_connection(self, client_id: str) -> None:
        """Answer the held connect and close any socket bound to the client."""
        connection = self._connections.get(client_id)
        if connection is None:
            return
        socket = connection.socket
        connection.socket = None
        connection.flush()
        if socket is not None:
            socket.close()
        self.close_connection(client_id)

    def flush_all(self) -> None:
        """:meth:`flush_connection` for every client held here (a stop, a drain)."""
        for client_id in list(self._connections):
            self.flush_connection(client_id)

    def on_close(self, client_id: str) -> None:
        self._subscription_counts.pop(client_id, None)
        self.trigger("close", client_id)
        asyncio.get_running_loop().call_soon(self.flush_connection, client_id)

    def delivered(self, client_id: str, count: int) -> None:
        """A transport wrote the client's next ``count`` deliveries; the engine may forget them."""
        self.counts["deliveries"] += count
        self.trigger("deliver", client_id, count)
        if self.backend.tracks_delivery and count > 0:
            self.backend.acknowledge(client_id, count)

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None:
        self.backend.requeue(client_id, list(messages))

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run background work without losing the task or its exception."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

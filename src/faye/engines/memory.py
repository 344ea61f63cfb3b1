"""The embedded engine: all state in this process, for one-process deployments and tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from faye.engine import COMPLETED, Engine, EngineHost, generate_id
from faye.envelope import Envelope

#: Longest queue of a client with no connection; the oldest messages are dropped first.
#: The same default as the Redis engine's ``max_queue``.
DEFAULT_MAX_QUEUE = 1000


class MemoryEngine(Engine):
    """Clients expire twice the server timeout after their last ping, as in Faye's memory engine.

    Option ``max_queue`` bounds each client's queue (oldest dropped), as on Redis.
    """

    def __init__(self, host: EngineHost, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(host, options)
        max_queue = self.options.get("max_queue", DEFAULT_MAX_QUEUE)
        if not isinstance(max_queue, int) or isinstance(max_queue, bool) or max_queue < 1:
            raise ValueError(f"max_queue must be a positive integer, got {max_queue!r}")
        self.max_queue = max_queue
        self._clients: set[str] = set()
        self._subscriptions: dict[str, set[str]] = {}
        self._channels: dict[str, set[str]] = {}
        # Created on the first message a client has to wait for: most never need one.
        self._queues: dict[str, list[Envelope]] = {}
        # Client id -> loop time it expires at, kept in that order (a ping moves the
        # client to the end), so one sweeper looks only at the expired head: an idle
        # client costs a dict entry, not a timer of its own.
        self._expiry: dict[str, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._gc_tasks: set[asyncio.Task[None]] = set()

    async def create_client(self) -> str:
        client_id = generate_id()
        while client_id in self._clients:
            client_id = generate_id()
        self._clients.add(client_id)
        self._subscriptions[client_id] = set()
        await self.ping(client_id)
        return client_id

    async def client_exists(self, client_id: str) -> bool:
        return client_id in self._clients

    async def destroy_client(self, client_id: str) -> list[str] | None:
        if client_id not in self._clients:
            return None
        self._expiry.pop(client_id, None)
        removed = sorted(self._subscriptions.pop(client_id, set()))
        for channel in removed:
            self._drop_member(channel, client_id)
        self._clients.discard(client_id)
        self._queues.pop(client_id, None)
        return removed

    async def ping(self, client_id: str) -> None:
        if client_id not in self._clients:
            return
        loop = asyncio.get_running_loop()
        self._expiry.pop(client_id, None)
        self._expiry[client_id] = loop.time() + 2 * self.host.timeout
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_interval, self._sweep)

    @property
    def _sweep_interval(self) -> float:
        """Clients expire at most this late: an eighth of their 2 x timeout lifetime."""
        return max(0.01, self.host.timeout / 4)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired: list[str] = []
        for client_id, deadline in self._expiry.items():
            if deadline > now:
                break
            expired.append(client_id)
        counts = getattr(self.host, "counts", None)  # the server's faye.events.Monitor
        if counts is not None:
            counts["gc_runs"] += 1
            counts["gc_clients_collected"] += len(expired)
        for client_id in expired:
            del self._expiry[client_id]
            task = asyncio.ensure_future(self.host.destroy_client(client_id))
            self._gc_tasks.add(task)
            task.add_done_callback(self._gc_tasks.discard)
        if self._expiry:
            self._sweeper = loop.call_later(self._sweep_interval, self._sweep)

    async def subscribe(self, client_id: str, channel: str) -> bool:
        subscriptions = self._subscriptions.get(client_id)
        if subscriptions is None or channel in subscriptions:
            return False
        subscriptions.add(channel)
        self._channels.setdefault(channel, set()).add(client_id)
        return True

    async def unsubscribe(self, client_id: str, channel: str) -> bool:
        subscriptions = self._subscriptions.get(client_id)
        if subscriptions is None or channel not in subscriptions:
            return False
        subscriptions.discard(channel)
        self._drop_member(channel, client_id)
        return True

    def _drop_member(self, channel: str, client_id: str) -> None:
        members = self._channels.get(channel)
        if members is not None:
            members.discard(client_id)
            if not members:
                del self._channels[channel]

    def publish(self, envelope: Envelope, channels: Sequence[str]) -> Awaitable[None]:
        recipients: set[str] = set()
        for channel in channels:
            members = self._channels.get(channel)
            if members:
                recipients.update(members)
        for client_id in recipients:
            if not self.host.deliver(client_id, (envelope,)) and client_id in self._clients:
                queue = self._queues.setdefault(client_id, [])
                queue.append(envelope)
                if len(queue) > self.max_queue:
                    del queue[0]
        return COMPLETED

    def queued_messages(self) -> int:
        """Messages waiting for clients without a connection (a metrics gauge)."""
        return sum(len(queue) for queue in self._queues.values())

    async def empty_queue(self, client_id: str) -> None:
        if client_id not in self._queues or not self.host.has_connection(client_id):
            return
        self.host.deliver(client_id, self._queues.pop(client_id))

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None:
        if messages and client_id in self._clients:
            queue = [*messages, *self._queues.get(client_id, ())]
            self._queues[client_id] = queue[-self.max_queue :]

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._expiry.clear()

"""The server's events: Faye's monitoring API (``adapter.bind("publish", fn)``) and the
counters that metrics, logs and the admin page read (:class:`Monitor`)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger("faye.events")

Listener = Callable[..., Any]


class EventEmitter:
    """Listeners may be plain functions or coroutine functions; neither can break the caller."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def bind(self, event: str, listener: Listener) -> None:
        self._listeners.setdefault(event, []).append(listener)

    on = bind

    def unbind(self, event: str, listener: Listener | None = None) -> None:
        if listener is None:
            self._listeners.pop(event, None)
            return
        listeners = self._listeners.get(event, [])
        self._listeners[event] = [fn for fn in listeners if fn is not listener]

    def has_listeners(self, event: str) -> bool:
        return bool(self._listeners.get(event))

    def trigger(self, event: str, *args: Any) -> None:
        listeners = self._listeners.get(event)
        if not listeners:
            return
        for listener in list(listeners):
            try:
                result = listener(*args)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._task_done)
            except Exception:
                log.exception("listener for %r failed", event)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("listener task failed", exc_info=task.exception())


#: The Bayeux events a :class:`Monitor` publishes, with their listeners' arguments.
BAYEUX_EVENTS = {
    "handshake": "client_id",
    "subscribe": "client_id, channel",
    "unsubscribe": "client_id, channel",
    "publish": "client_id, channel, data",
    "deliver": "client_id, count (messages written to the client)",
    "disconnect": "client_id",
    "close": "client_id",
    "connection:open": "client_id",
    "connection:close": "client_id",
}

#: Counters kept without an event per increment (engines bump them on hot paths).
ENGINE_COUNTERS = {
    "redis_round_trips": "calls to Redis by the engine's command client, retries included",
    "redis_errors": "of those, the ones that failed (timeouts, lost connections, errors)",
    "gc_runs": "garbage collections this process ran (on Redis: those that took the lock)",
    "gc_clients_collected": "expired clients those collections destroyed",
    "deliveries": "messages written to clients",
}


class Monitor(EventEmitter):
    """One source for what a server does: every event it triggers is counted, engines
    add their own counters (:data:`ENGINE_COUNTERS`), and refusals are counted by limit.

    Metrics (:mod:`faye.metrics`), the admin page (:mod:`faye.admin`) and listeners bound
    with ``adapter.bind`` all read it. Counting costs a dict increment, so an unwatched
    server pays next to nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        #: Events triggered (by name) and engine counters.
        self.counts: Counter[str] = Counter()
        #: Refusals by limit name (channel, subscriptions, publish_rate, handshake_rate,
        #: outbox_bytes, stalled): the last two are slow consumers dropped.
        self.limit_hits: Counter[str] = Counter()

    def trigger(self, event: str, *args: Any) -> None:
        self.counts[event] += 1
        super().trigger(event, *args)

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a counter that has no event of its own."""
        self.counts[name] += amount


def log_events(monitor: Monitor, logger: logging.Logger = log) -> None:
    """Log each Bayeux event the monitor publishes, at DEBUG (``faye serve --log-level
    debug``): the event, the client and the channel or count, never a message's data."""
    for event in BAYEUX_EVENTS:
        monitor.bind(event, functools.partial(_log_event, logger, event))


def _log_event(logger: logging.Logger, event: str, *args: Any) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s %s", event, " ".join(f"{arg!s:.200}" for arg in args[:2]))

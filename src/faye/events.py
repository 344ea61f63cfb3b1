"""A small event emitter for Faye's monitoring API (``adapter.bind("publish", fn)``)."""

from __future__ import annotations

import asyncio
import inspect
import logging
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

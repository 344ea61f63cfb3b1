"""Publish from code without an event loop: Django views, Celery tasks, cron jobs, threads.

A :class:`SyncPublisher` runs an asyncio :class:`~faye.redis.Publisher` on an event loop
of its own, in a daemon thread started by the first publish, and each call waits for its
result there. So there is one publish path (the engine's, with Sentinel and Cluster
support), callers from many threads at once share the loop and its connections (publishes
arriving together may share a round trip), and no caller needs a loop of its own.

A process forked after the publisher was used (Celery's prefork pool, gunicorn
``--preload``) gets a fresh thread, loop and connections in the child on its first
publish; the parent's stay the parent's. Publishers still open at exit are closed.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from faye.redis.publisher import Publisher, PublishError, prepare

T = TypeVar("T")

_INSTANCES: weakref.WeakSet[SyncPublisher] = weakref.WeakSet()


class SyncPublisher:
    """Publish without an event loop: ``publisher.publish("/chat/lobby", data)``.

    Takes the same arguments as :class:`~faye.redis.Publisher`. Thread-safe; make one
    per process (at module level, for example) and share it. ``publish`` blocks until
    Redis has queued the message, and raises :class:`~faye.redis.PublishError` when it
    could not, within :attr:`wait_limit` seconds.
    """

    def __init__(
        self,
        redis: str | Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._args = (redis, namespace, timeout)
        self._publisher = self._make_publisher()  # checks the options now
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        _INSTANCES.add(self)

    def _make_publisher(self) -> Publisher:
        redis, namespace, timeout = self._args
        return Publisher(redis, namespace=namespace, timeout=timeout)

    @property
    def namespace(self) -> str:
        return self._publisher.namespace

    @property
    def wait_limit(self) -> float:
        """The longest a call blocks (see :attr:`Publisher.wait_limit`), plus a second."""
        return self._publisher.wait_limit + 1

    def publish(self, channel: str, data: Any) -> None:
        """Publish one message; returns once Redis has queued it for every subscriber."""
        prepared = [prepare(channel, data)]
        self._run(self._publisher.send(prepared))

    def publish_many(self, messages: Iterable[tuple[str, Any]]) -> None:
        """Publish ``(channel, data)`` pairs in order, in one round trip (see
        :meth:`Publisher.publish_many`)."""
        prepared = [prepare(channel, data) for channel, data in messages]
        self._run(self._publisher.send(prepared))

    def close(self) -> None:
        """Close the connections and stop the thread; publishing afterwards raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("close() was called from the publisher's own thread")
        future = asyncio.run_coroutine_threadsafe(self._publisher.close(), loop)
        with contextlib.suppress(Exception):  # best effort: the loop stops either way
            future.result(self.wait_limit)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.wait_limit)

    def __enter__(self) -> SyncPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            loop = self._running_loop()
        except BaseException:
            coro.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(self.wait_limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise PublishError(f"no answer from Redis within {self.wait_limit:g} s") from None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise PublishError("the SyncPublisher is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve, args=(loop,), name="faye-publisher", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            elif self._thread is threading.current_thread():
                raise RuntimeError("the publisher's own thread cannot wait for itself")
            return self._loop

    def _forget_parent(self) -> None:
        """In a forked child: the parent's thread is not here; start afresh on demand."""
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        _ABANDONED.append(self._publisher)
        self._publisher = self._make_publisher()


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


#: Parents' publishers in a forked child, kept so that their connections (the parent's
#: sockets) are never closed from here.
_ABANDONED: list[Publisher] = []


def _after_fork_in_child() -> None:
    for publisher in list(_INSTANCES):
        publisher._forget_parent()


def _close_all() -> None:
    """At exit, close what a script left open, so its connections end cleanly."""
    for publisher in list(_INSTANCES):
        with contextlib.suppress(Exception):
            publisher.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all)

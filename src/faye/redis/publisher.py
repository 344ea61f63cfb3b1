"""Publish into a fleet straight through Redis, from code that runs no Bayeux server.

A :class:`Publisher` is a Redis engine that never joins the fleet: no heartbeat, no
listener, no clients of its own. Its publish *is* the engine's (the same Lua function
with the same arguments a server sends), so it keeps a server-side publish's guarantees:
every subscriber on every server receives it, wildcard subscribers included, once per
client, in the order this publisher sent them; a publish or a batch costs one round trip
(on a Cluster, one per master involved, in parallel).

No server handles the message on its way in, so incoming extensions do not run for it
and no ``publish`` event fires; outgoing extensions run on the server that delivers it,
as for any delivery. The publisher is trusted code holding the Redis credentials.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from faye.engine import EngineError
from faye.envelope import Envelope
from faye.protocol import channels
from faye.redis.engine import RedisEngine, make_engine
from faye.redis.gc import StandaloneHost

#: A message ready for the engine: its envelope and its channel's expansion.
Prepared = tuple[Envelope, Sequence[str]]


class PublishError(EngineError):
    """Redis did not take the message: unreachable, too slow, refusing, or closed.

    ``failed`` holds the positions (in the batch given to ``publish_many``) of the
    messages that were not published; a single publish has ``(0,)``.
    """

    def __init__(self, message: str, failed: Sequence[int] = (0,)) -> None:
        super().__init__(message)
        self.failed = tuple(failed)


class ChannelError(ValueError):
    """The channel cannot be published to (not a channel name, a wildcard, or /meta)."""


def check_channel(channel: object) -> str:
    """The channel, if a publisher may use it; else :class:`ChannelError` saying why."""
    if not isinstance(channel, str):
        raise ChannelError(f"a channel is a string, got {type(channel).__name__}")
    if channels.is_pattern(channel):
        raise ChannelError(f"{channel!r} is a wildcard pattern: publish to one channel")
    if not channels.is_name(channel):
        raise ChannelError(
            f"{channel!r} is not a channel name (segments of letters, digits and "
            "-_!~()$@, each after a /)"
        )
    if channels.is_meta(channel):
        raise ChannelError(f"{channel!r}: /meta channels are the protocol's, not for publishing")
    return channel


def prepare(channel: object, data: Any) -> Prepared:
    """Check and encode one message; raises ChannelError, or TypeError for data that
    JSON cannot carry. Pure, so a caller's thread can do it before handing over."""
    name = check_channel(channel)
    # An id as Faye's clients give every message (recipients may use it to spot the
    # rare duplicate after a server's death).
    message = {"channel": name, "data": data, "id": secrets.token_hex(8)}
    return Envelope.from_message(message), channels.expand(name)


def engine_options(redis: str | Mapping[str, Any] | None, namespace: str | None) -> dict[str, Any]:
    """The engine options from a URL, or from the mapping a server's ``engine=`` takes."""
    if redis is None:
        options: dict[str, Any] = {}
    elif isinstance(redis, str):
        options = {"url": redis}
    else:
        options = dict(redis)
        kind = options.pop("type", "redis")
        if kind not in ("redis", RedisEngine):
            raise ValueError(f"type: a Publisher talks to the Redis engine, not {kind!r}")
    if namespace is not None:
        options["namespace"] = namespace
    options.setdefault("gc_interval", None)  # never collects: it is not a server
    return options


class Publisher:
    """Publish from asyncio code: ``await publisher.publish("/chat/lobby", data)``.

    ``redis`` is what a server's ``engine=`` takes for the Redis engine: a URL
    (``redis://``, ``rediss://``, ``redis+sentinel://``, ``redis+cluster://``) or the
    option mapping (``"type"`` may stay in it). Give it the servers' options (namespace,
    layout, partitions, max_queue, message_ttl, heartbeat_interval and client_timeout
    shape the publish itself; a publisher of the other layout than the servers' publishes
    into keys nobody reads) and their Bayeux ``timeout``: on one partition, a subscriber counts
    as gone after 1.6 x ``timeout`` without a connect, as on the servers. No I/O
    happens before the first publish.

    A Publisher belongs to the event loop it first publishes in (its connections do).
    Code without a loop of its own uses :class:`~faye.redis.SyncPublisher`.
    """

    def __init__(
        self,
        redis: str | Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        options = engine_options(redis, namespace)
        self.engine = make_engine(StandaloneHost(timeout), options, background=False)
        # The engine of the namespace's layout, found by the first publish.
        self._resolving: asyncio.Future[RedisEngine] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def namespace(self) -> str:
        return self.engine.config.namespace

    @property
    def wait_limit(self) -> float:
        """Seconds a publish may take at most before Redis counts as unreachable: a free
        connection, connecting and one answer (the first also loads the Lua code), or
        ``stall_timeout`` when longer, since a publish waits out a stall as a server's does
        (``stall_timeout: 0`` fails at once)."""
        config = self.engine.config
        single = config.pool_timeout + config.connect_timeout + 2 * config.read_timeout
        return max(single, config.stall_timeout + config.connect_timeout) + 1

    async def publish(self, channel: str, data: Any) -> None:
        """Publish one message; returns once Redis has queued it for every subscriber."""
        await self.send([prepare(channel, data)])

    async def publish_many(self, messages: Iterable[tuple[str, Any]]) -> None:
        """Publish ``(channel, data)`` pairs in order, in one round trip.

        Every message is checked before any is sent. On one Redis the batch is one call
        of the publish function, so it is published whole or not at all; on a Cluster
        a master's failure fails only the messages homed there (``PublishError.failed``).
        """
        await self.send([prepare(channel, data) for channel, data in messages])

    async def send(self, prepared: Sequence[Prepared]) -> None:
        """Hand prepared messages to the engine together, so they share a round trip."""
        self._check_loop()
        if not prepared:
            return
        try:
            async with asyncio.timeout(self.wait_limit):
                engine = await self._resolved()
                pending = [engine.publish(envelope, names) for envelope, names in prepared]
                results = await asyncio.gather(*pending, return_exceptions=True)
        except EngineError as exc:
            raise PublishError(str(exc), range(len(prepared))) from exc
        except TimeoutError:
            raise PublishError(
                f"Redis did not take the publish within {self.wait_limit:g} s",
                range(len(prepared)),
            ) from None
        failed = [i for i, result in enumerate(results) if isinstance(result, BaseException)]
        if not failed:
            return
        first = results[failed[0]]
        assert isinstance(first, BaseException)
        if not isinstance(first, EngineError):
            raise first
        what = "the message was" if len(prepared) == 1 else f"{len(failed)} of {len(prepared)}"
        raise PublishError(f"{what} not published: {first}", failed) from first

    async def _resolved(self) -> RedisEngine:
        """The engine of the layout the namespace's servers run (one lookup, shared by
        the publishes waiting for it; tried again after a failure)."""
        if self._resolving is None:
            self._resolving = asyncio.ensure_future(self.engine.resolve())
        try:
            self.engine = await asyncio.shield(self._resolving)
        except EngineError:
            self._resolving = None
            raise
        return self.engine

    def _check_loop(self) -> None:
        if self._closed:
            raise PublishError("the Publisher is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this Publisher belongs to another event loop (its Redis connections do); "
                "make one per loop, or use SyncPublisher"
            )

    async def close(self) -> None:
        """Close the Redis connections; publishing afterwards raises PublishError."""
        if self._closed:
            return
        self._closed = True
        await self.engine.close()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

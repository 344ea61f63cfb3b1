"""``RedisEngine``: clients, subscriptions and messages in Redis, shared by many servers.

This module holds what both key layouts share; each layout is a subclass with its own
keys, Lua functions and delivery path (docs/redis.md says which to run and why):

* :mod:`faye.redis.layout2` (channel logs, the default on one Redis or Sentinel): a
  publish is written once per subscribed name and sent once to each server holding
  recipients, which fans it out in memory;
* :mod:`faye.redis.layout1` (per-client queues, the default on a Cluster): a publish
  queues the message for every recipient and wakes the servers holding them.

Shared here: the lifecycle (start, close, kill), the choice of layout, the clients'
records and pings, the heartbeat that tells other servers this one is alive, and the
wiring of the parts that have modules of their own: the publish lane
(:mod:`faye.redis.publish_lane`), the listener (:mod:`faye.redis.listening`) and the
garbage collector (:mod:`faye.redis.gc`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from abc import abstractmethod
from collections import Counter
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from typing import Any

from redis import exceptions as rx

from faye.engine import Engine, EngineError, EngineHost, generate_id
from faye.envelope import Envelope
from faye.redis.batching import Batcher
from faye.redis.connection import (
    TRANSIENT,
    RedisClient,
    RedisConnection,
    probe_tls,
    reply_text,
    tls_problem,
)
from faye.redis.gc import GarbageCollector
from faye.redis.keys import Keys
from faye.redis.known import KnownClients
from faye.redis.listening import listen_forever
from faye.redis.log import EngineLog
from faye.redis.options import RedisOptions
from faye.redis.publish_lane import Publish, PublishLane

#: How much longer than ``stall_timeout`` a publish call's token is kept (seconds): a
#: retry is sent at most that long after the first attempt (plus one read timeout).
TOKEN_MARGIN = 30.0


def now_ms() -> int:
    return int(time.time() * 1000)


class RedisEngine(Engine):
    """The Redis engine (``engine={"type": "redis", ...}`` or ``faye.Redis``).

    ``RedisEngine.create`` (what the server calls) makes the engine of the layout the
    options name, or with ``layout: auto`` one whose :meth:`resolve` finds it.
    """

    tracks_delivery = True

    def __init__(
        self,
        host: EngineHost,
        options: Mapping[str, Any] | None = None,
        *,
        background: bool = True,
    ) -> None:
        super().__init__(host, options)
        self.config = RedisOptions.parse(self.options)
        self.exists_window, self.gc_window = self.config.liveness(float(host.timeout))
        ttl = self.config.subscription_ttl
        if ttl is not None and ttl < self.gc_window:
            raise ValueError(
                f"subscription_ttl ({ttl:g} s) must be at least the time after which idle "
                f"clients are collected ({self.gc_window:g} s), or None"
            )
        self.keys = Keys(
            self.config.namespace,
            self.config.partition_count,
            balanced=self.config.mode == "cluster",
        )
        self.server_id = f"{os.getpid()}.{secrets.token_hex(6)}"
        self.log = EngineLog(self.config.log_threshold)
        #: The host's counters when it keeps them (a server's faye.events.Monitor).
        counts = getattr(host, "counts", None)
        self.counts: Counter[str] = Counter() if counts is None else counts
        self.redis = RedisConnection(self.config, self.log, self.counts)
        #: Client calls (handshake, subscribe, connect, disconnect) grouped per loop turn.
        self.batch = Batcher(self.redis)
        self.publishes = PublishLane(self._send_publishes, self.config.stall_timeout)
        self.gc = GarbageCollector(self)
        #: Clients whose existence needs no round trip (see faye.redis.known).
        self.known = KnownClients()
        self._background = background
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._started = False
        self._listening = asyncio.Event()
        #: Whether this server's layout was checked against the namespace's record (not
        #: when Redis was away at start: the listener checks once it gets through).
        self._layout_checked = False
        self._beaten = False

    @property
    def closed(self) -> bool:
        return self._closed

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if not self._background:
            return
        await self.check_layout()
        try:
            await self.redis.load_scripts()
            await self.beat()
            # The lanes' first connection, made now rather than by the first publish.
            await self.redis.call("ping", lambda c: c.ping(), idempotent=True, lanes=True)
        except EngineError as exc:
            await self._raise_if_fatal(exc)
            self.log.error("Redis is not reachable yet (%s); will keep trying", exc)
        self._spawn(self._listen())
        self._spawn(self._heartbeat_loop())
        if self.config.gc_enabled:
            self._spawn(self.gc.loop())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), self.config.connect_timeout + 1)

    async def _raise_if_fatal(self, exc: EngineError) -> None:
        """Raise what no retry mends (credentials, permissions, TLS mistakes), in one
        line; return for Redis being away."""
        cause = exc.__cause__
        transient = isinstance(cause, TRANSIENT)
        if not transient or isinstance(cause, rx.AuthenticationError):
            raise exc  # wrong credentials or permissions: say so at start-up
        problem = tls_problem(exc, self.config)
        if problem is None and self.config.ssl.enabled and self.config.mode == "single":
            problem = await probe_tls(self.config)
        if problem is not None:
            raise EngineError(problem) from exc

    @classmethod
    def create(cls, host: EngineHost, options: Mapping[str, Any]) -> RedisEngine:
        return make_engine(host, options)

    async def resolve(self) -> RedisEngine:
        """With ``layout: auto``, the engine of the layout the namespace's servers run
        (recorded in ``<namespace>:layout``), or of a new namespace's default.

        A server waits for Redis to tell (it cannot serve without Redis anyway, and
        guessing could split a fleet between layouts); a publisher or ``faye gc``
        (no background work) fails at once with EngineError instead.
        """
        if self.config.layout is not None:
            return self
        key, delay, told = f"{self.config.namespace}:layout", self.config.retry_delay, False
        in_use = (self.keys.servers(0), self.keys.clients(0))

        async def look(client: RedisClient) -> Any:
            recorded = await client.get(key)
            if recorded is None:
                # Servers older than the record leave none: a namespace in use without
                # one is layout 1's (one key at a time: a Cluster may home them apart).
                for name in in_use:
                    if await client.exists(name):
                        return "1"
            return recorded

        while True:
            try:
                found = await self.redis.call("layout", look, idempotent=False)
                break
            except EngineError as exc:
                await self._raise_if_fatal(exc)
                if not self._background:
                    raise
                if not told:
                    told = True
                    self.log.error(
                        "Redis is not reachable (%s); waiting for it to learn the layout of "
                        "namespace %r (set the layout option to start without it)",
                        exc,
                        self.config.namespace,
                    )
                await asyncio.sleep(min(max(delay, 0.05), 1.0))
                delay *= 2
        layout = self.config.layout_for(None if found is None else reply_text(found))
        chosen = make_engine(
            self.host, {**self.options, "layout": layout}, background=self._background
        )
        await self.redis.close()
        if told:
            self.log.info(
                "Redis reachable; namespace %r runs layout %d", self.config.namespace, layout
            )
        return chosen

    async def check_layout(self) -> None:
        """Record this namespace's layout, or refuse one the other layout uses: their
        keys mean different things, so mixing them would lose messages."""
        key, mine = f"{self.config.namespace}:layout", str(self.config.layout or 1)

        async def check(client: RedisClient) -> Any:
            await client.set(key, mine, nx=True)
            return await client.get(key)

        try:
            found = reply_text(await self.redis.call("layout", check, idempotent=True))
        except EngineError:
            return  # Redis not reachable yet: the listener checks once it gets through
        if found != mine:
            raise EngineError(
                f"namespace {self.config.namespace!r} is used by servers of Redis layout "
                f"{found}, this server runs layout {mine}: use another namespace (its "
                "clients will handshake again) or the same layout"
            )
        self._layout_checked = True

    async def _check_layout_late(self) -> None:
        """The check start() could not make (Redis was away). A server cannot stop
        serving by itself at this point, so on a mismatch it refuses every client call
        and publish, each with the error, instead of mixing layouts."""
        try:
            await self.check_layout()
        except EngineError as exc:
            self.batch.refuse(exc)
            self.log.error("%s; refusing every client and publish", exc)

    async def close(self) -> None:
        """Stop background work, finish what the lanes hold, leave the fleet."""
        if self._closed:
            return
        await self._stop()
        if self._background:
            with contextlib.suppress(EngineError):
                # Count as long dead: our in-flight messages are recovered at once by the
                # next connect of their clients, or by the next GC.
                await self.redis.call("leave", self._leave_every_partition, idempotent=True)
        await self.batch.close(self.config.read_timeout + 1)
        await self.redis.close()

    async def kill(self) -> None:
        """Stop like a crashed process: no clean-up in Redis (for fault tests)."""
        if self._closed:
            return
        self._closed = True
        self._cancel_background()
        self._cancel_lanes()
        self._fail_pending(EngineError("the Redis engine is closed"))
        self.batch.abort()
        await self.redis.close()

    async def _stop(self) -> None:
        background = list(self._tasks)
        self._cancel_background()
        if background:
            # Let them finish being cancelled (the listener closes its connection), so
            # nothing of ours outlives close(); bounded, whatever Redis does meanwhile.
            await asyncio.wait(background, timeout=self.config.connect_timeout + 2)
        await self._finish_lanes(self.config.read_timeout + 1)
        self._closed = True
        self._fail_pending(EngineError("the Redis engine is closed"))

    async def _finish_lanes(self, limit: float) -> None:
        """Wait (bounded) for the batches on the wire."""
        await self.publishes.finish(limit)

    def _cancel_lanes(self) -> None:
        self.publishes.cancel()

    def _fail_pending(self, error: EngineError) -> None:
        """Fail what waits in the lanes, unsent."""
        self.publishes.fail(error)

    def _cancel_background(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the heartbeat -----------------------------------------------------------------

    async def _leave_every_partition(self, client: RedisClient) -> None:
        """Score 0 in every partition's ``servers``: we count as long dead at once."""
        pipe = client.pipeline(transaction=False)
        for p in range(self.keys.partitions):
            pipe.zadd(self.keys.servers(p), {self.server_id: 0})
        await pipe.execute()

    async def _beat_every_partition(self, client: RedisClient) -> None:
        pipe = client.pipeline(transaction=False)
        for p in range(self.keys.partitions):
            pipe.zscore(self.keys.servers(p), self.server_id)
            pipe.zadd(self.keys.servers(p), {self.server_id: now_ms()})
        results = await pipe.execute()
        known = all(score is not None for score in results[0::2])
        if self._beaten and not known:
            self.log.warning(
                "server %s was presumed dead; resetting in-flight state", self.server_id
            )
            self._presumed_dead()
        self._beaten = True

    def _presumed_dead(self) -> None:
        """Another server (or a Redis restart) declared this one dead, and took over
        what it held in flight: forget it here."""

    async def beat(self) -> None:
        await self.redis.call("heartbeat", self._beat_every_partition, idempotent=True)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                await self.beat()
            except EngineError as exc:
                self.log.debug("heartbeat failed: %s", exc)
            self._after_beat()

    def _after_beat(self) -> None:
        """Periodic housekeeping of the layout, at the heartbeat's pace."""

    # -- clients -----------------------------------------------------------------------

    def liveness(self, window: float) -> float:
        """``window`` lengthened by a recent Redis outage: a live client pings with each
        connect, and during an outage none could. Without it, a stall longer than
        0.6 x ``timeout`` makes live clients unknown once it ends (their next connect
        gets 401, and what was queued for them is lost when they handshake again) and
        skipped by publishes."""
        outage = self.redis.health.outage_within(window)
        return window + outage if outage > 0 else window

    def alive_after_ms(self, window: float, now: int | None = None) -> int:
        """The ms timestamp a last ping must follow to count within ``window``."""
        return (now_ms() if now is None else now) - int(self.liveness(window) * 1000)

    def cutoffs(self) -> tuple[int, int, int]:
        """(now, clients alive after, servers alive after), in ms."""
        now = now_ms()
        dead = now - int(self.config.dead_server_after * 1000)
        return now, self.alive_after_ms(self.exists_window, now), dead

    async def create_client(self) -> str:
        for _ in range(10):
            client_id = generate_id()
            key = self.keys.clients(self.keys.partition(client_id))
            added = await self.batch.command(
                "create_client", "ZADD", key, "NX", now_ms(), client_id, idempotent=True
            )
            if added:
                self.known.saw(client_id, now_ms())
                return client_id
        raise EngineError("could not allocate a client id")

    async def client_known(self, client_id: str) -> bool:
        alive = self.known.alive(client_id, self.alive_after_ms(self.exists_window))
        return alive or await self.client_exists(client_id)

    async def client_exists(self, client_id: str) -> bool:
        cutoff = self.alive_after_ms(self.exists_window)
        key = self.keys.clients(self.keys.partition(client_id))
        found = await self.batch.command("client_exists", "ZSCORE", key, client_id, idempotent=True)
        score = None if found is None else float(found)
        if score is not None and score > cutoff:
            self.known.saw(client_id, score)
            return True
        self.known.forget(client_id)
        return False

    async def ping(self, client_id: str) -> None:
        key = self.keys.clients(self.keys.partition(client_id))
        await self.batch.command("ping", "ZADD", key, "XX", now_ms(), client_id, idempotent=True)

    def _forget(self, client_id: str) -> None:
        """Drop what this server keeps about a client that is gone."""
        self.known.forget(client_id)

    def unacknowledged(self) -> int:
        """Messages handed to connections here and not yet reported written."""
        return 0

    def report(self, bad: Sequence[bytes | str]) -> None:
        for key in bad:
            self.log.warning("skipping Redis key of an unexpected type: %s", reply_text(key))

    # -- publishing --------------------------------------------------------------------

    def publish(self, envelope: Envelope, channels: Sequence[str]) -> Awaitable[None]:
        """Join the publish lane: publishes of one tick go out in one pipelined round trip,
        in the order they were called."""
        if self._closed:
            raise EngineError("the Redis engine is closed")
        if self.batch.refusal is not None:
            raise self.batch.refusal
        return self.publishes.submit(envelope, channels)

    @abstractmethod
    async def _send_publishes(self, batch: list[Publish], until: float | None) -> None:
        """Send one batch of the publish lane (see :mod:`faye.redis.publish_lane`)."""

    # -- the listener ------------------------------------------------------------------

    async def _listen(self) -> None:
        await listen_forever(
            self.redis,
            self.config,
            self.log,
            self._channels(),
            on_open=self._on_listening,
            on_message=self._on_message,
            on_lost=self.known.clear,  # destroys told meanwhile will not reach us
        )

    def _on_listening(self) -> None:
        self.known.clear()  # as at the failure: answers since may predate it
        if not self._layout_checked and self.batch.refusal is None:
            self._spawn(self._check_layout_late())
        if self._listening.is_set() or self._holds_clients():
            # Notifications sent while we were away (or before we first got here, if
            # Redis was down at start) are lost: look ourselves.
            self._spawn(self._after_outage())
        self._listening.set()

    def _on_close_line(self, data: bytes | str) -> None:
        """``<server> <client>``: a client was destroyed by that server."""
        try:
            sender, client_id = reply_text(data).split(" ", 1)
            if sender != self.server_id:
                self._forget(client_id)
                self.host.on_close(client_id)
        except Exception as exc:
            self.log.warning("ignoring a bad close notification: %r (%s)", data, exc)

    @abstractmethod
    def _channels(self) -> list[str]:
        """The pub/sub channels this server listens to."""

    @abstractmethod
    def _on_message(self, channel: str, data: bytes | str) -> None: ...

    @abstractmethod
    def _holds_clients(self) -> bool: ...

    @abstractmethod
    def _after_outage(self) -> Coroutine[Any, Any, None]:
        """Take up the clients held here after the listener was away."""

    # -- garbage collection ------------------------------------------------------------

    async def cleanup_expired(self) -> int:
        """Destroy (with events) every client idle past the timeout; return how many.

        One server at a time runs it (a lock); dead servers' in-flight messages are
        first moved back to their clients' queues.
        """
        return await self.gc.run()

    async def recover_dead_servers(self, p: int) -> None:
        """Take back what dead servers held in partition ``p`` (GC, before collecting)."""

    async def finish_destroys(self, p: int) -> None:
        """Finish destroys in partition ``p`` that did not get to the end (GC)."""


def make_engine(
    host: EngineHost, options: Mapping[str, Any] | None, *, background: bool = True
) -> RedisEngine:
    """The engine of the layout the options name; with ``layout: auto``, a layout-1
    engine whose :meth:`RedisEngine.resolve` finds the one to run."""
    if RedisOptions.parse(options).layout == 2:
        from faye.redis.layout2.engine import LogEngine

        return LogEngine(host, options, background=background)
    from faye.redis.layout1.engine import QueueEngine

    return QueueEngine(host, options, background=background)


def consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a result nobody waits for any more (no 'never retrieved' warning)."""
    if not future.cancelled():
        future.exception()

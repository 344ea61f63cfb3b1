"""``RedisEngine``: clients, subscriptions and queues in Redis, shared by many servers.

The moving parts, each described with its Redis commands in docs/redis.md:

* publish: one Lua script in the home partition of the channel (docs/redis.md: one
  round trip, on one master of a Cluster) queues the message for every recipient and
  PUBLISHes, once per server, the ids of the recipients that server holds. Servers
  holding no recipient hear nothing.
* a listener task per server, subscribed to its own notification channel and to the
  close broadcast, reconnecting forever.
* the *delivery lane*: every queue operation of this server (drain on connect, drain on
  wake-up, acknowledge, requeue) joins a batch sent as one script call per partition,
  one batch at a time, so deliveries stay in order and a burst costs one round trip.
  An operation names the client and the partition (one of the client's homes, or its
  record partition) it concerns.
* drained messages stay in their queue, counted as in flight by its header, until the
  transport reports them written; if the server dies first, another server hands them
  out again (at-least-once).
* a heartbeat per server and a GC under a lock, driven by the clients' last pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from redis import exceptions as rx

from faye.engine import Engine, EngineError, EngineHost, generate_id
from faye.envelope import Envelope
from faye.redis.batching import Batcher
from faye.redis.connection import (
    TRANSIENT,
    Arg,
    RedisClient,
    RedisConnection,
    probe_tls,
    reply_text,
    tls_problem,
)
from faye.redis.functions import AS_LINES, DRAINS, Op, QueueFunctions
from faye.redis.keys import Keys
from faye.redis.known import KnownClients
from faye.redis.log import EngineLog
from faye.redis.options import RedisOptions

GC_BATCH = 500

#: How much longer than ``stall_timeout`` a publish call's token is kept (seconds): a
#: retry is sent at most that long after the first attempt (plus one read timeout).
TOKEN_MARGIN = 30.0

#: The longest a written message's acknowledgement waits for its client's next drain
#: (seconds). A server dying meanwhile makes those messages duplicates, never losses.
ACK_DELAY = 0.25


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _GcRun:
    """Set while the GC destroys clients, so that destroy only takes expired ones."""

    cutoff_ms: int
    collected: int = 0


_GC_RUN: ContextVar[_GcRun | None] = ContextVar("faye_redis_gc_run", default=None)


class _Op:
    """One operation of the delivery lane (see ``lua/deliveries.lua``)."""

    __slots__ = ("args", "client_id", "code", "future", "partition", "resend")

    def __init__(
        self,
        code: Op,
        client_id: str,
        partition: int,
        args: Sequence[Arg] = (),
        future: asyncio.Future[Any] | None = None,
        resend: bool = False,
    ) -> None:
        self.code = code
        self.client_id = client_id
        self.partition = partition
        self.args = args
        self.future = future
        self.resend = resend


#: A publish waiting in the publish lane: the message, its channel's expansion (the
#: names a subscription may have matched) and its caller's future.
_Publish = tuple[Envelope, Sequence[str], "asyncio.Future[None]"]


def _as_line(op: _Op) -> str | None:
    """C, H, W and A take digits only (flags and counts the engine itself makes)."""
    if op.code not in AS_LINES or not op.client_id or not op.args:
        return None
    if "\n" in op.client_id:  # never in ids we issue; a line must not break
        return None
    args = op.args
    if len(args) == 1:
        return f"{op.code}{args[0]!s}:{op.client_id}"
    return f"{op.code}{'+'.join(map(str, args))}:{op.client_id}"


def _encode_ops(ops: Sequence[_Op]) -> list[Arg]:
    """The operations as ``deliveries.lua`` reads them, in order.

    Runs of C, H, W and A (a fan-out wakes and acknowledges hundreds of clients per
    batch) travel as one ``#``-line argument each: redis-py encodes every argument on
    its own, and that was a fifth of a fan-out server's time. R and D carry messages
    (arbitrary bytes) and keep one argument per item.
    """
    encoded: list[Arg] = []
    lines: list[str] = []
    for op in ops:
        line = _as_line(op)
        if line is not None:
            lines.append(line)
            continue
        if lines:
            encoded.append("#" + "\n".join(lines))
            lines = []
        encoded += [op.code.value, op.client_id, len(op.args), *op.args]
    if lines:
        encoded.append("#" + "\n".join(lines))
    return encoded


class RedisEngine(Engine):
    """The Redis engine (``engine={"type": "redis", ...}`` or ``faye.Redis``)."""

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
        #: Layout 1's functions (a layout 2 engine has its own).
        self.queue_functions = QueueFunctions(self.redis, self.keys, self.server_id, self.batch)
        self._background = background
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._started = False
        self._listening = asyncio.Event()
        # The publish lane.
        self._publishes: list[_Publish] = []
        self._publishes_since = 0.0  # loop time of the oldest publish waiting
        self._publish_calls_made = 0  # numbers the publish calls' tokens
        self._publish_lane: asyncio.Task[None] | None = None
        # The delivery lane.
        self._ops: list[_Op] = []
        self._waking: set[tuple[str, int]] = set()
        self._lane: asyncio.Task[None] | None = None
        # Per client: messages handed to the host and not yet acknowledged, as runs of
        # [partition, count] in hand-out order (each run is the head of this server's
        # in-flight messages of the client in that partition).
        self._unacked: dict[str, list[list[int]]] = {}
        # Per (client, partition): written messages whose acknowledgement waits (at
        # most ACK_DELAY) for the client's next drain there to carry it: (count, loop
        # time of the first), oldest first.
        self._acks: dict[tuple[str, int], tuple[int, float]] = {}
        self._ack_timer: asyncio.TimerHandle | None = None
        # (client, partition) whose in-flight part may hold messages we never handed out
        # (a lane batch failed mid-way): their next drain sends all of it again.
        self._resend: set[tuple[str, int]] = set()
        # Per client: its homes other than its record partition, as last seen.
        self._homes: dict[str, frozenset[int]] = {}
        # Our notification channel in each partition → that partition.
        self._notify_partitions = {
            self.keys.notify_channel(p, self.server_id): p for p in range(self.keys.partitions)
        }
        # Clients that connected here, to wake after the listener missed notifications.
        self._held: set[str] = set()
        #: Clients whose existence needs no round trip (see faye.redis.known).
        self.known = KnownClients()
        #: Whether this server's layout was checked against the namespace's record (not
        #: when Redis was away at start: the listener checks once it gets through).
        self._layout_checked = False
        self._rechecks: dict[str, asyncio.TimerHandle] = {}
        # Drains that failed, to try again after retry_delay.
        self._redrain: set[tuple[str, int]] = set()
        self._redrain_timer: asyncio.TimerHandle | None = None
        self._beaten = False

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
            await self._beat()
            # The lanes' first connection, made now rather than by the first publish.
            await self.redis.call("ping", lambda c: c.ping(), idempotent=True, lanes=True)
        except EngineError as exc:
            await self._raise_if_fatal(exc)
            self.log.error("Redis is not reachable yet (%s); will keep trying", exc)
        self._spawn(self._listen())
        self._spawn(self._heartbeat_loop())
        if self.config.gc_enabled:
            self._spawn(self._gc_loop())
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
            # Every client call and publish fails with it rather than mixing layouts.
            self.batch.refuse(exc)
            self.log.error("%s; refusing every client and publish", exc)

    async def close(self) -> None:
        """Stop background work, finish queued acknowledgements, leave the fleet."""
        if self._closed:
            return
        self._flush_acks()
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
        for lane in (self._lane, self._publish_lane):
            if lane is not None:
                lane.cancel()
        self._fail_pending()
        self.batch.abort()
        await self.redis.close()

    async def _stop(self) -> None:
        background = list(self._tasks)
        self._cancel_background()
        if background:
            # Let them finish being cancelled (the listener closes its connection), so
            # nothing of ours outlives close(); bounded, whatever Redis does meanwhile.
            await asyncio.wait(background, timeout=self.config.connect_timeout + 2)
        for lane in (self._publish_lane, self._lane):
            if lane is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(lane), self.config.read_timeout + 1)
        self._closed = True
        self._fail_pending()

    def _fail_pending(self) -> None:
        closed = EngineError("the Redis engine is closed")
        for op in self._ops:
            if op.future is not None and not op.future.done():
                op.future.set_exception(closed)
        self._ops.clear()
        for _, _, future in self._publishes:
            if not future.done():
                future.set_exception(closed)
        self._publishes.clear()

    def _cancel_background(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if self._redrain_timer is not None:
            self._redrain_timer.cancel()
            self._redrain_timer = None
        for task in self._tasks:
            task.cancel()
        for handle in self._rechecks.values():
            handle.cancel()
        self._rechecks.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
            # Another server (or a Redis restart) declared us dead and moved our
            # in-flight messages back to the queues: our counts are void.
            self.log.warning(
                "server %s was presumed dead; resetting in-flight state", self.server_id
            )
            self._unacked.clear()
            self._acks.clear()
        self._beaten = True

    async def _beat(self) -> None:
        await self.redis.call("heartbeat", self._beat_every_partition, idempotent=True)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                await self._beat()
            except EngineError as exc:
                self.log.debug("heartbeat failed: %s", exc)
            self._held = {cid for cid in self._held if self.host.has_connection(cid)}

    # -- clients -----------------------------------------------------------------------

    def _liveness(self, window: float) -> float:
        """``window`` lengthened by a recent Redis outage: a live client pings with each
        connect, and during an outage none could. Without it, a stall longer than
        0.6 x ``timeout`` makes live clients unknown once it ends (their next connect
        gets 401, and what was queued for them is lost when they handshake again) and
        skipped by publishes."""
        outage = self.redis.health.outage_within(window)
        return window + outage if outage > 0 else window

    def _cutoffs(self) -> tuple[int, int, int]:
        """(now, clients alive after, servers alive after), in ms."""
        now = now_ms()
        alive = now - int(self._liveness(self.exists_window) * 1000)
        dead = now - int(self.config.dead_server_after * 1000)
        return now, alive, dead

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

    def _alive_after(self) -> float:
        """The ms timestamp a client's last ping must follow for it to count as alive."""
        return now_ms() - self._liveness(self.exists_window) * 1000

    async def client_known(self, client_id: str) -> bool:
        alive = self.known.alive(client_id, self._alive_after())
        return alive or await self.client_exists(client_id)

    async def client_exists(self, client_id: str) -> bool:
        cutoff = self._alive_after()
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

    async def destroy_client(self, client_id: str) -> list[str] | None:
        """Remove the record (one script), then the client's other homes (one script
        each, grouped per master): a publish in between queues into a home about to
        be cleaned, never for a live client."""
        self.known.forget(client_id)
        run = _GC_RUN.get()
        p = self.keys.partition(client_id)
        cutoff = "" if run is None else run.cutoff_ms
        destroyed = await self.queue_functions.destroy_record(client_id, cutoff)
        if destroyed is None:
            return None
        self._report(destroyed.bad)
        found = set(destroyed.channels)
        found |= await self._clean_homes(client_id, p, destroyed.homes - {p})
        self._forget(client_id)
        if run is not None:
            run.collected += 1
        # The proxy fires close here, after unsubscribe and disconnect (Faye's order);
        # the destroy script told every other server.
        return sorted(found)

    async def _clean_homes(self, client_id: str, record: int, homes: set[int]) -> set[str]:
        """Clean a destroyed client's other homes; returns the channels found there.

        A failure is logged and left in the record partition's ``dying`` hash, which
        the GC goes through: the client is gone either way, and its leftovers would
        otherwise receive every publish on their channels.
        """
        if not homes:
            return set()
        try:
            results = await self.queue_functions.destroy_homes(client_id, sorted(homes))
        except EngineError as exc:
            self.log.warning(
                "could not clean up after client %s (%s); the GC will finish it", client_id, exc
            )
            return set()
        found: set[str] = set()
        for home in results:
            self._report(home.bad)
            found.update(home.channels)
        key = self.keys.dying(record)
        with contextlib.suppress(EngineError):
            await self.redis.call("dying", lambda c: c.hdel(key, client_id), idempotent=True)
        return found

    def _forget(self, client_id: str) -> None:
        self.known.forget(client_id)
        for p in self._partitions_of(client_id):  # before its homes are forgotten
            self._acks.pop((client_id, p), None)
            self._resend.discard((client_id, p))
        self._unacked.pop(client_id, None)
        self._homes.pop(client_id, None)
        self._held.discard(client_id)
        handle = self._rechecks.pop(client_id, None)
        if handle is not None:
            handle.cancel()

    def _partitions_of(self, client_id: str) -> list[int]:
        """The client's record partition, then its other homes as last seen."""
        record = self.keys.partition(client_id)
        return [record, *(h for h in self._homes.get(client_id, ()) if h != record)]

    # -- subscriptions -----------------------------------------------------------------

    async def subscribe(self, client_id: str, channel: str) -> bool:
        """One script when the channel lives in the client's record partition (always on
        a single Redis); else the record first (is the client known? who holds it?),
        then the channel's home(s)."""
        p = self.keys.partition(client_id)
        ttl = self.config.subscription_ttl
        ttl_ms = int(ttl * 1000) if ttl else 0
        homes = self.keys.homes(channel)
        enrolled = () if self.keys.partitions == 1 else homes
        record = await self.queue_functions.subscribe_record(
            client_id, channel, ttl_ms, here=p in homes, homes=enrolled
        )
        self._report(record.bad)
        others = [h for h in homes if h != p]
        if record.added < 0 or not others:  # an unknown client, or nothing more to do
            return record.added > 0
        added = record.added > 0
        for home in await self.queue_functions.subscribe_homes(
            client_id, channel, ttl_ms, owner=record.owner, homes=others
        ):
            self._report(home.bad)
            added = added or home.added > 0
        return added

    async def unsubscribe(self, client_id: str, channel: str) -> bool:
        removed = False
        for home in await self.queue_functions.unsubscribe(
            client_id, channel, self.keys.homes(channel)
        ):
            self._report(home.bad)
            removed = removed or home.removed
        return removed

    # -- publishing --------------------------------------------------------------------

    # -- the publish lane ---------------------------------------------------------------

    def publish(self, envelope: Envelope, channels: Sequence[str]) -> Awaitable[None]:
        """Join the publish lane: publishes of one tick go out in one pipelined round trip.

        One batch is on the wire at a time and batches keep their order, so publishes
        reach Redis in the order they were called, even when the caller does not wait
        for one before calling the next.
        """
        if self._closed:
            raise EngineError("the Redis engine is closed")
        if self.batch.refusal is not None:
            raise self.batch.refusal
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._publishes:
            self._publishes_since = future.get_loop().time()
        self._publishes.append((envelope, channels, future))
        if self._publish_lane is None:
            self._publish_lane = asyncio.ensure_future(self._run_publish_lane())
        return future

    async def _run_publish_lane(self) -> None:
        try:
            while self._publishes:
                await asyncio.sleep(0)  # let this turn's publishes join the batch
                batch, self._publishes = self._publishes, []
                # A batch waits out a stall until its oldest publish has waited
                # stall_timeout (0: no waiting, no retry).
                stall = self.config.stall_timeout
                until = self._publishes_since + stall if stall else None
                try:
                    await self._send_publishes(batch, until)
                except BaseException as exc:
                    error = exc if isinstance(exc, EngineError) else EngineError(repr(exc))
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
        finally:
            self._publish_lane = None

    async def _send_publishes(self, batch: list[_Publish], until: float | None) -> None:
        homes: dict[int, list[_Publish]] = {}
        for item in batch:
            homes.setdefault(self._home_of(item[1]), []).append(item)
        unsent = await self._each_master(
            list(homes), lambda together: self._publish_calls(homes, together, until)
        )
        for p in unsent:
            for _, _, future in homes[p]:
                if not future.done():
                    future.set_exception(EngineError("publish: the partition moved"))

    async def _publish_calls(
        self, homes: dict[int, list[_Publish]], together: list[list[int]], until: float | None
    ) -> list[int]:
        """One publish call per list of partitions (a master's); returns the partitions
        of calls that found one of theirs elsewhere (and did nothing).

        With ``until`` each call carries a token, and transient failures are retried
        until then: a call Redis ran already finds its token and does nothing again.
        """
        _, alive, dead = self._cutoffs()
        head: list[Arg] = [
            self.server_id,
            alive,
            dead,
            self.config.max_queue,
            int(self.config.message_ttl * 1000),
            "1" if self.keys.partitions == 1 else "0",
        ]
        token_ttl = int((self.config.stall_timeout + TOKEN_MARGIN) * 1000)
        calls: list[tuple[list[str], list[Arg]]] = []
        for members in together:
            token = ""
            if until is not None:
                self._publish_calls_made += 1
                token = str(self._publish_calls_made)
            args: list[Arg] = [self.keys.prefix(members[0]), *head, token, token_ttl]
            for k, p in enumerate(members):
                if k:
                    args += ["P", self.keys.prefix(p), p]
                for envelope, channels, _ in homes[p]:
                    args += ["M", envelope.raw, len(channels), *channels]
            calls.append(([self.keys.clients(members[0])], args))
        # Retried only with a token: had Redis run it, a second run without one would
        # queue the message twice. On a Cluster a failing master fails only the
        # publishes homed there.
        results = await self.redis.run_scripts(
            "publish",
            calls,
            idempotent=False,
            partial=True,
            grouped=True,
            until=until,
            lanes=until is not None,
        )
        elsewhere: list[int] = []
        for members, result in zip(together, results, strict=True):
            items = [(p, item) for p in members for item in homes[p]]
            if isinstance(result, EngineError):
                for _, (_, _, future) in items:
                    if not future.done():
                        future.set_exception(result)
                continue
            if len(result) == 1 and result[0] == -2:
                # A retry of a call Redis had run: its answer, naming the clients of
                # ours to wake, was lost with the connection. Wake all we hold there.
                for p in members:
                    for _, _, future in homes[p]:
                        if not future.done():
                            future.set_result(None)
                    self._wake(self._held_in(p), p)
                continue
            if len(result) == 1:  # {-1}: a partition is not on that master any more
                elsewhere += members
                continue
            per_message, bad = result
            self._report(bad)
            for (p, (_, _, future)), (_queued, mine) in zip(items, per_message, strict=True):
                if not future.done():
                    future.set_result(None)
                if mine:
                    self._wake((reply_text(cid) for cid in mine), p)
        return elsewhere

    def _held_in(self, partition: int) -> list[str]:
        """The clients held here with a home (or their record) in ``partition``."""
        return [cid for cid in self._held if partition in self._partitions_of(cid)]

    async def _each_master(
        self,
        partitions: list[int],
        send: Callable[[list[list[int]]], Awaitable[list[int]]],
    ) -> list[int]:
        """``send`` the partitions grouped by the master serving them: one script call
        each serves them all (their slots differ; the scripts may cross slots). A call
        whose master turned out not to serve one of them (a stale slot map) did nothing;
        those partitions are sent again one by one, which redis-py routes. Returns the
        partitions still unsent (none expected: a lone partition finds nothing
        elsewhere), whose waiters the caller must not leave waiting."""
        together = [[p] for p in partitions]
        if len(partitions) > 1:
            keys = [self.keys.clients(p) for p in partitions]
            with contextlib.suppress(EngineError):
                groups = await self.redis.group_by_master(keys)
                together = [[partitions[i] for i in group] for group in groups]
        elsewhere = await send(together)
        if not elsewhere:
            return []
        return await send([[p] for p in elsewhere])

    def _home_of(self, channels: Sequence[str]) -> int:
        """The home of the published channel: the one name of ``channels`` (its
        expansion) that is not a wildcard pattern."""
        for channel in channels:
            if "*" not in channel:
                return self.keys.home(channel)
        return 0

    # -- the delivery lane -------------------------------------------------------------

    async def empty_queue(self, client_id: str) -> None:
        if not self.host.has_connection(client_id):
            return
        await self._claim(client_id)

    async def connect(self, client_id: str) -> None:
        """Ping, take the client's connection and deliver its queues: one round trip per
        master involved, unless the client has homes this server did not know of."""
        await self._claim(client_id)

    async def _claim(self, client_id: str) -> None:
        """Claim and drain; a claim Redis does not answer within the command timeout
        fails the connect (as any command would) but stays in the lane: what it drains
        later goes to the client's connection if it is still here, else back to its
        queue. (A connect waiting out a stall would race its client giving up on it,
        1.2 x the advised timeout after sending: a reply written as it gives up is lost.
        Node's HTTP agent, by contrast, only reports a request quiet for 5 s; the npm
        faye client ignores that.)
        """
        self._held.add(client_id)
        futures = self._submit_claims(client_id, want_future=True)
        results = await self._answered(futures)
        # The record's answer names homes we did not claim: claim them too.
        missing: frozenset[int] = results[0]
        if missing:
            await self._answered(self._submit_claims(client_id, missing, want_future=True))

    async def _answered(self, futures: list[asyncio.Future[Any]]) -> list[Any]:
        together = asyncio.gather(*futures)
        limit = self.config.answer_timeout + 1.0
        try:
            return await asyncio.wait_for(asyncio.shield(together), limit)
        except TimeoutError:
            together.add_done_callback(_consume)
            raise EngineError("Redis did not answer in time during connect") from None

    def _submit_claims(
        self, client_id: str, homes: Iterable[int] | None = None, *, want_future: bool = False
    ) -> list[asyncio.Future[Any]]:
        """C in the record partition and H in the known other homes, or H in ``homes``."""
        if homes is None:
            record, *others = self._partitions_of(client_id)
            ops = [(Op.CONNECT, record), *((Op.HOME, h) for h in others)]
        else:
            ops = [(Op.HOME, h) for h in homes]
        futures = []
        for code, partition in ops:
            future = self._submit(code, client_id, partition, want_future=want_future)
            if future is not None:
                futures.append(future)
        return futures

    def _wake(self, client_ids: Iterable[str], partition: int) -> None:
        for client_id in client_ids:
            key = (client_id, partition)
            if key not in self._waking and self.host.has_connection(client_id):
                self._waking.add(key)
                self._submit(Op.WAKE, client_id, partition)

    # acknowledge and requeue join the delivery lane when called (at the moment of the
    # write or its failure); a failed batch is logged by the lane.

    def acknowledge(self, client_id: str, count: int) -> None:
        """The first ``count`` messages handed out for the client were written: trim them.

        Messages handed to a socket after those stay in flight until their own write.
        """
        taken = self._take(client_id, count, oldest=True)
        if not taken or self._closed:
            return
        # Held back briefly: the client's next drain (in a fan-out, the next publish)
        # carries it, which saves an operation and three Redis commands.
        loop = asyncio.get_running_loop()
        for partition, n in taken:
            key = (client_id, partition)
            held = self._acks.get(key)
            # Reassigning an existing key keeps its place: the dict stays oldest first.
            self._acks[key] = (n, loop.time()) if held is None else (held[0] + n, held[1])
        if self._ack_timer is None:
            self._ack_timer = loop.call_later(ACK_DELAY, self._flush_acks, ACK_DELAY)

    def _handed(self, client_id: str, partition: int, count: int) -> None:
        runs = self._unacked.get(client_id)
        if runs is None:
            self._unacked[client_id] = [[partition, count]]
        elif runs and runs[-1][0] == partition:
            runs[-1][1] += count
        else:
            runs.append([partition, count])

    def _take(self, client_id: str, count: int, *, oldest: bool) -> list[tuple[int, int]]:
        """Remove ``count`` handed-out messages from the oldest (written) or the newest
        (not written) end; returns the (partition, count) runs taken, in hand-out order."""
        runs = self._unacked.get(client_id)
        if runs is None or count <= 0:
            return []
        if len(runs) == 1 and runs[0][1] <= count:  # the usual case: one home, all of it
            del self._unacked[client_id]
            return [(runs[0][0], runs[0][1])]
        taken: list[tuple[int, int]] = []
        while runs and count > 0:
            run = runs[0] if oldest else runs[-1]
            n = min(run[1], count)
            taken.append((run[0], n))
            count -= n
            run[1] -= n
            if not run[1]:
                runs.pop(0 if oldest else -1)
        if not runs:
            self._unacked.pop(client_id, None)
        if not oldest:
            taken.reverse()
        return taken

    def _flush_acks(self, older_than: float = 0.0) -> None:
        """Send the held-back acknowledgements at least ``older_than`` seconds old (all by
        default) as operations of their own, and wait for the next-oldest."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if not self._acks:
            return
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - older_than
        due = []
        for key, (count, since) in self._acks.items():
            if since > cutoff:
                self._ack_timer = loop.call_later(
                    max(since - cutoff, 0.001), self._flush_acks, ACK_DELAY
                )
                break
            due.append((key, count))
        for key, count in due:
            del self._acks[key]
            self._submit(Op.ACK, key[0], key[1], [count])

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None:
        """These messages (the last handed out) were not written: back to the head of
        their queues, in order."""
        if not messages or self._closed:
            return
        start = 0
        for partition, n in self._take(client_id, len(messages), oldest=False):
            part = messages[start : start + n]
            start += n
            self._submit(Op.REQUEUE, client_id, partition, [m.raw for m in part])
        if start < len(messages):  # more than we handed out: their home is unknown
            rest = messages[start:]
            self._submit(
                Op.REQUEUE, client_id, self.keys.partition(client_id), [m.raw for m in rest]
            )

    async def drained(self) -> None:
        """Wait until every queued delivery-lane operation has been sent (tests, shutdown)."""
        self._flush_acks()
        while self._ops or self._lane is not None:
            lane = self._lane
            if lane is None:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(Exception):
                await asyncio.shield(lane)

    def _submit(
        self,
        code: Op,
        client_id: str,
        partition: int,
        args: Sequence[Arg] = (),
        *,
        want_future: bool = False,
    ) -> asyncio.Future[Any] | None:
        if self._closed:
            if want_future:
                raise EngineError("the Redis engine is closed")
            return None
        future = asyncio.get_running_loop().create_future() if want_future else None
        resend = False
        key = (client_id, partition)
        held = self._acks.pop(key, None) if code is not Op.ACK else None
        acked = held[0] if held is not None else 0
        if code in DRAINS:
            resend = key in self._resend
            self._resend.discard(key)
            flag = "1" if resend else "0"
            args = [flag, acked] if acked else [flag]
        elif acked:
            self._ops.append(_Op(Op.ACK, client_id, partition, [acked]))
        self._ops.append(_Op(code, client_id, partition, args, future, resend))
        if self._lane is None:
            self._lane = asyncio.ensure_future(self._run_lane())
        return future

    async def _run_lane(self) -> None:
        try:
            while self._ops:
                await asyncio.sleep(0)  # let this turn's operations join the batch
                batch, self._ops = self._ops, []
                self._waking.clear()
                await self._send(batch)
        finally:
            self._lane = None

    async def _send(self, batch: list[_Op]) -> None:
        groups: dict[int, list[_Op]] = {}
        for op in batch:
            groups.setdefault(op.partition, []).append(op)
        decoded: dict[bytes, Envelope | None] = {}
        unsent = await self._each_master(
            list(groups), lambda together: self._send_calls(groups, together, decoded)
        )
        for p in unsent:
            self._fail_ops(groups[p], EngineError("delivery: the partition moved"))

    async def _send_calls(
        self,
        groups: dict[int, list[_Op]],
        together: list[list[int]],
        decoded: dict[bytes, Envelope | None],
    ) -> list[int]:
        """One deliveries call per list of partitions; returns the partitions of calls
        that found one of theirs elsewhere (and did nothing)."""
        now, _, dead = self._cutoffs()
        ttl = self.config.subscription_ttl
        common: list[Arg] = [
            self.server_id,
            now,
            dead,
            int(ttl * 1000) if ttl else 0,
            int(self.config.message_ttl * 1000),
        ]
        calls: list[tuple[list[str], list[Arg]]] = []
        for members in together:
            first = members[0]
            args: list[Arg] = [self.keys.prefix(first), *common, *_encode_ops(groups[first])]
            for p in members[1:]:
                args += ["P", self.keys.prefix(p), 0, *_encode_ops(groups[p])]
            calls.append(([self.keys.clients(first)], args))
        try:
            results = await self.redis.run_scripts(
                "deliveries",
                calls,
                idempotent=False,
                partial=True,
                grouped=True,
                lanes=bool(self.config.stall_timeout),
            )
        except Exception as exc:
            results = [EngineError(f"delivery: {exc!r}")] * len(calls)
        except BaseException as exc:  # cancelled while on the wire
            for members in together:
                for p in members:
                    self._fail_ops(groups[p], EngineError(f"delivery: {exc!r}"))
            raise
        elsewhere: list[int] = []
        for members, result in zip(together, results, strict=True):
            ops = [op for p in members for op in groups[p]]
            if isinstance(result, EngineError):
                # On a Cluster only this master failed; the others went on.
                self._fail_ops(ops, result)
                continue
            if len(result) == 1:  # {-1}: a partition is not on that master any more
                elsewhere += members
                continue
            op_results, bad = result
            self._report(bad)
            for op, op_result in zip(ops, op_results, strict=True):
                value = None
                try:
                    value = self._finish(op, op_result, decoded)
                except Exception as exc:  # a host callback failed; keep the lane going
                    self.log.error("delivery to %s failed", op.client_id, exc_info=exc)
                if op.future is not None and not op.future.done():
                    op.future.set_result(value)
        return elsewhere

    def _fail_ops(self, ops: Sequence[_Op], error: EngineError) -> None:
        for op in ops:
            if op.code in DRAINS or op.code is Op.REQUEUE:
                # The script may have run: messages may be in flight here
                # without having been handed out. The next drain resends them, and
                # one comes soon for a client held here, whether or not a publish
                # wakes it (Redis may only have stalled, keeping our listener).
                self._resend.add((op.client_id, op.partition))
                self._retry_drain(op.client_id, op.partition)
            if op.future is not None and not op.future.done():
                op.future.set_exception(error)
        if not any(op.future is not None for op in ops):
            self.log.debug("delivery batch failed: %s", error)

    def _retry_drain(self, client_id: str, partition: int) -> None:
        """Wake the client again after ``retry_delay`` (one timer for all of them)."""
        if self._closed:
            return
        self._redrain.add((client_id, partition))
        if self._redrain_timer is None:
            delay = min(max(self.config.retry_delay, 0.05), 1.0)
            self._redrain_timer = asyncio.get_running_loop().call_later(delay, self._redrain_now)

    def _redrain_now(self) -> None:
        self._redrain_timer = None
        pending, self._redrain = self._redrain, set()
        for client_id, partition in pending:
            self._wake([client_id], partition)

    def _finish(
        self, op: _Op, result: Any, decoded: dict[bytes, Envelope | None]
    ) -> frozenset[int] | None:
        """Hand a drain's messages to the host. For C, returns the client's homes that
        were not claimed with it (claimed now unless someone waits to do it)."""
        client_id, partition = op.client_id, op.partition
        if op.code is Op.REQUEUE:
            if result == 1:
                self._wake([client_id], partition)
            return None
        if op.code is Op.ACK or op.code is Op.DISCARD:
            return None
        status = int(result[0])
        missing: frozenset[int] = frozenset()
        if op.code is Op.CONNECT and status:
            missing = self._learn_homes(client_id, reply_text(result[1]))
            if missing and op.future is None:
                self._submit_claims(client_id, missing)
        raws: list[bytes] = result[2:]
        if status == 2:
            self._schedule_recheck(client_id)
        if raws:
            self._hand_over(op, raws, decoded)
        return missing

    def _learn_homes(self, client_id: str, homes: str) -> frozenset[int]:
        """Remember the client's homes (from its record); return those not known before."""
        record = self.keys.partition(client_id)
        found = frozenset(int(h) for h in homes.split(",") if h) - {record}
        known = self._homes.get(client_id, frozenset())
        if found:
            self._homes[client_id] = found
        else:
            self._homes.pop(client_id, None)
        return found - known

    def _hand_over(self, op: _Op, raws: list[bytes], decoded: dict[bytes, Envelope | None]) -> None:
        client_id, partition = op.client_id, op.partition
        envelopes = self._decode(client_id, raws, decoded)
        if len(envelopes) < len(raws):
            # Drop corrupt entries from the in-flight list so that acknowledging the
            # first N written messages trims exactly those.
            good = {e.raw for e in envelopes}
            self._submit(Op.DISCARD, client_id, partition, [raw for raw in raws if raw not in good])
        if op.resend:
            # The drain sent this partition's whole in-flight list again.
            self._forget_handed(client_id, partition)
        if not envelopes:
            return
        # Counted before the hand-over: a socket may write them, and acknowledge them,
        # before deliver() returns.
        self._handed(client_id, partition, len(envelopes))
        if self.host.deliver(client_id, envelopes):
            return
        # Nobody to hand them to after all (the connection went away meanwhile).
        self._take(client_id, len(envelopes), oldest=False)
        self._submit(Op.REQUEUE, client_id, partition, [e.raw for e in envelopes])

    def _forget_handed(self, client_id: str, partition: int) -> None:
        runs = self._unacked.get(client_id)
        if runs:
            runs[:] = [run for run in runs if run[0] != partition]
            if not runs:
                del self._unacked[client_id]

    def _schedule_recheck(self, client_id: str) -> None:
        """Another live server holds messages of this client in flight; look again later.

        If that server is in fact dying, its heartbeat stops and the next claim moves
        its in-flight messages here.
        """
        if client_id in self._rechecks or self._closed:
            return
        delay = self.config.dead_server_after + self.config.heartbeat_interval

        def recheck() -> None:
            self._rechecks.pop(client_id, None)
            if self.host.has_connection(client_id):
                self._submit_claims(client_id)

        self._rechecks[client_id] = asyncio.get_running_loop().call_later(delay, recheck)

    def _decode(
        self, client_id: str, raws: Sequence[bytes], decoded: dict[bytes, Envelope | None]
    ) -> list[Envelope]:
        """Check and wrap queued messages; ``decoded`` shares the work across recipients.

        A fan-out drains the same bytes for every recipient: each distinct message is
        parsed once per batch and its Envelope (and so its encoded frame) is shared.
        """
        envelopes = []
        for raw in raws:
            if raw in decoded:
                envelope = decoded[raw]
            else:
                try:
                    message = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    message = None
                valid = isinstance(message, dict) and isinstance(message.get("channel"), str)
                envelope = decoded[raw] = Envelope(raw, message) if valid else None
            if envelope is None:
                self.log.warning(
                    "skipping a corrupt queued message for %s: %r", client_id, raw[:100]
                )
                continue
            envelopes.append(envelope)
        return envelopes

    def _report(self, bad: Sequence[bytes | str]) -> None:
        for key in bad:
            self.log.warning("skipping Redis key of an unexpected type: %s", reply_text(key))

    # -- the listener ------------------------------------------------------------------

    def _channels(self) -> list[str]:
        names = list(self._notify_partitions)
        names += [self.keys.close_channel(p) for p in range(self.keys.partitions)]
        return names

    async def _listen(self) -> None:
        failures = 0
        channels = self._channels()
        # An outage is usually a restart or a failover, over in seconds: keep trying
        # often enough (one connection attempt a second) to be back soon after it.
        cap = max(self.config.retry_delay, 1.0)
        while True:
            listener = self.redis.listener()
            started = time.monotonic()
            try:
                await listener.open(channels)
                self.redis.health.answered(started)
                if failures:
                    self.log.info(
                        "listener resubscribed to %d channel(s) after %d attempt(s)",
                        len(channels),
                        failures,
                    )
                    failures = 0
                self.known.clear()  # as at the failure: answers since may predate it
                if not self._layout_checked and self.batch.refusal is None:
                    self._spawn(self._check_layout_late())
                if self._listening.is_set() or self._holds_clients():
                    # Notifications sent while we were away (or before we first got
                    # here, if Redis was down at start) are lost: look ourselves.
                    self._spawn(self._after_outage())
                self._listening.set()
                while True:
                    message = await listener.get_message(5.0)
                    if message is not None:
                        self._on_message(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                # Destroys told meanwhile will not reach us, and Redis may lose its data.
                self.known.clear()
                self.redis.health.failed("listening", exc)
                self.log.debug("listener lost Redis (%s); reconnecting", exc)
                delay = min(max(self.config.retry_delay, 0.05) * 2 ** (failures - 1), cap)
                await asyncio.sleep(delay * (1 + 0.3 * random.random()))
            finally:
                # Bounded: a close that never returns must not keep this task (and the
                # event loop's shutdown, which waits for every task) alive.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(listener.aclose(), self.config.connect_timeout + 1)

    def _holds_clients(self) -> bool:
        return bool(self._held)

    async def _after_outage(self) -> None:
        """Back on Redis after the listener lost it: take up every connection held here.

        Redis may have lost its data (a restart without persistence, a failover to a
        replica behind): our heartbeat, the clients' records, owners and queues. Clients
        still known are claimed again (owner, queue, messages queued meanwhile); those
        Redis forgot get their held connect answered and their socket closed, so that
        they learn at once (401 on their next connect) that they must handshake again
        instead of waiting out a held connect that nothing will ever wake.
        """
        with contextlib.suppress(EngineError):
            await self._beat()
        held = [cid for cid in self._held if self.host.has_connection(cid)]
        if not held:
            return
        try:
            known = await self._known_clients(held)
        except EngineError as exc:
            self.log.warning("could not check the held clients after reconnecting: %s", exc)
            for client_id in held:  # at least look for what was queued meanwhile
                for p in self._partitions_of(client_id):
                    self._wake([client_id], p)
            return
        gone = [cid for cid in held if cid not in known]
        for client_id in gone:
            self._forget(client_id)
            self.host.on_close(client_id)
        for client_id in known:
            if self.host.has_connection(client_id):
                self._submit_claims(client_id)
        if gone:
            self.log.warning(
                "Redis no longer knows %d client(s) held here; told them to handshake again",
                len(gone),
            )

    async def _known_clients(self, client_ids: Sequence[str]) -> set[str]:
        """Those of ``client_ids`` with a record (one ZMSCORE per partition). An old
        ping does not count against them: they are connected here, and their claim
        pings them."""
        by_partition: dict[int, list[str]] = {}
        for cid in client_ids:
            by_partition.setdefault(self.keys.partition(cid), []).append(cid)
        known: set[str] = set()
        for p, cids in by_partition.items():
            key = self.keys.clients(p)

            async def scores_of(client: RedisClient, key: str = key, cids: list[str] = cids) -> Any:
                return await client.zmscore(key, cids)

            scores = await self.redis.call("held clients", scores_of, idempotent=True)
            known.update(cid for cid, s in zip(cids, scores, strict=True) if s is not None)
        return known

    def _on_message(self, message: Mapping[str, Any]) -> None:
        if message.get("type") not in ("message", "smessage"):
            return
        channel = reply_text(message["channel"])
        data = reply_text(message["data"])
        try:
            if channel.endswith(":close"):
                sender, client_id = data.split(" ", 1)
                if sender != self.server_id:
                    self._forget(client_id)
                    self.host.on_close(client_id)
            else:
                # '<cid>' is of the channel's partition, '<partition>/<cid>' of another
                # one on the same master (one notification per publish call and server).
                partition = self._notify_partitions[channel]
                if "/" not in data:
                    self._wake((cid for cid in data.split(",") if cid), partition)
                    return
                by_partition: dict[int, list[str]] = {}
                for entry in data.split(","):
                    tag, _, cid = entry.rpartition("/")
                    number = int(tag) if tag else partition
                    if not 0 <= number < self.keys.partitions:
                        raise ValueError(f"no partition {number}")
                    if cid:
                        by_partition.setdefault(number, []).append(cid)
                for number, cids in by_partition.items():
                    self._wake(cids, number)
        except Exception as exc:
            self.log.warning("ignoring a bad notification on %s: %r (%s)", channel, data, exc)

    # -- garbage collection ------------------------------------------------------------

    async def _gc_loop(self) -> None:
        interval = float(self.config.gc_interval or 0)
        while True:
            await asyncio.sleep(interval)
            try:
                collected = await self.cleanup_expired()
            except EngineError as exc:
                self.log.warning("garbage collection failed: %s", exc)
            except Exception as exc:
                self.log.error("garbage collection failed", exc_info=exc)
            else:
                if collected:
                    self.log.info("garbage collection removed %d client(s)", collected)

    async def cleanup_expired(self) -> int:
        """Destroy (with events) every client idle past the timeout; return how many.

        One server at a time runs it (a lock); dead servers' in-flight messages are
        first moved back to their clients' queues.
        """
        token = generate_id()
        lock_ms = int(max(60.0, 2 * float(self.config.gc_interval or 0)) * 1000)
        key = self.keys.gc_lock
        acquired = await self.redis.call(
            "gc lock", lambda c: c.set(key, token, nx=True, px=lock_ms), idempotent=False
        )
        if not acquired:
            return 0
        self.counts["gc_runs"] += 1
        collected = 0
        try:
            for p in range(self.keys.partitions):
                await self._recover_dead_servers(p)
                await self._finish_destroys(p)
                collected += await self._collect(p)
            return collected
        finally:
            self.counts["gc_clients_collected"] += collected
            with contextlib.suppress(EngineError):
                await self.redis.run_script("unlock", [key], [token], idempotent=True)

    async def _recover_dead_servers(self, p: int) -> None:
        _, _, dead = self._cutoffs()
        key = self.keys.servers(p)
        sids = await self.redis.call(
            "dead servers", lambda c: c.zrangebyscore(key, "-inf", dead), idempotent=True
        )
        for raw in sids:
            sid = reply_text(raw)
            if sid == self.server_id:
                continue
            ttl_ms = int(self.config.message_ttl * 1000)
            recovered = await self.queue_functions.recover(p, sid, dead, ttl_ms)
            self._report(recovered.bad)
            if recovered.moved >= 0:
                moved = recovered.moved
                self.log.info("server %s is gone; %d in-flight message(s) requeued", sid, moved)

    async def _finish_destroys(self, p: int) -> None:
        """Clean the homes of clients whose destroy did not get that far."""
        if self.keys.partitions == 1:
            return
        key = self.keys.dying(p)
        pending = await self.redis.call("dying", lambda c: c.hgetall(key), idempotent=True)
        for raw_id, raw_homes in pending.items():
            homes = {int(h) for h in reply_text(raw_homes).split(",") if h} - {p}
            await self._clean_homes(reply_text(raw_id), p, homes)

    async def _collect(self, p: int) -> int:
        run = _GcRun(now_ms() - int(self._liveness(self.gc_window) * 1000))
        key = self.keys.clients(p)
        token = _GC_RUN.set(run)
        try:
            while True:
                found = await self.redis.call(
                    "expired clients",
                    lambda c: c.zrangebyscore(key, "-inf", run.cutoff_ms, start=0, num=GC_BATCH),
                    idempotent=True,
                )
                before = run.collected
                for raw in found:
                    await self.host.destroy_client(reply_text(raw))
                if len(found) < GC_BATCH or run.collected == before:
                    return run.collected
        finally:
            _GC_RUN.reset(token)


def make_engine(
    host: EngineHost, options: Mapping[str, Any] | None, *, background: bool = True
) -> RedisEngine:
    """The engine of the layout the options name; with ``layout: auto``, a layout-1
    engine whose :meth:`RedisEngine.resolve` finds the one to run."""
    if RedisOptions.parse(options).layout == 2:
        from faye.redis.layout2.engine import LogEngine

        return LogEngine(host, options, background=background)
    return RedisEngine(host, options, background=background)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a result nobody waits for any more (no 'never retrieved' warning)."""
    if not future.cancelled():
        future.exception()


class StandaloneHost:
    """The host of an engine outside any server (``faye gc``, a Publisher): it holds no
    connections and events go nowhere; a GC it runs destroys clients directly."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.engine: RedisEngine | None = None

    def has_connection(self, client_id: str) -> bool:
        return False

    def deliver(self, client_id: str, messages: Sequence[Envelope]) -> bool:
        return False

    def on_close(self, client_id: str) -> None:
        pass

    async def destroy_client(self, client_id: str) -> None:
        if self.engine is not None:
            await self.engine.destroy_client(client_id)


async def collect_garbage(
    url_or_options: str | Mapping[str, Any],
    namespace: str | None = None,
    *,
    server_timeout: float = 60.0,
) -> int:
    """One garbage collection from outside any server (``faye gc``); returns the count.

    ``server_timeout`` is the servers' Bayeux timeout (clients idle for twice that long are
    collected) unless the options carry ``client_timeout``.
    """
    if isinstance(url_or_options, str):
        options: dict[str, Any] = {"url": url_or_options}
    else:
        options = {k: v for k, v in url_or_options.items() if k != "type"}
    if namespace is not None:
        options["namespace"] = namespace
    options.setdefault("log_level", "error")
    options["gc_interval"] = None
    host = StandaloneHost(server_timeout)
    probe = make_engine(host, options, background=False)
    try:
        engine = await probe.resolve()
    except BaseException:
        await probe.close()
        raise
    host.engine = engine
    try:
        await engine.redis.load_scripts()
        return await engine.cleanup_expired()
    finally:
        await engine.close()

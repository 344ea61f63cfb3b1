"""``QueueEngine``: layout 1 of the Redis engine (``layout: 1``; see docs/redis.md).

A publish is one script call in the home partition of its channel: it queues the
message for every recipient and PUBLISHes, once per server holding recipients, their
ids. That server's delivery lane (:mod:`.deliveries`) drains their queues; what it
hands out stays in the queue, in flight (:mod:`.inflight`), until written. A Cluster
spreads the partitions over its masters; a client's subscriptions may home it in
several of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from faye.engine import EngineError, EngineHost
from faye.envelope import Envelope
from faye.redis.connection import RedisClient, reply_text
from faye.redis.engine import TOKEN_MARGIN, RedisEngine, consume
from faye.redis.gc import current_run
from faye.redis.layout1.deliveries import DeliveryLane
from faye.redis.layout1.functions import CallOutcome, PublishCall, QueueFunctions
from faye.redis.layout1.inflight import InFlight
from faye.redis.publish_lane import Publish


class QueueEngine(RedisEngine):
    """The Redis engine on layout 1 (per-client queues)."""

    def __init__(
        self,
        host: EngineHost,
        options: Mapping[str, Any] | None = None,
        *,
        background: bool = True,
    ) -> None:
        super().__init__(host, options, background=background)
        self.queue_functions = QueueFunctions(self.redis, self.keys, self.server_id, self.batch)
        self.lane = DeliveryLane(self)
        # Our notification channel in each partition → that partition.
        self._notify_partitions = {
            self.keys.notify_channel(p, self.server_id): p for p in range(self.keys.partitions)
        }
        # Clients that connected here, to wake after the listener missed notifications.
        self._held: set[str] = set()

    @property
    def inflight(self) -> InFlight:
        return self.lane.inflight

    def unacknowledged(self) -> int:
        return self.lane.inflight.count()

    # -- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        if not self.closed:
            self.lane.inflight.flush()  # finish queued acknowledgements
        await super().close()

    async def _finish_lanes(self, limit: float) -> None:
        await super()._finish_lanes(limit)
        await self.lane.finish(limit)

    def _cancel_lanes(self) -> None:
        super()._cancel_lanes()
        self.lane.cancel()

    def _fail_pending(self, error: EngineError) -> None:
        super()._fail_pending(error)
        self.lane.fail(error)

    def _cancel_background(self) -> None:
        super()._cancel_background()
        self.lane.stop_timers()

    def _presumed_dead(self) -> None:
        self.lane.inflight.reset()

    def _after_beat(self) -> None:
        self._held = {cid for cid in self._held if self.host.has_connection(cid)}

    # -- clients and subscriptions -----------------------------------------------------

    async def destroy_client(self, client_id: str) -> list[str] | None:
        """Remove the record (one script), then the client's other homes (one script
        each, grouped per master): a publish in between queues into a home about to
        be cleaned, never for a live client."""
        self.known.forget(client_id)
        run = current_run()
        p = self.keys.partition(client_id)
        cutoff = "" if run is None else run.cutoff_ms
        destroyed = await self.queue_functions.destroy_record(client_id, cutoff)
        if destroyed is None:
            return None
        self.report(destroyed.bad)
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
            self.report(home.bad)
            found.update(home.channels)
        key = self.keys.dying(record)
        with contextlib.suppress(EngineError):
            await self.redis.call("dying", lambda c: c.hdel(key, client_id), idempotent=True)
        return found

    def _forget(self, client_id: str) -> None:
        super()._forget(client_id)
        self.lane.forget(client_id)
        self._held.discard(client_id)

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
        self.report(record.bad)
        others = [h for h in homes if h != p]
        if record.added < 0 or not others:  # an unknown client, or nothing more to do
            return record.added > 0
        added = record.added > 0
        for home in await self.queue_functions.subscribe_homes(
            client_id, channel, ttl_ms, owner=record.owner, homes=others
        ):
            self.report(home.bad)
            added = added or home.added > 0
        return added

    async def unsubscribe(self, client_id: str, channel: str) -> bool:
        removed = False
        for home in await self.queue_functions.unsubscribe(
            client_id, channel, self.keys.homes(channel)
        ):
            self.report(home.bad)
            removed = removed or home.removed
        return removed

    # -- publishing --------------------------------------------------------------------

    async def _send_publishes(self, batch: list[Publish], until: float | None) -> None:
        homes: dict[int, list[Publish]] = {}
        for item in batch:
            homes.setdefault(self._home_of(item[1]), []).append(item)
        unsent = await self.each_master(
            list(homes), lambda together: self._publish_calls(homes, together, until)
        )
        for p in unsent:
            for _, _, future in homes[p]:
                if not future.done():
                    future.set_exception(EngineError("publish: the partition moved"))

    async def _publish_calls(
        self, homes: dict[int, list[Publish]], together: list[list[int]], until: float | None
    ) -> list[int]:
        """One publish call per list of partitions (a master's); returns the partitions
        of calls that found one of theirs elsewhere (and did nothing).

        With ``until`` each call carries a token, and transient failures are retried
        until then: a call Redis ran already finds its token and does nothing again.
        """
        _, alive, dead = self.cutoffs()
        calls = [
            PublishCall(
                [(p, [(envelope.raw, names) for envelope, names, _ in homes[p]]) for p in members],
                self.publishes.token() if until is not None else "",
            )
            for members in together
        ]
        # On a Cluster a failing master fails only the publishes homed there.
        answers = await self.queue_functions.publish(
            calls,
            alive_ms=alive,
            dead_ms=dead,
            max_queue=self.config.max_queue,
            message_ttl_ms=int(self.config.message_ttl * 1000),
            token_ttl_ms=int((self.config.stall_timeout + TOKEN_MARGIN) * 1000),
            until=until,
        )
        elsewhere: list[int] = []
        for members, answer in zip(together, answers, strict=True):
            items = [(p, future) for p in members for _, _, future in homes[p]]
            if isinstance(answer, EngineError):
                for _, future in items:
                    if not future.done():
                        future.set_exception(answer)
                continue
            if answer.outcome is CallOutcome.MOVED:
                elsewhere += members
                continue
            for _, future in items:
                if not future.done():
                    future.set_result(None)
            if answer.outcome is CallOutcome.REPLAYED:
                # Whom to wake was in the lost answer: wake all we hold there.
                for p in members:
                    self.lane.wake(self._held_in(p), p)
                continue
            self.report(answer.bad)
            for (p, _), mine in zip(items, answer.wake, strict=True):
                if mine:
                    self.lane.wake(mine, p)
        return elsewhere

    def _held_in(self, partition: int) -> list[str]:
        """The clients held here with a home (or their record) in ``partition``."""
        return [cid for cid in self._held if partition in self.lane.partitions_of(cid)]

    async def each_master(
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

    # -- connects and deliveries -------------------------------------------------------

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
        futures = self.lane.submit_claims(client_id, want_future=True)
        results = await self._answered(futures)
        # The record's answer names homes we did not claim: claim them too.
        missing: frozenset[int] = results[0]
        if missing:
            await self._answered(self.lane.submit_claims(client_id, missing, want_future=True))

    async def _answered(self, futures: list[asyncio.Future[Any]]) -> list[Any]:
        together = asyncio.gather(*futures)
        limit = self.config.answer_timeout + 1.0
        try:
            return await asyncio.wait_for(asyncio.shield(together), limit)
        except TimeoutError:
            together.add_done_callback(consume)
            raise EngineError("Redis did not answer in time during connect") from None

    def acknowledge(self, client_id: str, count: int) -> None:
        self.lane.acknowledge(client_id, count)

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None:
        self.lane.requeue(client_id, messages)

    async def drained(self) -> None:
        await self.lane.drained()

    # -- the listener ------------------------------------------------------------------

    def _channels(self) -> list[str]:
        names = list(self._notify_partitions)
        names += [self.keys.close_channel(p) for p in range(self.keys.partitions)]
        return names

    def _on_message(self, channel: str, data: bytes | str) -> None:
        if channel.endswith(":close"):
            self._on_close_line(data)
            return
        try:
            # '<cid>' is of the channel's partition, '<partition>/<cid>' of another one
            # on the same master (one notification per publish call and server).
            text = reply_text(data)
            partition = self._notify_partitions[channel]
            if "/" not in text:
                self.lane.wake((cid for cid in text.split(",") if cid), partition)
                return
            by_partition: dict[int, list[str]] = {}
            for entry in text.split(","):
                tag, _, cid = entry.rpartition("/")
                number = int(tag) if tag else partition
                if not 0 <= number < self.keys.partitions:
                    raise ValueError(f"no partition {number}")
                if cid:
                    by_partition.setdefault(number, []).append(cid)
            for number, cids in by_partition.items():
                self.lane.wake(cids, number)
        except Exception as exc:
            self.log.warning("ignoring a bad notification on %s: %r (%s)", channel, data, exc)

    def _holds_clients(self) -> bool:
        return bool(self._held)

    def _after_outage(self) -> Coroutine[Any, Any, None]:
        return self._take_up_held()

    async def _take_up_held(self) -> None:
        """Back on Redis after the listener lost it: take up every connection held here.

        Redis may have lost its data (a restart without persistence, a failover to a
        replica behind): our heartbeat, the clients' records, owners and queues. Clients
        still known are claimed again (owner, queue, messages queued meanwhile); those
        Redis forgot get their held connect answered and their socket closed, so that
        they learn at once (401 on their next connect) that they must handshake again
        instead of waiting out a held connect that nothing will ever wake.
        """
        with contextlib.suppress(EngineError):
            await self.beat()
        held = [cid for cid in self._held if self.host.has_connection(cid)]
        if not held:
            return
        try:
            known = await self._known_clients(held)
        except EngineError as exc:
            self.log.warning("could not check the held clients after reconnecting: %s", exc)
            for client_id in held:  # at least look for what was queued meanwhile
                for p in self.lane.partitions_of(client_id):
                    self.lane.wake([client_id], p)
            return
        gone = [cid for cid in held if cid not in known]
        for client_id in gone:
            self._forget(client_id)
            self.host.on_close(client_id)
        for client_id in known:
            if self.host.has_connection(client_id):
                self.lane.submit_claims(client_id)
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

    # -- garbage collection ------------------------------------------------------------

    async def recover_dead_servers(self, p: int) -> None:
        _, _, dead = self.cutoffs()
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
            self.report(recovered.bad)
            if recovered.moved >= 0:
                moved = recovered.moved
                self.log.info("server %s is gone; %d in-flight message(s) requeued", sid, moved)

    async def finish_destroys(self, p: int) -> None:
        """Clean the homes of clients whose destroy did not get that far."""
        if self.keys.partitions == 1:
            return
        key = self.keys.dying(p)
        pending = await self.redis.call("dying", lambda c: c.hgetall(key), idempotent=True)
        for raw_id, raw_homes in pending.items():
            homes = {int(h) for h in reply_text(raw_homes).split(",") if h} - {p}
            await self._clean_homes(reply_text(raw_id), p, homes)

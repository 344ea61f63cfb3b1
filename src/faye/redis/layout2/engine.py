"""``LogEngine``: layout 2 of the Redis engine (``layout: 2``; see docs/redis.md).

Publishes go through the publish lane (one call per event-loop turn, with the stall
token of layout 1) into the channel logs; the listener receives each message once per
server and fans it out in memory (:mod:`faye.redis.layout2.ledger`). Connects go through
the claim lane: one call per turn for every connecting client; a client held here in
memory costs a ping and an owner check, one taken over gets its messages from the logs.
Cursors are written at most every ``cursor_interval`` (at once when none was written
for that long), so a steady flow costs one call per interval per server, whatever the
number of clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import orjson

from faye.engine import EngineError, EngineHost
from faye.envelope import Envelope
from faye.protocol.channels import expand
from faye.redis.engine import TOKEN_MARGIN, RedisEngine, consume
from faye.redis.gc import current_run
from faye.redis.layout2.functions import (
    Claim,
    ClaimMode,
    ClaimRequest,
    ClaimStatus,
    Cursor,
    LogFunctions,
    Outgoing,
    PublishReplayed,
)
from faye.redis.layout2.keys import LogKeys
from faye.redis.layout2.ledger import Held, Ledger
from faye.redis.layout2.lines import Control, ControlLine, Published, parse
from faye.redis.publish_lane import Publish
from faye.redis.turns import TurnLane

#: Live lines kept while a claim is on the wire, to replay those the claim's answer
#: comes too late for (bounded: a claim's answer takes milliseconds).
RECENT_LIMIT = 10_000

#: A client's logs are offered for cutting once it has written this many messages since
#: the last offer (``log_cursors.lua`` leaves 32 entries): a cursor write then costs no
#: log command for a client that receives little, and no offer is spent on messages
#: handed out and not yet written (the cut stops at what was written).
CUT_AFTER = 32

_Waiting = tuple[ClaimRequest, "asyncio.Future[Claim]"]


class LogEngine(RedisEngine):
    """The Redis engine on layout 2 (channel logs)."""

    def __init__(
        self,
        host: EngineHost,
        options: Mapping[str, Any] | None = None,
        *,
        background: bool = True,
    ) -> None:
        super().__init__(host, options, background=background)
        self.log_keys = LogKeys(self.keys)
        self.functions = LogFunctions(self.redis, self.log_keys, self.server_id, self.batch)
        self.ledger = Ledger(self.config.max_queue)
        self._claims: TurnLane[_Waiting] = TurnLane(self._send_claims)
        self._claiming = 0
        self._recent: list[Published] = []
        # Give-backs that arrived before the take-over they concern was applied.
        self._early_returns: list[ControlLine] = []
        self._cursor_timer: asyncio.TimerHandle | None = None
        self._cursor_written = 0.0
        self._cursor_task: asyncio.Task[None] | None = None
        self._cursor_again = False
        # Per client being caught up after a listener outage: the sequence numbers it
        # received live since the listener came back (not to be taken again).
        self._live_since_outage: dict[str, set[int]] = {}
        self._decoded: dict[bytes, Envelope | None] = {}
        # Draining: nothing more is handed out here (see hand_over).
        self._handing_over = False
        # Long-polling clients with messages to answer once their cursor is recorded.
        self._replies: TurnLane[str] = TurnLane(self._send_replies)
        has_socket = getattr(host, "has_socket", None)
        self._has_socket: Any = has_socket if has_socket is not None else (lambda _: True)

    # -- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(EngineError, asyncio.CancelledError):
            await self._write_cursors()
        await super().close()

    async def kill(self) -> None:
        if self._cursor_timer is not None:
            self._cursor_timer.cancel()
        if self._cursor_task is not None:
            self._cursor_task.cancel()
        await super().kill()

    def _cancel_lanes(self) -> None:
        super()._cancel_lanes()
        self._claims.cancel()
        self._replies.cancel()

    def _fail_pending(self, error: EngineError) -> None:
        super()._fail_pending(error)
        for _, future in self._claims.take_waiting():
            if not future.done():
                future.set_exception(error)

    def _cancel_background(self) -> None:
        super()._cancel_background()
        if self._cursor_timer is not None:
            self._cursor_timer.cancel()
            self._cursor_timer = None

    # -- clients and subscriptions -----------------------------------------------------

    async def destroy_client(self, client_id: str) -> list[str] | None:
        self.known.forget(client_id)
        run = current_run()
        names = await self.functions.destroy(client_id, None if run is None else run.cutoff_ms)
        if names is None:
            return None
        self._forget(client_id)
        if run is not None:
            run.collected += 1
        return sorted(names)

    def _forget(self, client_id: str) -> None:
        super()._forget(client_id)
        self.ledger.drop(client_id)

    def unacknowledged(self) -> int:
        return sum(len(held.unacked) for held in self.ledger.clients.values() if held.unacked)

    def _ttl_ms(self) -> int:
        ttl = self.config.subscription_ttl
        return int(ttl * 1000) if ttl else 0

    async def subscribe(self, client_id: str, channel: str) -> bool:
        # The holder learns of it from its channel, in order with the messages.
        return await self.functions.subscribe(client_id, channel, self._ttl_ms()) > 0

    async def unsubscribe(self, client_id: str, channel: str) -> bool:
        return await self.functions.unsubscribe(client_id, channel)

    # -- the publish lane --------------------------------------------------------------

    async def _send_publishes(self, batch: list[Publish], until: float | None) -> None:
        token = self.publishes.token() if until is not None else ""
        messages = [
            Outgoing(envelope.raw, _channel_of(names), names) for envelope, names, _ in batch
        ]
        # A replay finds its token: Redis ran it before the connection broke.
        with contextlib.suppress(PublishReplayed):
            await self.functions.publish(
                messages,
                max_queue=self.config.max_queue,
                ttl_ms=int(self.config.message_ttl * 1000),
                token=token,
                token_ttl_ms=int((self.config.stall_timeout + TOKEN_MARGIN) * 1000),
                until=until,
            )
        for _, _, future in batch:
            if not future.done():
                future.set_result(None)

    # -- connects: the claim lane ------------------------------------------------------

    async def empty_queue(self, client_id: str) -> None:
        if self.host.has_connection(client_id):
            await self._claim(client_id)

    async def connect(self, client_id: str) -> None:
        await self._claim(client_id)

    async def _claim(self, client_id: str) -> None:
        held = self.ledger.get(client_id)
        if held is None:
            request = ClaimRequest(client_id, ClaimMode.TAKE)
        else:
            # What waits now is handed out with the answer: recorded first.
            handed = held.pending[-1][0] if held.pending else held.handed
            record = f"{held.acked}/{handed}/{self.server_id}"
            held.recorded = max(held.recorded, handed)
            request = ClaimRequest(client_id, ClaimMode.HELD, record=record, covers=handed)
        future = self._submit_claim(request)
        limit = self.config.answer_timeout + 1.0
        try:
            await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            self._unsure_record(request)
            raise EngineError("Redis did not answer in time during connect") from None
        except EngineError:
            self._unsure_record(request)
            raise

    def _unsure_record(self, request: ClaimRequest) -> None:
        """A claim failed: Redis may have recorded what it was to hand out. Put the
        record right as soon as Redis answers again (if the client moves first, what
        it skipped is given back when this server hears of the move)."""
        if request.mode is ClaimMode.HELD and self.ledger.get(request.client_id) is not None:
            self.ledger.dirty.add(request.client_id)
            self._cursor_changed(now=True)

    def _submit_claim(self, request: ClaimRequest) -> asyncio.Future[Claim]:
        if self._closed:
            raise EngineError("the Redis engine is closed")
        future: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()
        future.add_done_callback(consume)
        self._claims.add((request, future))
        return future

    async def _send_claims(self, batch: list[_Waiting]) -> None:
        now, _, dead = self.cutoffs()
        self._claiming += 1
        try:
            claims = await self.functions.claim(
                [request for request, _ in batch],
                now_ms=now,
                dead_ms=dead,
                max_queue=self.config.max_queue,
                oldest_ms=now - int(self.config.message_ttl * 1000),
                subscription_ttl_ms=self._ttl_ms(),
                lanes=bool(self.config.stall_timeout),
            )
        except Exception as exc:
            error = exc if isinstance(exc, EngineError) else EngineError(f"connect: {exc!r}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        finally:
            self._claiming -= 1
        for (request, future), claim in zip(batch, claims, strict=True):
            try:
                self._apply_claim(request, claim)
            except Exception as exc:  # a host callback failed; keep the lane going
                self.log.error("delivery to %s failed", request.client_id, exc_info=exc)
            if not future.done():
                future.set_result(claim)
        if not self._claiming and not self._claims.waiting:
            self._recent.clear()
            self._early_returns.clear()

    def _apply_claim(self, request: ClaimRequest, claim: Claim) -> None:
        client_id = request.client_id
        if claim.status is ClaimStatus.UNKNOWN:
            self._forget(client_id)
            return
        if claim.status is ClaimStatus.TAKEN:
            old = self.ledger.get(client_id)
            held = Held(names=claim.subscriptions, last=claim.seq, claimed_at=claim.seq)
            if old is not None and request.after is not None:
                # Taken again after a listener outage: keep what was in memory.
                held.pending, held.unacked = old.pending, old.unacked
                held.acked, held.handed = old.acked, old.handed
                held.last = max(old.last, claim.seq)
            live = self._live_since_outage.get(client_id, set())
            for seq, raw in claim.backlog:
                if seq in live:
                    continue  # it came live meanwhile, and waits in pending
                envelope = self._envelope(client_id, raw)
                if envelope is not None:
                    held.add_pending(seq, envelope)
            if live:
                held.sort_pending()
            held.acked = held.acked or (claim.backlog[0][0] - 1 if claim.backlog else claim.seq)
            if not held.handed:
                held.handed = held.acked
            self.ledger.hold(client_id, held)
            # Live messages that arrived before this answer.
            for line in self._recent:
                if line.seq > claim.seq:
                    self._on_published(line, only=client_id)
            if claim.unsure is not None:
                held.unsure = claim.unsure[1:]
                self._replay_if_dead(client_id, *claim.unsure)
                for early in [r for r in self._early_returns if r.client_id == client_id]:
                    self._on_returned(early)
            if request.after is None:
                # The claim recorded the backlog as handed out.
                covers = claim.backlog[-1][0] if claim.backlog else 0
            else:
                # A catch-up recorded only what was handed out: a long-poll's reply
                # waits for the reply lane to record it first.
                covers = request.covers
        else:
            covers = request.covers
        held_now = self.ledger.get(client_id)
        if held_now is not None:
            self._hand(client_id, held_now, covers)

    def _replay_if_dead(self, client_id: str, holder: str, acked: int, handed: int) -> None:
        """The client was taken from a live server whose last cursor counted messages
        handed out and not yet written. If that server turns out to be dying (no
        heartbeat for ``dead_server_after``), they may never have been written: read
        them back and send them again (at-least-once, late, out of order)."""
        if self._closed:
            return
        delay = self.config.dead_server_after + self.config.heartbeat_interval
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self._replay_due, client_id, holder, acked, handed)

    def _replay_due(self, client_id: str, holder: str, acked: int, handed: int) -> None:
        if not self._closed and self.ledger.get(client_id) is not None:
            self._spawn(self._replay(client_id, holder, acked, handed))

    async def _replay(self, client_id: str, holder: str, acked: int, handed: int) -> None:
        held = self.ledger.get(client_id)
        if held is None or self._closed:
            return
        key = self.log_keys.servers
        try:
            beat = await self.redis.call("replay", lambda c: c.zscore(key, holder), idempotent=True)
            _, _, dead = self.cutoffs()
            if beat is not None and beat > dead:
                return  # alive: the client connecting again means it was written
            entries = await self.functions.read_range(dict(held.names), acked, handed)
        except EngineError as exc:
            self.log.warning(
                "could not check %s's messages on server %s: %s", client_id, holder, exc
            )
            return
        if self._hand_again(client_id, entries):
            self.log.info(
                "server %s died with %d message(s) for %s maybe unwritten; sent again",
                holder,
                len(entries),
                client_id,
            )

    def _hand_again(self, client_id: str, entries: list[tuple[int, bytes]]) -> bool:
        """Messages read back for a client held here go out again (late, after what
        it was handed since)."""
        held = self.ledger.get(client_id)
        if held is None or not entries:
            return False
        for seq, raw in entries:
            envelope = self._envelope(client_id, raw)
            if envelope is not None:
                held.add_pending(seq, envelope)
        self._hand(client_id, held)
        self._decoded.clear()
        return True

    def _hand(self, client_id: str, held: Held, covers: int = 0) -> None:
        """Hand what waits for the client to its connection here, if it has one.

        A socket gets everything (its cursor is recorded every cursor_interval). A
        held connect gets what the recorded cursor ``covers``; the rest waits for the
        reply lane to record it first: the client's next connect may reach another
        server, which must not take the reply's messages for unsent.
        """
        if not held.pending or not self.host.has_connection(client_id) or self._handing_over:
            if covers > held.handed:
                # Recorded as handed out, and not: put the record right at once, or a
                # server taking the client over would skip these.
                self.ledger.dirty.add(client_id)
                self._cursor_changed(now=True)
            return
        if self._has_socket(client_id) or held.pending[-1][0] <= covers:
            items = held.take_pending()
        else:
            items = held.take_pending(upto=covers)
            self._reply_later(client_id)
            if not items:
                return
        self.ledger.handed(client_id, held, [seq for seq, _ in items])
        if self.host.deliver(client_id, [envelope for _, envelope in items]):
            self._cursor_changed()
            return
        self.ledger.requeue(client_id, [envelope for _, envelope in items])

    def _reply_later(self, client_id: str) -> None:
        if not self._closed:
            self._replies.add(client_id)

    async def _send_replies(self, batch: list[str]) -> None:
        """Record the cursors of long-polling clients, then answer them: one call per
        turn for all of them."""
        covers: dict[str, int] = {}
        records = []
        for cid in dict.fromkeys(batch):
            held = self.ledger.get(cid)
            if held is not None and held.pending and self.host.has_connection(cid):
                covers[cid] = held.pending[-1][0]
                held.recorded = max(held.recorded, covers[cid])
                records.append(Cursor(cid, held.acked, covers[cid]))
        try:
            await self.functions.cursors(records)
        except EngineError as exc:
            # Answered anyway: a duplicate after a move beats a reply withheld.
            self.log.debug("recording cursors before replies failed: %s", exc)
        for cid, upto in covers.items():
            held = self.ledger.get(cid)
            if held is not None:
                self._hand(cid, held, upto)

    # -- acknowledgements and cursors ----------------------------------------------------

    def acknowledge(self, client_id: str, count: int) -> None:
        self.ledger.acknowledge(client_id, count)
        self._cursor_changed()

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None:
        if not messages or self._closed:
            return
        if self.ledger.requeue(client_id, list(messages)):
            # Written now rather than later: a server taking the client over must not
            # take these for handed out.
            self._cursor_changed(now=True)
            return
        unwritten = self.ledger.unwritten(client_id, len(messages))
        if unwritten is None:
            self.log.debug("%d message(s) for %s not written; it is gone", len(messages), client_id)
        else:
            # It moved while these were being written: its new holder may have skipped them.
            self._give_back(client_id, *unwritten)

    # -- giving back what a client that moved was never written -------------------------

    def _release(self, client_id: str) -> None:
        """The client is held elsewhere now. Its take-over trusted this server's
        recorded ``handed``: what waited here at or below it was never written, so the
        new holder is told (and what is being written is given back if it fails)."""
        held = self.ledger.depart(client_id)
        if held is None:
            return
        waiting = held.pending or ()
        self._give_back(client_id, held, [seq for seq, _ in waiting if seq <= held.recorded])

    def _give_back(self, client_id: str, held: Held, seqs: list[int]) -> None:
        if seqs and not self._closed:
            self._spawn(self._send_back(client_id, held.acked, held.handed, seqs))

    async def _send_back(self, client_id: str, acked: int, handed: int, seqs: list[int]) -> None:
        try:
            await self.functions.give_back(client_id, acked, handed, seqs)
        except EngineError as exc:
            self.log.warning(
                "could not give back %d unwritten message(s) of %s: %s", len(seqs), client_id, exc
            )

    def _on_returned(self, line: ControlLine) -> None:
        """The previous holder never wrote these: send again those the take-over skipped."""
        held = self.ledger.get(line.client_id)
        if held is None or held.unsure is None:
            if self._claiming:
                self._early_returns.append(line)  # its take-over is being applied
                del self._early_returns[:-RECENT_LIMIT]
            return
        low, high = held.unsure
        wanted = {seq for seq in line.seqs if low < seq <= high}
        if wanted:
            self._spawn(self._read_back_given(line.client_id, wanted))

    async def _read_back_given(self, client_id: str, seqs: set[int]) -> None:
        held = self.ledger.get(client_id)
        if held is None or self._closed:
            return
        try:
            entries = await self.functions.read_range(dict(held.names), min(seqs) - 1, max(seqs))
        except EngineError as exc:
            self.log.warning("could not read back %s's unwritten messages: %s", client_id, exc)
            return
        self._hand_again(client_id, [(seq, raw) for seq, raw in entries if seq in seqs])

    def connection_closed(self, client_id: str) -> None:
        # Handed out since the last record (a socket's deliveries): the client's next
        # connect may reach another server, which must not take them again.
        if self.ledger.unrecorded(client_id):
            self._cursor_changed(now=True)

    async def hand_over(self) -> None:
        self._handing_over = True
        for client_id in self.ledger.clients:
            self.ledger.unrecorded(client_id)
        if self._cursor_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._cursor_task)
        try:
            await self._write_cursors()
        except EngineError as exc:
            self.log.warning("could not record clients' progress before the drain: %s", exc)

    def _cursor_changed(self, *, now: bool = False) -> None:
        if not self.ledger.dirty or self._closed:
            return
        if self._cursor_timer is not None:
            if not now:
                return
            self._cursor_timer.cancel()
        loop = asyncio.get_running_loop()
        delay = 0.0 if now else self._cursor_written + self.config.cursor_interval - loop.time()
        self._cursor_timer = loop.call_later(max(delay, 0.0), self._cursor_due)

    def _cursor_due(self) -> None:
        self._cursor_timer = None
        if self._cursor_task is None:
            self._cursor_task = asyncio.ensure_future(self._cursor_flush())
        else:
            self._cursor_again = True  # due now: right after the write under way

    async def _cursor_flush(self) -> None:
        try:
            await self._write_cursors()
        except EngineError as exc:
            self.log.debug("writing cursors failed: %s", exc)
        finally:
            self._cursor_task = None
        again, self._cursor_again = self._cursor_again, False
        if self.ledger.dirty:
            self._cursor_changed(now=again)

    async def _write_cursors(self) -> None:
        dirty, self.ledger.dirty = self.ledger.dirty, set()
        self._cursor_written = asyncio.get_running_loop().time()
        records = []
        for cid in dirty:
            held = self.ledger.get(cid)
            if held is not None:
                # Its logs are worth cutting once it wrote more than the cut keeps.
                names: tuple[str, ...] = ()
                if held.uncut > CUT_AFTER:
                    names, held.uncut = tuple(held.names), 0
                held.recorded = max(held.recorded, held.handed)
                records.append(Cursor(cid, held.acked, held.handed, names))
        try:
            await self.functions.cursors(records)
        except BaseException:
            self.ledger.dirty |= {r.client_id for r in records if self.ledger.get(r.client_id)}
            raise

    async def drained(self) -> None:
        await self._claims.idle()
        if self._cursor_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._cursor_task)
        with contextlib.suppress(EngineError):
            await self._write_cursors()

    # -- the listener ----------------------------------------------------------------

    def _channels(self) -> list[str]:
        return [self.log_keys.wake(self.server_id), self.log_keys.close]

    def _on_message(self, channel: str, data: bytes | str) -> None:
        if channel == self.log_keys.close:
            self._on_close_line(data)
            return
        if isinstance(data, str):
            data = data.encode()
        try:
            for line in parse(data):
                if isinstance(line, Published):
                    if self._claiming:
                        self._recent.append(line)
                        del self._recent[:-RECENT_LIMIT]
                    self._on_published(line)
                else:
                    self._on_control(line)
        except Exception as exc:
            self.log.warning("ignoring a bad line on %s: %r (%s)", channel, data[:200], exc)
        finally:
            self._decoded.clear()

    def _on_published(self, line: Published, only: str | None = None) -> None:
        recipients = self.ledger.recipients(expand(line.channel), line.seq)
        if not recipients:
            return
        envelope = self._envelope("", line.raw)
        if envelope is None:
            return
        for cid, held in recipients:
            if only is not None and cid != only:
                continue
            live = self._live_since_outage.get(cid)
            if live is not None:
                live.add(line.seq)
                # Its catch-up after a listener outage is under way: kept until it is
                # answered, then handed out in order with what the logs give back (or
                # dropped, if Redis no longer knows the client). Handed out now, it
                # would go before the messages the outage held back, and its cursor
                # would pass them.
                self.ledger.queue(held, line.seq, envelope)
                continue
            if self._handing_over or not self.host.has_connection(cid):
                self.ledger.queue(held, line.seq, envelope)
                continue
            if not self._has_socket(cid):  # a held connect: cursor first
                self.ledger.queue(held, line.seq, envelope)
                self._reply_later(cid)
                continue
            if held.pending:  # behind messages put back: after them, in order
                self.ledger.queue(held, line.seq, envelope)
                self._hand(cid, held)
                continue
            self.ledger.handed(cid, held, [line.seq])
            if self.host.deliver(cid, (envelope,)):
                self._cursor_changed()
            else:
                self.ledger.requeue(cid, [envelope])

    def _on_control(self, line: ControlLine) -> None:
        if line.kind is Control.SUBSCRIBED:
            self.ledger.subscribed(line.client_id, line.name, line.seq)
        elif line.kind is Control.UNSUBSCRIBED:
            self.ledger.unsubscribed(line.client_id, line.name)
        elif line.kind is Control.RETURNED:
            self._on_returned(line)
        else:
            held = self.ledger.get(line.client_id)
            if held is not None and held.claimed_at <= line.seq:
                self._release(line.client_id)

    def _envelope(self, client_id: str, raw: bytes) -> Envelope | None:
        if raw in self._decoded:
            return self._decoded[raw]
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = None
        valid = isinstance(message, dict) and isinstance(message.get("channel"), str)
        envelope = Envelope(raw, message) if valid else None
        if envelope is None:
            self.log.warning("skipping a corrupt logged message for %s: %r", client_id, raw[:100])
        self._decoded[raw] = envelope
        return envelope

    def _holds_clients(self) -> bool:
        return bool(self.ledger.clients)

    def _after_outage(self) -> Coroutine[Any, Any, None]:
        """Back on Redis after the listener lost it: messages sent meanwhile were lost on
        the way, so every client connected here is taken again from what it was given.

        Called as the listener is back, before any line arrives: where each client was
        is noted now (lines arriving from now on are live, and are not taken again),
        then the catch-up runs, retried until it gets through (a failover may leave the
        command connections failing a little longer than the listener's).
        """
        since = {cid: held.last for cid, held in self.ledger.clients.items()}
        for cid in since:
            self._live_since_outage[cid] = set()
        return self._catch_up(since)

    async def _catch_up(self, since: dict[str, int]) -> None:
        """The others are forgotten: one may have moved to another server meanwhile (its
        ``m`` line lost with the rest), and taking it back would hide it from there.
        They are taken over from their cursor when they connect."""
        try:
            with contextlib.suppress(EngineError):
                await self.beat()
            away = [
                c for c in since if c in self.ledger.clients and not self.host.has_connection(c)
            ]
            if away:
                # Their records may count replies the outage kept from being sent.
                self.ledger.dirty.update(away)
                with contextlib.suppress(EngineError):
                    await self._write_cursors()
            for cid in away:
                if not self.host.has_connection(cid):
                    self._release(cid)
            todo = [cid for cid in since if self.ledger.get(cid) is not None]
            gone: list[str] = []
            attempt = 0
            while todo and not self._closed:
                requests = [self._catch_up_request(cid, since[cid]) for cid in todo]
                futures = [self._submit_claim(request) for request in requests]
                results = await asyncio.gather(*futures, return_exceptions=True)
                retry = []
                for cid, claim in zip(todo, results, strict=True):
                    if isinstance(claim, Claim):
                        if claim.status is ClaimStatus.UNKNOWN:
                            gone.append(cid)
                    elif self.ledger.get(cid) is None:
                        continue
                    elif self.host.has_connection(cid):
                        retry.append(cid)
                    else:
                        # Its connect ended before Redis answered (Redis takes SUBSCRIBE
                        # while it loads its data, and refuses the claims): what the
                        # listener missed is not in memory. Forgotten here at once, its
                        # next connect takes it over from its cursor, reading the logs.
                        self._release(cid)
                todo = retry
                if todo:
                    delay = min(max(self.config.retry_delay, 0.05) * 2**attempt, 1.0)
                    attempt += 1
                    await asyncio.sleep(delay)
            for client_id in gone:
                self.host.on_close(client_id)
            if gone:
                self.log.warning(
                    "Redis no longer knows %d client(s) held here; told them to handshake again",
                    len(gone),
                )
        finally:
            for cid in since:
                self._live_since_outage.pop(cid, None)

    def _catch_up_request(self, client_id: str, since: int) -> ClaimRequest:
        """Take the client again from ``since``, recording only how far it was written
        and handed out here: what the logs give back is recorded as handed when it is
        (a long-poll's reply, like any other), as the client's next connect may reach
        another server before this answer arrives."""
        held = self.ledger.get(client_id)
        acked, handed = (0, 0) if held is None else (held.acked, held.handed)
        record = f"{acked}/{handed}"
        return ClaimRequest(client_id, ClaimMode.TAKE, since, record, covers=handed)


def _channel_of(names: Sequence[str]) -> str:
    """The published channel: the one name of its expansion that is not a pattern."""
    for name in names:
        if "*" not in name:
            return name
    return names[0]

"""Layout 1's delivery lane: every queue operation of this server in one script call
per master and event-loop turn.

Drains on connect (C in the record partition, H in the other homes), drains on wake-up
(W), acknowledgements (A), requeues (R) and discards (D) join a batch; one batch is on
the wire at a time, so deliveries stay in order and a burst costs one round trip per
master. An operation names the client and the partition it concerns. What was handed
out and not yet trimmed is kept by :mod:`faye.redis.layout1.inflight`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from faye.engine import EngineError
from faye.envelope import Envelope
from faye.redis.connection import Arg
from faye.redis.layout1.functions import AS_LINES, DRAINS, CallOutcome, Drained, Op
from faye.redis.layout1.inflight import InFlight
from faye.redis.turns import TurnLane

if TYPE_CHECKING:
    from faye.redis.layout1.engine import QueueEngine


class LaneOp:
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


def _as_line(op: LaneOp) -> str | None:
    """C, H, W and A take digits only (flags and counts the engine itself makes)."""
    if op.code not in AS_LINES or not op.client_id or not op.args:
        return None
    if "\n" in op.client_id:  # never in ids we issue; a line must not break
        return None
    args = op.args
    if len(args) == 1:
        return f"{op.code}{args[0]!s}:{op.client_id}"
    return f"{op.code}{'+'.join(map(str, args))}:{op.client_id}"


def encode_ops(ops: Sequence[LaneOp]) -> list[Arg]:
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


class DeliveryLane:
    def __init__(self, engine: QueueEngine) -> None:
        self.engine = engine
        self.inflight = InFlight(self._send_ack)
        self._lane: TurnLane[LaneOp] = TurnLane(self._send)
        self._waking: set[tuple[str, int]] = set()
        # Per client: its homes other than its record partition, as last seen.
        self._homes: dict[str, frozenset[int]] = {}
        self._rechecks: dict[str, asyncio.TimerHandle] = {}
        # Drains that failed, to try again after retry_delay.
        self._redrain: set[tuple[str, int]] = set()
        self._redrain_timer: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        return self.engine.closed

    # -- what the engine asks ------------------------------------------------------------

    def partitions_of(self, client_id: str) -> list[int]:
        """The client's record partition, then its other homes as last seen."""
        record = self.engine.keys.partition(client_id)
        return [record, *(h for h in self._homes.get(client_id, ()) if h != record)]

    def submit_claims(
        self, client_id: str, homes: Iterable[int] | None = None, *, want_future: bool = False
    ) -> list[asyncio.Future[Any]]:
        """C in the record partition and H in the known other homes, or H in ``homes``."""
        if homes is None:
            record, *others = self.partitions_of(client_id)
            ops = [(Op.CONNECT, record), *((Op.HOME, h) for h in others)]
        else:
            ops = [(Op.HOME, h) for h in homes]
        futures = []
        for code, partition in ops:
            future = self._submit(code, client_id, partition, want_future=want_future)
            if future is not None:
                futures.append(future)
        return futures

    def wake(self, client_ids: Iterable[str], partition: int) -> None:
        for client_id in client_ids:
            key = (client_id, partition)
            if key not in self._waking and self.engine.host.has_connection(client_id):
                self._waking.add(key)
                self._submit(Op.WAKE, client_id, partition)

    # acknowledge and requeue join the lane when called (at the moment of the write or
    # its failure); a failed batch is logged by the lane.

    def acknowledge(self, client_id: str, count: int) -> None:
        """The first ``count`` messages handed out for the client were written: trim them.

        Messages handed to a socket after those stay in flight until their own write.
        """
        taken = self.inflight.take(client_id, count, oldest=True)
        if taken and not self.closed:
            self.inflight.hold_ack(client_id, taken)

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None:
        """These messages (the last handed out) were not written: back to the head of
        their queues, in order."""
        if not messages or self.closed:
            return
        start = 0
        for partition, n in self.inflight.take(client_id, len(messages), oldest=False):
            part = messages[start : start + n]
            start += n
            self._submit(Op.REQUEUE, client_id, partition, [m.raw for m in part])
        if start < len(messages):  # more than we handed out: their home is unknown
            rest = messages[start:]
            record = self.engine.keys.partition(client_id)
            self._submit(Op.REQUEUE, client_id, record, [m.raw for m in rest])

    def forget(self, client_id: str) -> None:
        self.inflight.forget(client_id, self.partitions_of(client_id))  # before the homes
        self._homes.pop(client_id, None)
        handle = self._rechecks.pop(client_id, None)
        if handle is not None:
            handle.cancel()

    async def drained(self) -> None:
        """Wait until every queued operation has been sent (tests, shutdown)."""
        self.inflight.flush()
        await self._lane.idle()

    async def finish(self, limit: float) -> None:
        """Wait (at most ``limit`` seconds) for the batch on the wire."""
        await self._lane.finish(limit)

    def fail(self, error: EngineError) -> None:
        """Fail every operation not yet sent (the engine is closing)."""
        for op in self._lane.take_waiting():
            if op.future is not None and not op.future.done():
                op.future.set_exception(error)

    def stop_timers(self) -> None:
        self.inflight.cancel()
        if self._redrain_timer is not None:
            self._redrain_timer.cancel()
            self._redrain_timer = None
        for handle in self._rechecks.values():
            handle.cancel()
        self._rechecks.clear()

    def cancel(self) -> None:
        self._lane.cancel()

    # -- the lane ----------------------------------------------------------------------

    def _send_ack(self, client_id: str, partition: int, count: int) -> None:
        self._submit(Op.ACK, client_id, partition, [count])

    def _submit(
        self,
        code: Op,
        client_id: str,
        partition: int,
        args: Sequence[Arg] = (),
        *,
        want_future: bool = False,
    ) -> asyncio.Future[Any] | None:
        if self.closed:
            if want_future:
                raise EngineError("the Redis engine is closed")
            return None
        future = asyncio.get_running_loop().create_future() if want_future else None
        resend = False
        key = (client_id, partition)
        acked = self.inflight.pop_ack(key) if code is not Op.ACK else 0
        if code in DRAINS:
            resend = key in self.inflight.resend
            self.inflight.resend.discard(key)
            flag = "1" if resend else "0"
            args = [flag, acked] if acked else [flag]
        elif acked:
            self._lane.add(LaneOp(Op.ACK, client_id, partition, [acked]))
        self._lane.add(LaneOp(code, client_id, partition, args, future, resend))
        return future

    async def _send(self, batch: list[LaneOp]) -> None:
        self._waking.clear()  # a wake-up from now on joins the next batch
        groups: dict[int, list[LaneOp]] = {}
        for op in batch:
            groups.setdefault(op.partition, []).append(op)
        decoded: dict[bytes, Envelope | None] = {}
        unsent = await self.engine.each_master(
            list(groups), lambda together: self._send_calls(groups, together, decoded)
        )
        for p in unsent:
            self._fail_ops(groups[p], EngineError("delivery: the partition moved"))

    async def _send_calls(
        self,
        groups: dict[int, list[LaneOp]],
        together: list[list[int]],
        decoded: dict[bytes, Envelope | None],
    ) -> list[int]:
        """One deliveries call per list of partitions; returns the partitions of calls
        that found one of theirs elsewhere (and did nothing)."""
        engine = self.engine
        now, _, dead = engine.cutoffs()
        ttl = engine.config.subscription_ttl
        calls = [[(p, encode_ops(groups[p])) for p in members] for members in together]
        try:
            answers = await engine.queue_functions.deliveries(
                calls,
                now_ms=now,
                dead_ms=dead,
                subscription_ttl_ms=int(ttl * 1000) if ttl else 0,
                message_ttl_ms=int(engine.config.message_ttl * 1000),
                lanes=bool(engine.config.stall_timeout),
            )
        except BaseException as exc:  # cancelled while on the wire
            for members in together:
                for p in members:
                    self._fail_ops(groups[p], EngineError(f"delivery: {exc!r}"))
            raise
        elsewhere: list[int] = []
        for members, answer in zip(together, answers, strict=True):
            ops = [op for p in members for op in groups[p]]
            if isinstance(answer, EngineError):
                # On a Cluster only this master failed; the others went on.
                self._fail_ops(ops, answer)
                continue
            if answer.outcome is CallOutcome.MOVED:
                elsewhere += members
                continue
            engine.report(answer.bad)
            for op, result in zip(ops, answer.results, strict=True):
                value = None
                try:
                    value = self._finish(op, result, decoded)
                except Exception as exc:  # a host callback failed; keep the lane going
                    engine.log.error("delivery to %s failed", op.client_id, exc_info=exc)
                if op.future is not None and not op.future.done():
                    op.future.set_result(value)
        return elsewhere

    def _fail_ops(self, ops: Sequence[LaneOp], error: EngineError) -> None:
        for op in ops:
            if op.code in DRAINS or op.code is Op.REQUEUE:
                # The script may have run: messages may be in flight here
                # without having been handed out. The next drain resends them, and
                # one comes soon for a client held here, whether or not a publish
                # wakes it (Redis may only have stalled, keeping our listener).
                self.inflight.resend.add((op.client_id, op.partition))
                self._retry_drain(op.client_id, op.partition)
            if op.future is not None and not op.future.done():
                op.future.set_exception(error)
        if not any(op.future is not None for op in ops):
            self.engine.log.debug("delivery batch failed: %s", error)

    def _retry_drain(self, client_id: str, partition: int) -> None:
        """Wake the client again after ``retry_delay`` (one timer for all of them)."""
        if self.closed:
            return
        self._redrain.add((client_id, partition))
        if self._redrain_timer is None:
            delay = min(max(self.engine.config.retry_delay, 0.05), 1.0)
            self._redrain_timer = asyncio.get_running_loop().call_later(delay, self._redrain_now)

    def _redrain_now(self) -> None:
        self._redrain_timer = None
        pending, self._redrain = self._redrain, set()
        for client_id, partition in pending:
            self.wake([client_id], partition)

    # -- answers -----------------------------------------------------------------------

    def _finish(
        self, op: LaneOp, result: Drained | int, decoded: dict[bytes, Envelope | None]
    ) -> frozenset[int] | None:
        """Hand a drain's messages to the host. For C, returns the client's homes that
        were not claimed with it (claimed now unless someone waits to do it)."""
        client_id, partition = op.client_id, op.partition
        if not isinstance(result, Drained):
            if op.code is Op.REQUEUE and result == 1:
                self.wake([client_id], partition)
            return None
        missing: frozenset[int] = frozenset()
        if op.code is Op.CONNECT and result.status:
            missing = self._learn_homes(client_id, result.homes)
            if missing and op.future is None:
                self.submit_claims(client_id, missing)
        if result.status == 2:
            self._schedule_recheck(client_id)
        if result.messages:
            self._hand_over(op, result.messages, decoded)
        return missing

    def _learn_homes(self, client_id: str, homes: str) -> frozenset[int]:
        """Remember the client's homes (from its record); return those not known before."""
        record = self.engine.keys.partition(client_id)
        found = frozenset(int(h) for h in homes.split(",") if h) - {record}
        known = self._homes.get(client_id, frozenset())
        if found:
            self._homes[client_id] = found
        else:
            self._homes.pop(client_id, None)
        return found - known

    def _hand_over(
        self, op: LaneOp, raws: list[bytes], decoded: dict[bytes, Envelope | None]
    ) -> None:
        client_id, partition = op.client_id, op.partition
        envelopes = self._decode(client_id, raws, decoded)
        if len(envelopes) < len(raws):
            # Drop corrupt entries from the in-flight list so that acknowledging the
            # first N written messages trims exactly those.
            good = {e.raw for e in envelopes}
            self._submit(Op.DISCARD, client_id, partition, [raw for raw in raws if raw not in good])
        if op.resend:
            # The drain sent this partition's whole in-flight list again.
            self.inflight.forget_handed(client_id, partition)
        if not envelopes:
            return
        # Counted before the hand-over: a socket may write them, and acknowledge them,
        # before deliver() returns.
        self.inflight.handed(client_id, partition, len(envelopes))
        if self.engine.host.deliver(client_id, envelopes):
            return
        # Nobody to hand them to after all (the connection went away meanwhile).
        self.inflight.take(client_id, len(envelopes), oldest=False)
        self._submit(Op.REQUEUE, client_id, partition, [e.raw for e in envelopes])

    def _schedule_recheck(self, client_id: str) -> None:
        """Another live server holds messages of this client in flight; look again later.

        If that server is in fact dying, its heartbeat stops and the next claim moves
        its in-flight messages here.
        """
        if client_id in self._rechecks or self.closed:
            return
        config = self.engine.config
        delay = config.dead_server_after + config.heartbeat_interval

        def recheck() -> None:
            self._rechecks.pop(client_id, None)
            if self.engine.host.has_connection(client_id):
                self.submit_claims(client_id)

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
                self.engine.log.warning(
                    "skipping a corrupt queued message for %s: %r", client_id, raw[:100]
                )
                continue
            envelopes.append(envelope)
        return envelopes

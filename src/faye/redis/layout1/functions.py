"""Typed Python calls for layout 1's Lua functions (``lua/*.lua`` without ``log_``).

Each wrapper builds the argument list its function documents and turns the positional
answer into a result type, so that the engine does not index into Redis replies. The
publish and delivery lanes send one call per master for many operations; their calls
answer one result per call, or the EngineError of a master that failed (the others go
on). The delivery lane's operation codes are :class:`Op`; it packs them itself
(:func:`faye.redis.layout1.deliveries.encode_ops`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from faye.engine import EngineError
from faye.redis.batching import Batcher
from faye.redis.connection import Arg, RedisConnection, reply_text
from faye.redis.keys import Keys


class Op(StrEnum):
    """An operation of the delivery lane (``lua/deliveries.lua``)."""

    #: In the client's record partition: ping, take ownership, return its homes; drain.
    CONNECT = "C"
    #: In one of its other homes: take ownership, recover dead servers' in-flight; drain.
    HOME = "H"
    #: Drain, if this server owns the client there.
    WAKE = "W"
    #: The first N in-flight messages were written.
    ACK = "A"
    #: These in-flight messages were not written: queue them again, first.
    REQUEUE = "R"
    #: Drop these (corrupt) messages from the in-flight list.
    DISCARD = "D"


#: The operations that drain the client's queue (their answer carries messages).
DRAINS = frozenset((Op.CONNECT, Op.HOME, Op.WAKE))
#: The operations whose arguments are digits only: a run of them travels as one line.
AS_LINES = frozenset((Op.CONNECT, Op.HOME, Op.WAKE, Op.ACK))

#: Keys a function skipped because they held an unexpected type (reported, not fatal).
BadKeys = Sequence[bytes | str]


@dataclass(frozen=True, slots=True)
class Subscribed:
    #: 1 newly subscribed in that partition, 0 already, -1 unknown client (record only).
    added: int
    #: The server holding the client's connection (record partition only), or "".
    owner: str
    bad: BadKeys


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    removed: bool
    bad: BadKeys


@dataclass(frozen=True, slots=True)
class Destroyed:
    #: The channels the client was subscribed to in that partition.
    channels: list[str]
    #: Its other homes, for the caller to clean (record partition only).
    homes: set[int]
    bad: BadKeys


@dataclass(frozen=True, slots=True)
class Recovered:
    #: Messages queued again; -1 when the server turned out to be alive.
    moved: int
    bad: BadKeys


class CallOutcome(Enum):
    """What a publish or deliveries call did as a whole."""

    #: Ran; the answer has a result per message or operation.
    DONE = "done"
    #: A publish Redis had run already (its token was there): nothing done again, and
    #: the first run's answer, naming whom to wake, was lost with its connection.
    REPLAYED = "replayed"
    #: A partition of the call is not on that master any more (a Cluster resharded):
    #: nothing done; send each partition on its own.
    MOVED = "moved"


@dataclass(frozen=True, slots=True)
class PublishCall:
    """The publishes of one master: per partition, its messages (bytes and the names a
    subscription may have matched)."""

    parts: Sequence[tuple[int, Sequence[tuple[bytes, Sequence[str]]]]]
    #: "" or the call's token (retried calls: see :meth:`PublishLane.token`).
    token: str = ""


@dataclass(frozen=True, slots=True)
class PublishAnswer:
    outcome: CallOutcome
    #: Per message, in call order: the recipients held by this server, to wake.
    wake: Sequence[Sequence[str]] = ()
    bad: BadKeys = ()


@dataclass(frozen=True, slots=True)
class Drained:
    """The answer to C, H or W."""

    #: 0: nothing (unknown client, or not the owner there); 1: drained; 2: drained, and
    #: another live server still holds messages of the client in flight.
    status: int
    #: C only: the client's other homes, comma-separated.
    homes: str
    messages: list[bytes]


@dataclass(frozen=True, slots=True)
class LaneAnswer:
    outcome: CallOutcome
    #: Per operation, in call order: a :class:`Drained` for C, H and W; for R, 1 when
    #: this server owns the client's queue there (to drain it again), else 0; for A
    #: and D, a count the lane does not use.
    results: Sequence[Drained | int] = ()
    bad: BadKeys = ()


class QueueFunctions:
    """The calls; ``redis`` has layout 1's library loaded."""

    def __init__(self, redis: RedisConnection, keys: Keys, server_id: str, batch: Batcher) -> None:
        self.redis = redis
        #: The calls a client's requests make (subscribe, disconnect).
        self.batch = batch
        self.keys = keys
        self.server_id = server_id

    async def subscribe_record(
        self, client_id: str, channel: str, ttl_ms: int, *, here: bool, homes: Sequence[int]
    ) -> Subscribed:
        """In the client's record partition: enrol ``homes`` (the channel's partitions,
        on more than one) and subscribe there if the channel lives there (``here``)."""
        p = self.keys.partition(client_id)
        args: list[Arg] = [self.keys.prefix(p), client_id, channel, ttl_ms, "1"]
        args += ["1" if here else "0", "", *homes]
        added, owner, bad = await self.batch.script(
            "subscribe", [self.keys.clients(p)], args, idempotent=True
        )
        return Subscribed(int(added), "" if owner is None else reply_text(owner), bad)

    async def subscribe_homes(
        self, client_id: str, channel: str, ttl_ms: int, *, owner: str, homes: Sequence[int]
    ) -> list[Subscribed]:
        """In the channel's partitions other than the record one."""
        calls: list[tuple[list[str], list[Arg]]] = [
            (
                [self.keys.clients(h)],
                [self.keys.prefix(h), client_id, channel, ttl_ms, "0", "1", owner],
            )
            for h in homes
        ]
        results = await self.redis.run_scripts("subscribe", calls, idempotent=True)
        return [Subscribed(int(added), "", bad) for added, _, bad in results]

    async def unsubscribe(
        self, client_id: str, channel: str, homes: Sequence[int]
    ) -> list[Unsubscribed]:
        calls: list[tuple[list[str], list[Arg]]] = [
            ([self.keys.clients(h)], [self.keys.prefix(h), client_id, channel]) for h in homes
        ]
        results = await self.redis.run_scripts("unsubscribe", calls, idempotent=True)
        return [Unsubscribed(bool(removed), bad) for removed, bad in results]

    async def destroy_record(self, client_id: str, cutoff_ms: int | str) -> Destroyed | None:
        """The client's record, unless it is unknown or (with a GC's ``cutoff_ms``)
        pinged after it: None then. Not repeatable (a second run would find nothing)."""
        p = self.keys.partition(client_id)
        result = await self.batch.script(
            "destroy",
            [self.keys.clients(p)],
            [self.keys.prefix(p), self.server_id, client_id, cutoff_ms, "1", p],
            idempotent=False,
        )
        return None if result is None else _destroyed(result)

    async def destroy_homes(self, client_id: str, homes: Sequence[int]) -> list[Destroyed]:
        """The client's other homes, cleaned unconditionally (repeatable)."""
        calls: list[tuple[list[str], list[Arg]]] = [
            (
                [self.keys.clients(h)],
                [self.keys.prefix(h), self.server_id, client_id, "", "0", h],
            )
            for h in homes
        ]
        results = await self.redis.run_scripts("destroy", calls, idempotent=True)
        return [_destroyed(result) for result in results]

    async def recover(
        self, partition: int, server_id: str, dead_ms: int, message_ttl_ms: int
    ) -> Recovered:
        """A dead server's in-flight messages in ``partition``, queued again first."""
        moved, bad = await self.redis.run_script(
            "recover",
            [self.keys.clients(partition)],
            [self.keys.prefix(partition), server_id, dead_ms, message_ttl_ms],
            idempotent=True,
        )
        return Recovered(int(moved), bad)

    async def publish(
        self,
        calls: Sequence[PublishCall],
        *,
        alive_ms: int,
        dead_ms: int,
        max_queue: int,
        message_ttl_ms: int,
        token_ttl_ms: int,
        until: float | None,
    ) -> list[PublishAnswer | EngineError]:
        """Queue each message for its recipients and wake the servers holding them.

        With ``until`` the calls carry tokens and transient failures are retried until
        then; without, a call is never sent twice (it would queue its messages twice).
        """
        records = "1" if self.keys.partitions == 1 else "0"
        sent: list[tuple[list[str], list[Arg]]] = []
        for call in calls:
            first = call.parts[0][0]
            args: list[Arg] = [self.keys.prefix(first), self.server_id, alive_ms, dead_ms]
            args += [max_queue, message_ttl_ms, records, call.token, token_ttl_ms]
            for k, (p, messages) in enumerate(call.parts):
                if k:
                    args += ["P", self.keys.prefix(p), p]
                for raw, names in messages:
                    args += ["M", raw, len(names), *names]
            sent.append(([self.keys.clients(first)], args))
        results = await self.redis.run_scripts(
            "publish",
            sent,
            idempotent=False,
            partial=True,
            grouped=True,
            until=until,
            lanes=until is not None,
        )
        return [_published(result) for result in results]

    async def deliveries(
        self,
        calls: Sequence[Sequence[tuple[int, Sequence[Arg]]]],
        *,
        now_ms: int,
        dead_ms: int,
        subscription_ttl_ms: int,
        message_ttl_ms: int,
        lanes: bool,
    ) -> list[LaneAnswer | EngineError]:
        """Run each call's operations (per partition, packed by ``encode_ops``) in order.
        Never retried: an acknowledgement run twice would trim twice."""
        sent: list[tuple[list[str], list[Arg]]] = []
        for call in calls:
            first, ops = call[0]
            args: list[Arg] = [self.keys.prefix(first), self.server_id, now_ms, dead_ms]
            args += [subscription_ttl_ms, message_ttl_ms, *ops]
            for p, more in call[1:]:
                args += ["P", self.keys.prefix(p), 0, *more]
            sent.append(([self.keys.clients(first)], args))
        try:
            results = await self.redis.run_scripts(
                "deliveries", sent, idempotent=False, partial=True, grouped=True, lanes=lanes
            )
        except Exception as exc:
            return [EngineError(f"delivery: {exc!r}")] * len(sent)
        return [_lane_answer(result) for result in results]


def _published(result: Any) -> PublishAnswer | EngineError:
    if isinstance(result, EngineError):
        return result
    if len(result) == 1:
        moved = result[0] == -1
        return PublishAnswer(CallOutcome.MOVED if moved else CallOutcome.REPLAYED)
    per_message, bad = result
    wake = [[reply_text(cid) for cid in mine] for _queued, mine in per_message]
    return PublishAnswer(CallOutcome.DONE, wake, bad)


def _lane_answer(result: Any) -> LaneAnswer | EngineError:
    if isinstance(result, EngineError):
        return result
    if len(result) == 1:
        return LaneAnswer(CallOutcome.MOVED)
    answers, bad = result
    return LaneAnswer(CallOutcome.DONE, [_op_result(a) for a in answers], bad)


def _op_result(answer: Any) -> Drained | int:
    if isinstance(answer, list):
        return Drained(int(answer[0]), reply_text(answer[1]), answer[2:])
    return int(answer)


def _destroyed(result: Any) -> Destroyed:
    channels, homes, bad = result
    return Destroyed([reply_text(c) for c in channels], {int(h) for h in homes}, bad)

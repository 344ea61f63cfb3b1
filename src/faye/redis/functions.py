"""Typed Python calls for layout 1's Lua functions (``lua/*.lua`` without ``log_``).

Each wrapper builds the argument list its function documents and turns the positional
answer into a result type, so that the engine does not index into Redis replies. The
publish and delivery lanes batch many operations into one call and read their answers
in place (``faye.redis.engine``); their operation codes are :class:`Op`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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


def _destroyed(result: Any) -> Destroyed:
    channels, homes, bad = result
    return Destroyed([reply_text(c) for c in channels], {int(h) for h in homes}, bad)

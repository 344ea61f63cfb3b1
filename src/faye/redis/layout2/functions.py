"""One typed Python call per Lua function of layout 2 (``lua/log_*.lua``).

Each wrapper builds the argument list the function documents and turns its positional
answer into a result type, so that the engine never indexes into Redis replies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

from faye.engine import EngineError
from faye.redis.batching import Batcher
from faye.redis.connection import Arg, RedisConnection, reply_text
from faye.redis.layout2.keys import LogKeys

#: Most clients per claim or cursor call (Lua's unpack() has a stack limit).
CHUNK = 500


class ClaimMode(Enum):
    #: This server holds the client in memory: ping and check that it still does.
    HELD = "w"
    #: Take the client over: routes, previous holder told, logs read back.
    TAKE = "c"


class ClaimStatus(IntEnum):
    UNKNOWN = 0
    HELD = 1
    TAKEN = 2


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    client_id: str
    mode: ClaimMode
    #: Read the logs after this sequence number instead of the recorded cursor.
    after: int | None = None
    #: HELD: the cursor to record if the client is still held here (what it is about
    #: to be handed), or "". TAKE with ``after``: ``<acked>/<handed>``, known written
    #: and handed out here (the backlog read is not recorded as handed: no connect asks
    #: for it, and the client's may be gone when the answer comes).
    record: str = ""
    #: HELD, and TAKE with ``after``: the sequence number ``record`` hands out up to.
    covers: int = 0


@dataclass(slots=True)
class Claim:
    status: ClaimStatus
    #: The partition's clock when the claim ran: what follows comes live.
    seq: int = 0
    #: name -> the sequence number it was subscribed at.
    subscriptions: dict[str, int] = field(default_factory=dict)
    #: (seq, message) read back from the logs, oldest first.
    backlog: list[tuple[int, bytes]] = field(default_factory=list)
    #: The live server whose ``handed`` the claim started from while it knew only up
    #: to ``acked`` written: ``(holder, acked, handed)``, or None.
    unsure: tuple[str, int, int] | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish: its JSON, channel and the channel's expansion."""

    raw: bytes
    channel: str
    names: Sequence[str]


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a client held here was written (``acked``) and handed out."""

    client_id: str
    acked: int
    handed: int
    #: Its subscriptions: the logs to cut if it is their only reader.
    names: Sequence[str] = ()


class PublishReplayed(Exception):
    """The publish call's token was known: Redis had run it already."""


class LogFunctions:
    """The calls; ``redis`` has layout 2's library loaded."""

    def __init__(
        self, redis: RedisConnection, keys: LogKeys, server_id: str, batch: Batcher
    ) -> None:
        self.redis = redis
        #: The calls a client's requests make (subscribe, unsubscribe, disconnect).
        self.batch = batch
        self.keys = keys
        self.server_id = server_id

    async def publish(
        self,
        messages: Sequence[Outgoing],
        *,
        max_queue: int,
        ttl_ms: int,
        token: str,
        token_ttl_ms: int,
        until: float | None,
    ) -> int:
        """Returns how many messages had recipients; raises :class:`PublishReplayed`."""
        args: list[Arg] = [
            self.keys.prefix,
            max_queue,
            ttl_ms,
            self.server_id,
            token,
            token_ttl_ms,
        ]
        for m in messages:
            args += [m.raw, m.channel, len(m.names), *m.names]
        (result,) = await self.redis.run_scripts(
            "log_publish",
            [([self.keys.clients], args)],
            idempotent=False,
            until=until,
            lanes=until is not None,
        )
        if result[0] == -2:
            raise PublishReplayed()
        return int(result[0])

    async def subscribe(self, client_id: str, name: str, ttl_ms: int) -> int:
        """1 new, 0 existed, -1 unknown client."""
        return int(
            await self.batch.script(
                "log_subscribe",
                [self.keys.clients],
                [self.keys.prefix, self.server_id, client_id, name, ttl_ms],
                idempotent=True,
            )
        )

    async def unsubscribe(self, client_id: str, name: str) -> bool:
        return bool(
            await self.batch.script(
                "log_unsubscribe",
                [self.keys.clients],
                [self.keys.prefix, self.server_id, client_id, name],
                idempotent=True,
            )
        )

    async def destroy(self, client_id: str, cutoff_ms: int | None) -> list[str] | None:
        """The names it was subscribed to; None if unknown (or alive, for the GC)."""
        result = await self.batch.script(
            "log_destroy",
            [self.keys.clients],
            [
                self.keys.prefix,
                self.server_id,
                client_id,
                "" if cutoff_ms is None else cutoff_ms,
            ],
            idempotent=False,
        )
        if not result:
            return None
        return [reply_text(name) for name in result[0]]

    async def claim(
        self,
        requests: Sequence[ClaimRequest],
        *,
        now_ms: int,
        dead_ms: int,
        max_queue: int,
        oldest_ms: int,
        subscription_ttl_ms: int,
        lanes: bool,
    ) -> list[Claim]:
        head: list[Arg] = [
            self.keys.prefix,
            self.server_id,
            now_ms,
            dead_ms,
            max_queue,
            oldest_ms,
            subscription_ttl_ms,
        ]
        calls: list[tuple[Sequence[str], Sequence[Arg]]] = []
        for start in range(0, len(requests), CHUNK):
            args = list(head)
            for r in requests[start : start + CHUNK]:
                args += [r.client_id, r.mode.value, "" if r.after is None else r.after, r.record]
            calls.append(([self.keys.clients], args))
        results = await self.redis.run_scripts("log_claim", calls, idempotent=False, lanes=lanes)
        claims = []
        for result in results:
            if isinstance(result, EngineError):
                raise result
            claims += [self._claim(item) for item in result]
        return claims

    @staticmethod
    def _claim(item: list[Any]) -> Claim:
        status = ClaimStatus(int(item[0]))
        if status is not ClaimStatus.TAKEN:
            return Claim(status)
        seq, count = int(item[1]), int(item[2])
        flat = item[3 : 3 + 2 * count]
        subscriptions = {reply_text(flat[k]): int(flat[k + 1]) for k in range(0, len(flat), 2)}
        holder, acked, handed = item[3 + 2 * count : 6 + 2 * count]
        unsure = (reply_text(holder), int(acked), int(handed)) if holder else None
        rest = item[6 + 2 * count :]
        backlog = [(int(rest[k]), bytes(rest[k + 1])) for k in range(0, len(rest) - 1, 2)]
        return Claim(status, seq, subscriptions, backlog, unsure)

    async def read_range(
        self, subscriptions: Mapping[str, int], after: int, upto: int
    ) -> list[tuple[int, bytes]]:
        """Entries with ``after < seq <= upto`` of the logs of the subscribed names, past
        each one's subscription, each once, oldest first (whole logs read with plain
        commands: for the rare replay after a server's death)."""
        names = list(subscriptions)

        async def read(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.lrange(self.keys.log(name), 0, -1)
            return list(await pipe.execute())

        found: dict[int, bytes] = {}
        logs = await self.redis.call("replay", read, idempotent=True)
        for name, entries in zip(names, logs, strict=True):
            low = max(after, subscriptions[name])
            for entry in entries:
                head, _, raw = bytes(entry).partition(b" ")
                if head.isdigit() and low < int(head) <= upto:
                    found[int(head)] = raw
        return sorted(found.items())

    async def give_back(self, client_id: str, acked: int, handed: int, seqs: Sequence[int]) -> int:
        """Messages recorded as handed out to the client and not written (``seqs``):
        put its cursor right if it is still held here (``acked``/``handed``: what is
        known), else tell its holder. 1 put right, 2 holder told, 0 client gone."""
        return int(
            await self.redis.run_script(
                "log_return",
                [self.keys.clients],
                [
                    self.keys.prefix,
                    self.server_id,
                    client_id,
                    f"{acked}/{handed}",
                    ",".join(str(seq) for seq in seqs),
                ],
                idempotent=False,
            )
        )

    async def cursors(self, records: Sequence[Cursor]) -> None:
        """Write the cursors of clients still held here (and cut the logs only they
        read back, see ``log_cursors.lua``)."""
        calls: list[tuple[Sequence[str], Sequence[Arg]]] = []
        for start in range(0, len(records), CHUNK):
            args: list[Arg] = [self.keys.prefix, self.server_id]
            for r in records[start : start + CHUNK]:
                record = f"{r.acked}/{r.handed}/{self.server_id}"
                args += [r.client_id, record, r.acked, ",".join(r.names)]
            calls.append(([self.keys.clients], args))
        if calls:
            await self.redis.run_scripts("log_cursors", calls, idempotent=True, lanes=True)

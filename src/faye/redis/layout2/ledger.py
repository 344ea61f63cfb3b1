"""The clients a server holds, in memory: what each is subscribed to, what waits for
it, what it was handed and what it was written.

Live delivery costs Redis nothing: a message arrives once per server and is handed to
each client held here whose subscriptions match it. A client's ``last`` sequence number
makes that exactly once when several of its subscriptions match (``/a/*`` and ``/a/b``).
Its cursor (``acked``: written; ``handed``: handed to the transport) is what another
server reads back from when it takes the client over.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from faye.envelope import Envelope


@dataclass(slots=True)
class Held:
    """One client held here.

    Its two queues exist only while they hold something: an empty ``deque`` takes
    760 bytes (its first block), and most clients a server holds are idle between
    messages. Read them as possibly None; change them through the methods below.
    """

    #: name -> sequence number it was subscribed at (messages after it match).
    names: dict[str, int]
    #: The highest sequence number taken for the client (waiting, handed or written).
    last: int
    #: The partition's clock when this server last took the client over.
    claimed_at: int
    #: Messages not handed out yet, oldest first.
    pending: deque[tuple[int, Envelope]] | None = None
    #: Sequence numbers handed out and not yet written, in hand-out order.
    unacked: deque[int] | None = None
    acked: int = 0
    handed: int = 0
    #: Messages written since its logs were last offered for cutting.
    uncut: int = 0
    #: The highest ``handed`` sent to Redis in a cursor record (it may be recorded
    #: before it is handed out: what is at or below it and not written is given back
    #: if the client leaves).
    recorded: int = 0
    #: ``(acked, handed)`` of the live server this one took the client over from, when
    #: the take-over trusted its ``handed`` (what that server gives back in between was
    #: skipped), else None.
    unsure: tuple[int, int] | None = None

    def add_pending(self, seq: int, envelope: Envelope) -> None:
        if self.pending is None:
            self.pending = deque()
        self.pending.append((seq, envelope))

    def sort_pending(self) -> None:
        """Oldest first again, after messages older than those waiting were added."""
        if self.pending:
            self.pending = deque(sorted(self.pending, key=_seq))

    def take_pending(self, upto: int | None = None) -> list[tuple[int, Envelope]]:
        """What waits (up to sequence number ``upto``), oldest first, taken out."""
        pending = self.pending
        if not pending:
            return []
        if upto is None or pending[-1][0] <= upto:
            self.pending = None
            return list(pending)
        items = []
        while pending and pending[0][0] <= upto:
            items.append(pending.popleft())
        return items

    def add_unacked(self, seqs: list[int]) -> None:
        if self.unacked is None:
            self.unacked = deque(seqs)
        else:
            self.unacked.extend(seqs)


#: Most clients kept after they left with writes outstanding (oldest forgotten first).
DEPARTED_LIMIT = 10_000


class Ledger:
    """Held clients and, per subscribed name, the held clients subscribed to it."""

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self.clients: dict[str, Held] = {}
        self.index: dict[str, set[str]] = {}
        #: Clients whose cursor changed since it was last written.
        self.dirty: set[str] = set()
        #: Clients taken elsewhere while messages handed to them here were being
        #: written: kept until the transports report those written or not.
        self.departed: dict[str, Held] = {}

    def get(self, client_id: str) -> Held | None:
        return self.clients.get(client_id)

    def hold(self, client_id: str, held: Held) -> None:
        self.drop(client_id)
        self.departed.pop(client_id, None)
        self.clients[client_id] = held
        for name in held.names:
            self.index.setdefault(name, set()).add(client_id)

    def drop(self, client_id: str) -> Held | None:
        held = self.clients.pop(client_id, None)
        if held is not None:
            for name in held.names:
                self._unindex(name, client_id)
        self.dirty.discard(client_id)
        return held

    def depart(self, client_id: str) -> Held | None:
        """Drop the client; keep it among the departed while writes to it are
        outstanding, so that a failed one can be given back."""
        held = self.drop(client_id)
        if held is not None and held.unacked:
            self.departed[client_id] = held
            while len(self.departed) > DEPARTED_LIMIT:
                del self.departed[next(iter(self.departed))]
        return held

    def subscribed(self, client_id: str, name: str, seq: int) -> None:
        held = self.clients.get(client_id)
        if held is not None and name not in held.names:
            held.names[name] = seq
            self.index.setdefault(name, set()).add(client_id)

    def unsubscribed(self, client_id: str, name: str) -> None:
        held = self.clients.get(client_id)
        if held is not None and held.names.pop(name, None) is not None:
            self._unindex(name, client_id)

    def _unindex(self, name: str, client_id: str) -> None:
        members = self.index.get(name)
        if members is not None:
            members.discard(client_id)
            if not members:
                del self.index[name]

    def recipients(self, names: tuple[str, ...], seq: int) -> list[tuple[str, Held]]:
        """Held clients a message of ``seq`` matching ``names`` is for, each once."""
        found: dict[str, Held] = {}
        for name in names:
            members = self.index.get(name)
            if not members:
                continue
            for cid in members:
                if cid in found:
                    continue
                held = self.clients[cid]
                if seq > held.last and held.names.get(name, seq) < seq:
                    found[cid] = held
        return list(found.items())

    def queue(self, held: Held, seq: int, envelope: Envelope) -> None:
        """Keep a message for a client between connects (the newest max_queue)."""
        held.add_pending(seq, envelope)
        if seq > held.last:
            held.last = seq
        pending = held.pending
        while pending is not None and len(pending) > self.max_queue:
            pending.popleft()

    def handed(self, client_id: str, held: Held, seqs: list[int]) -> None:
        held.add_unacked(seqs)
        held.handed = seqs[-1]
        if seqs[-1] > held.last:
            held.last = seqs[-1]
        self.dirty.add(client_id)

    def acknowledge(self, client_id: str, count: int) -> None:
        held = self.clients.get(client_id)
        if held is None:
            gone = self.departed.get(client_id)
            if gone is not None:
                gone.acked = _written(gone, count)
                if not gone.unacked:
                    del self.departed[client_id]
            return
        acked = _written(held, count)
        if acked != held.acked:
            held.acked = acked
            self.dirty.add(client_id)

    def unrecorded(self, client_id: str) -> bool:
        """Mark the client's cursor to be written if it was handed out past its record;
        whether it was."""
        held = self.clients.get(client_id)
        if held is None or held.handed <= held.recorded:
            return False
        self.dirty.add(client_id)
        return True

    def unwritten(self, client_id: str, count: int) -> tuple[Held, list[int]] | None:
        """A departed client's last ``count`` handed-out messages were not written:
        the client and their sequence numbers (None if it is not departed)."""
        gone = self.departed.get(client_id)
        if gone is None:
            return None
        seqs = _not_written(gone, count)
        if not gone.unacked:
            del self.departed[client_id]
        return gone, sorted(seqs)

    def requeue(self, client_id: str, envelopes: list[Envelope]) -> bool:
        """Put the last handed-out messages back before those waiting; False if the
        client is not held here (any more)."""
        held = self.clients.get(client_id)
        if held is None:
            return False
        seqs = _not_written(held, len(envelopes))
        back = list(zip(seqs, reversed(envelopes), strict=False))
        if held.pending is None:
            held.pending = deque()
        held.pending.extendleft(back)
        self.dirty.add(client_id)
        return True


def _written(held: Held, count: int) -> int:
    """Take the next ``count`` handed-out messages as written: the new ``acked``."""
    acked = held.acked
    unacked = held.unacked
    if unacked is None:
        return acked
    written = min(count, len(unacked))
    for _ in range(written):
        acked = unacked.popleft()
    held.uncut += written
    if not unacked:
        held.unacked = None
    return acked


def _not_written(held: Held, count: int) -> list[int]:
    """Take back the last ``count`` handed-out messages (newest first); ``handed`` goes
    back with them."""
    unacked = held.unacked or deque()
    seqs = [unacked.pop() for _ in range(min(count, len(unacked)))]
    if unacked:
        held.handed = unacked[-1]
    else:
        held.unacked = None
        held.handed = held.acked
    return seqs


def _seq(item: tuple[int, Envelope]) -> int:
    return item[0]

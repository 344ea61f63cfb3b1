"""Layout 1's in-flight ledger: what this server handed out and has not yet trimmed.

A drain leaves the messages it hands out in their queue, counted as in flight by its
header, until the transport reports them written; then an acknowledgement trims them.
If this server dies first, another one hands them out again (at-least-once). This
module keeps, per client, how many were handed out from which partition and in which
order, so that "the first N written" and "the last N not written" name exact runs.

Acknowledgements are held back briefly (``ACK_DELAY``): the client's next drain there,
which in a fan-out comes with the next publish, carries them at no extra operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

#: The longest a written message's acknowledgement waits for its client's next drain
#: (seconds). A server dying meanwhile makes those messages duplicates, never losses.
ACK_DELAY = 0.25

#: (client, partition)
Place = tuple[str, int]


class InFlight:
    def __init__(self, send_ack: Callable[[str, int, int], None]) -> None:
        self._send_ack = send_ack
        #: Per client: messages handed to the host and not yet acknowledged, as runs of
        #: [partition, count] in hand-out order (each run is the head of this server's
        #: in-flight messages of the client in that partition).
        self.unacked: dict[str, list[list[int]]] = {}
        #: Per place: written messages whose acknowledgement waits for the client's
        #: next drain there: (count, loop time of the first), oldest first.
        self.acks: dict[Place, tuple[int, float]] = {}
        #: Places whose in-flight part may hold messages never handed out (a lane
        #: batch failed mid-way): their next drain sends all of it again.
        self.resend: set[Place] = set()
        self._timer: asyncio.TimerHandle | None = None

    def count(self) -> int:
        """Messages handed out and not yet reported written or not written."""
        return sum(n for runs in self.unacked.values() for _, n in runs)

    def handed(self, client_id: str, partition: int, count: int) -> None:
        runs = self.unacked.get(client_id)
        if runs is None:
            self.unacked[client_id] = [[partition, count]]
        elif runs and runs[-1][0] == partition:
            runs[-1][1] += count
        else:
            runs.append([partition, count])

    def take(self, client_id: str, count: int, *, oldest: bool) -> list[tuple[int, int]]:
        """Remove ``count`` handed-out messages from the oldest (written) or the newest
        (not written) end; returns the (partition, count) runs taken, in hand-out order."""
        runs = self.unacked.get(client_id)
        if runs is None or count <= 0:
            return []
        if len(runs) == 1 and runs[0][1] <= count:  # the usual case: one home, all of it
            del self.unacked[client_id]
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
            self.unacked.pop(client_id, None)
        if not oldest:
            taken.reverse()
        return taken

    def forget_handed(self, client_id: str, partition: int) -> None:
        """A drain sent the partition's whole in-flight list again: the runs from there
        no longer count."""
        runs = self.unacked.get(client_id)
        if runs:
            runs[:] = [run for run in runs if run[0] != partition]
            if not runs:
                del self.unacked[client_id]

    def hold_ack(self, client_id: str, taken: Iterable[tuple[int, int]]) -> None:
        """Hold back the acknowledgement of written runs (at most ``ACK_DELAY``)."""
        loop = asyncio.get_running_loop()
        for partition, n in taken:
            key = (client_id, partition)
            held = self.acks.get(key)
            # Reassigning an existing key keeps its place: the dict stays oldest first.
            self.acks[key] = (n, loop.time()) if held is None else (held[0] + n, held[1])
        if self._timer is None:
            self._timer = loop.call_later(ACK_DELAY, self.flush, ACK_DELAY)

    def pop_ack(self, place: Place) -> int:
        """The held-back acknowledgement of ``place``, for a drain there to carry."""
        held = self.acks.pop(place, None)
        return held[0] if held is not None else 0

    def flush(self, older_than: float = 0.0) -> None:
        """Send the held-back acknowledgements at least ``older_than`` seconds old (all by
        default) as operations of their own, and wait for the next-oldest."""
        self.cancel()
        if not self.acks:
            return
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - older_than
        due = []
        for key, (count, since) in self.acks.items():
            if since > cutoff:
                self._timer = loop.call_later(max(since - cutoff, 0.001), self.flush, ACK_DELAY)
                break
            due.append((key, count))
        for key, count in due:
            del self.acks[key]
            self._send_ack(key[0], key[1], count)

    def forget(self, client_id: str, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.acks.pop((client_id, p), None)
            self.resend.discard((client_id, p))
        self.unacked.pop(client_id, None)

    def reset(self) -> None:
        """Another server (or a Redis restart) declared this one dead and moved its
        in-flight messages back to their queues: the counts are void."""
        self.unacked.clear()
        self.acks.clear()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

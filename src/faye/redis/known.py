"""Clients this server saw pinged, so that asking whether they exist needs no round trip.

Faye looks a client up in Redis before each connect, subscribe and disconnect. Before a
subscribe, unsubscribe or disconnect (``Engine.client_known``, which the operation
itself settles; a connect still asks Redis) a client that this server created, or that
Redis recently answered for, counts as alive until its last ping known here is older
than the liveness window, as Redis would answer, unless it was destroyed meanwhile:
every destroy forgets it here, on this server at once and on the others through the
close notification they all receive. A forgotten id is never taken back (ids are not
reused), so an answer that was under way as the client was destroyed cannot revive it.
The listener losing Redis clears what is known (Redis may lose its data, and the
notifications sent meanwhile are gone), so during an outage every lookup asks Redis,
and fails, as it would without this.
"""

from __future__ import annotations

from typing import TypeVar

V = TypeVar("V")

#: Entries kept at most, of each kind; past it the oldest entered go first.
LIMIT = 65_536


class KnownClients:
    """Client id -> time of its last ping this server knows of (ms since the epoch)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._pinged: dict[str, float] = {}
        self._gone: dict[str, None] = {}

    def alive(self, client_id: str, cutoff_ms: float) -> bool:
        """Known to have pinged after ``cutoff_ms``."""
        pinged = self._pinged.get(client_id)
        return pinged is not None and pinged > cutoff_ms

    def saw(self, client_id: str, pinged_ms: float) -> None:
        if client_id in self._gone:
            return
        _add(self._pinged, client_id, pinged_ms, self.limit)

    def forget(self, client_id: str) -> None:
        self._pinged.pop(client_id, None)
        _add(self._gone, client_id, None, self.limit)

    def clear(self) -> None:
        self._pinged.clear()

    def __len__(self) -> int:
        return len(self._pinged)


def _add(entries: dict[str, V], key: str, value: V, limit: int) -> None:
    if key not in entries and len(entries) >= limit:
        del entries[next(iter(entries))]
    entries[key] = value

"""Whether Redis answers, as the engine's own calls find it: what an operator reads.

An outage is one warning when the first call fails and one info line when a call made
after that failure succeeds, with how long service was degraded; the calls in between
(every request of every client) add nothing to the log.
"""

from __future__ import annotations

import time

from faye.redis.log import EngineLog


class RedisHealth:
    """Up or down, and since when; fed by every command call and the listener."""

    def __init__(self, log: EngineLog) -> None:
        self.log = log
        #: ``time.monotonic()`` of the first failure of the current outage, or None.
        self.down_since: float | None = None
        #: When the last call that Redis answered was made (``time.monotonic()``).
        self.last_ok = time.monotonic()
        #: The last answer before the current outage (when Redis was last known up).
        self._up_until = 0.0
        #: (last known up, first answer after) of the last outage that ended.
        self._last_outage: tuple[float, float] | None = None

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, what: str, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self._up_until = self.last_ok
            self.log.warning("Redis connection lost during %s: %s", what, error or type(error))

    def answered(self, started: float) -> None:
        """A call begun at ``started`` (``time.monotonic()``) got its answer."""
        down = self.down_since
        if down is not None and started >= down:
            self.down_since = None
            now = time.monotonic()
            self._last_outage = (self._up_until, now)
            self.log.info("Redis reconnected; service was degraded for %.1f s", now - down)

    def outage_within(self, window: float) -> float:
        """The length of the current outage, or of the last one if it ended less than
        ``window`` seconds ago (0.0 if none), from the last call Redis answered before
        it: its first failure comes up to a read timeout (or a wait for a pooled
        connection) after Redis stopped answering."""
        now = time.monotonic()
        if self.down_since is not None:
            return now - self._up_until
        if self._last_outage is not None:
            began, ended = self._last_outage
            if now - ended < window:
                return ended - began
        return 0.0

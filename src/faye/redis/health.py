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

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, what: str, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.log.warning("Redis connection lost during %s: %s", what, error or type(error))

    def answered(self, started: float) -> None:
        """A call begun at ``started`` (``time.monotonic()``) got its answer."""
        down = self.down_since
        if down is not None and started >= down:
            self.down_since = None
            self.log.info(
                "Redis reconnected; service was degraded for %.1f s", time.monotonic() - down
            )

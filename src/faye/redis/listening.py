"""The engine's listener task: subscribe, read, and after any failure subscribe again.

Every failure mode (Redis restarting, a failover, a stall that breaks the connection)
ends the same way: the listener is dropped and a new one subscribes, after a backoff
capped near a second so that a server is back soon after a restart. What the layout
does with the messages, and after a reconnection, is given as callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence

from faye.redis.connection import RedisConnection, reply_text
from faye.redis.log import EngineLog
from faye.redis.options import RedisOptions


async def listen_forever(
    redis: RedisConnection,
    config: RedisOptions,
    log: EngineLog,
    channels: Sequence[str],
    *,
    on_open: Callable[[], None],
    on_message: Callable[[str, bytes | str], None],
    on_lost: Callable[[], None],
) -> None:
    """Run until cancelled. ``on_open`` is called each time the subscription stands
    (before any message of it), ``on_lost`` each time it fails."""
    failures = 0
    # An outage is usually a restart or a failover, over in seconds: keep trying often
    # enough (one connection attempt a second) to be back soon after it.
    cap = max(config.retry_delay, 1.0)
    while True:
        listener = redis.listener()
        started = time.monotonic()
        try:
            await listener.open(channels)
            redis.health.answered(started)
            if failures:
                log.info(
                    "listener resubscribed to %d channel(s) after %d attempt(s)",
                    len(channels),
                    failures,
                )
                failures = 0
            on_open()
            while True:
                message = await listener.get_message(5.0)
                if message is not None and message.get("type") in ("message", "smessage"):
                    on_message(reply_text(message["channel"]), message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            on_lost()
            redis.health.failed("listening", exc)
            log.debug("listener lost Redis (%s); reconnecting", exc)
            delay = min(max(config.retry_delay, 0.05) * 2 ** (failures - 1), cap)
            await asyncio.sleep(delay * (1 + 0.3 * random.random()))
        finally:
            # Bounded: a close that never returns must not keep this task (and the event
            # loop's shutdown, which waits for every task) alive.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.aclose(), config.connect_timeout + 1)

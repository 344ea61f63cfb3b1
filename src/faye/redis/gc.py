"""Garbage collection of the Redis engine, shared by both layouts.

One server at a time collects (a lock in Redis): it first lets the layout recover
what dead servers held, then destroys every client whose last ping is older than the
GC window, through its host so that the usual events fire. Clients are found with
ZRANGEBYSCORE on the ``clients`` sorted set of each partition, never with SCAN.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faye.engine import EngineError, generate_id
from faye.envelope import Envelope
from faye.redis.connection import reply_text

if TYPE_CHECKING:
    from faye.redis.engine import RedisEngine

#: Expired clients read per ZRANGEBYSCORE.
GC_BATCH = 500


@dataclass
class GcRun:
    """Set while the GC destroys clients, so that destroy only takes expired ones (a
    client that pinged since the GC read it is left alone)."""

    cutoff_ms: int
    collected: int = 0


_GC_RUN: ContextVar[GcRun | None] = ContextVar("faye_redis_gc_run", default=None)


def current_run() -> GcRun | None:
    """The GC run this destroy is part of, or None for a client's own disconnect."""
    return _GC_RUN.get()


@contextlib.contextmanager
def running(run: GcRun) -> Iterator[GcRun]:
    token = _GC_RUN.set(run)
    try:
        yield run
    finally:
        _GC_RUN.reset(token)


class GarbageCollector:
    def __init__(self, engine: RedisEngine) -> None:
        self.engine = engine

    async def loop(self) -> None:
        engine = self.engine
        interval = float(engine.config.gc_interval or 0)
        while True:
            await asyncio.sleep(interval)
            try:
                collected = await self.run()
            except EngineError as exc:
                engine.log.warning("garbage collection failed: %s", exc)
            except Exception as exc:
                engine.log.error("garbage collection failed", exc_info=exc)
            else:
                if collected:
                    engine.log.info("garbage collection removed %d client(s)", collected)

    async def run(self) -> int:
        """Destroy (with events) every client idle past the GC window; return how many."""
        engine = self.engine
        token = generate_id()
        lock_ms = int(max(60.0, 2 * float(engine.config.gc_interval or 0)) * 1000)
        key = engine.keys.gc_lock
        acquired = await engine.redis.call(
            "gc lock", lambda c: c.set(key, token, nx=True, px=lock_ms), idempotent=False
        )
        if not acquired:
            return 0
        engine.counts["gc_runs"] += 1
        collected = 0
        try:
            for p in range(engine.keys.partitions):
                await engine.recover_dead_servers(p)
                await engine.finish_destroys(p)
                collected += await self._collect(p)
            return collected
        finally:
            engine.counts["gc_clients_collected"] += collected
            with contextlib.suppress(EngineError):
                await engine.redis.run_script("unlock", [key], [token], idempotent=True)

    async def _collect(self, p: int) -> int:
        engine = self.engine
        key = engine.keys.clients(p)
        with running(GcRun(engine.alive_after_ms(engine.gc_window))) as run:
            while True:
                found = await engine.redis.call(
                    "expired clients",
                    lambda c: c.zrangebyscore(key, "-inf", run.cutoff_ms, start=0, num=GC_BATCH),
                    idempotent=True,
                )
                before = run.collected
                for raw in found:
                    await engine.host.destroy_client(reply_text(raw))
                # A batch where nothing could be destroyed would be read again forever.
                if len(found) < GC_BATCH or run.collected == before:
                    return run.collected


class StandaloneHost:
    """The host of an engine outside any server (``faye gc``, a Publisher): it holds no
    connections and events go nowhere; a GC it runs destroys clients directly."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.engine: RedisEngine | None = None

    def has_connection(self, client_id: str) -> bool:
        return False

    def deliver(self, client_id: str, messages: Sequence[Envelope]) -> bool:
        return False

    def on_close(self, client_id: str) -> None:
        pass

    async def destroy_client(self, client_id: str) -> None:
        if self.engine is not None:
            await self.engine.destroy_client(client_id)


async def collect_garbage(
    url_or_options: str | Mapping[str, Any],
    namespace: str | None = None,
    *,
    server_timeout: float = 60.0,
) -> int:
    """One garbage collection from outside any server (``faye gc``); returns the count.

    ``server_timeout`` is the servers' Bayeux timeout (clients idle for twice that long are
    collected) unless the options carry ``client_timeout``.
    """
    from faye.redis.engine import make_engine

    if isinstance(url_or_options, str):
        options: dict[str, Any] = {"url": url_or_options}
    else:
        options = {k: v for k, v in url_or_options.items() if k != "type"}
    if namespace is not None:
        options["namespace"] = namespace
    options.setdefault("log_level", "error")
    options["gc_interval"] = None
    host = StandaloneHost(server_timeout)
    probe = make_engine(host, options, background=False)
    try:
        engine = await probe.resolve()
    except BaseException:
        await probe.close()
        raise
    host.engine = engine
    try:
        await engine.redis.load_scripts()
        return await engine.cleanup_expired()
    finally:
        await engine.close()

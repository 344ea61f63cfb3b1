"""redis-py asyncio clients, script calls, retries and error translation.

Three deployments, one interface:

* one Redis: a bounded command pool (``pool_size`` connections, waiting up to
  ``pool_timeout`` for one) and a separate pool for the pub/sub listener, whose
  connection waits for messages without a read timeout;
* Sentinel: the same two clients, their pools asking the Sentinels for the master's
  address whenever they connect, so both follow a failover on their next connection;
* Cluster: redis-py's ``RedisCluster`` (one pool per node, MOVED/ASK followed, the slot
  map refreshed after errors) for commands, pipelines grouped per node and sent in
  parallel, and a listener of its own (:class:`ShardedListener`) with one SSUBSCRIBE
  connection per master.

With Sentinel and Cluster redis-py's pools do not wait for a free connection, so a
semaphore of ``pool_size`` bounds the calls in flight instead (each call uses at most
one connection per node).

redis-py's own retries are switched off: only operations the engine marks
idempotent are retried here (``max_retries`` attempts in all, sleeping
``retry_delay * 2**n`` between them). A publish is never retried: had Redis run it
before the connection failed, a retry would queue the message twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from redis import exceptions as rx
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import NoBackoff
from redis.crc import key_slot

from faye.engine import EngineError
from faye.redis.options import RedisOptions
from faye.redis.scripts import Script, load_all

T = TypeVar("T")

Arg = str | bytes | int | float

#: What every client type the engine uses answers to (Redis or RedisCluster).
Client = Any

logger = logging.getLogger("faye.redis")

#: Errors after which the same idempotent command may simply be sent again.
TRANSIENT: tuple[type[BaseException], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.BusyLoadingError,
    OSError,
    asyncio.TimeoutError,
    # Cluster: a failover or resharding under way.
    rx.ClusterDownError,
    rx.TryAgainError,
    rx.SlotNotCoveredError,
    rx.ClusterError,
)


class EngineLog:
    """The engine's ``log_level`` applied per engine, on the ``faye.redis`` logger."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        if threshold <= logging.CRITICAL and logger.level == logging.NOTSET:
            logger.setLevel(threshold)

    def enabled(self, level: int) -> bool:
        return level >= self.threshold

    def log(self, level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
        if level >= self.threshold:
            logger.log(level, msg, *args, exc_info=exc_info)

    def debug(self, msg: str, *args: Any) -> None:
        self.log(logging.DEBUG, msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self.log(logging.INFO, msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self.log(logging.WARNING, msg, *args)

    def error(self, msg: str, *args: Any, exc_info: Any = None) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info)


def _socket_kwargs(options: RedisOptions, *, pubsub: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "username": options.username,
        "password": options.password,
        "socket_connect_timeout": options.connect_timeout,
        # redis-py has one socket timeout for reads and writes.
        "socket_timeout": None if pubsub else max(options.read_timeout, options.write_timeout),
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
        "client_name": f"faye-{options.namespace}" + ("-listener" if pubsub else ""),
    }
    if pubsub:
        kwargs["health_check_interval"] = 10
    return kwargs


def _ssl_kwargs(options: RedisOptions) -> dict[str, Any]:
    return {
        "ssl_certfile": options.ssl.cert_file,
        "ssl_keyfile": options.ssl.key_file,
        "ssl_ca_certs": options.ssl.ca_file,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": options.ssl.check_hostname,
    }


def connection_kwargs(options: RedisOptions, *, pubsub: bool = False) -> dict[str, Any]:
    """redis-py connection arguments for one Redis (shared by both pools)."""
    kwargs = _socket_kwargs(options, pubsub=pubsub)
    kwargs.update(host=options.host, port=options.port, db=options.database)
    if options.ssl.enabled:
        kwargs["connection_class"] = SSLConnection
        kwargs.update(_ssl_kwargs(options))
    else:
        kwargs["connection_class"] = Connection
    return kwargs


def translate(exc: BaseException, what: str) -> EngineError:
    if isinstance(exc, rx.AuthenticationError):
        return EngineError(f"Redis refused our credentials during {what}: {exc}")
    if isinstance(exc, rx.TimeoutError | asyncio.TimeoutError):
        return EngineError(f"Redis did not answer in time during {what}")
    if isinstance(exc, TRANSIENT):
        return EngineError(f"Redis is unreachable during {what}: {exc}")
    return EngineError(f"Redis error during {what}: {exc}")


class Listener(Protocol):
    """The pub/sub side: subscribe once, then read messages until an error."""

    async def open(self, channels: Sequence[str]) -> None: ...

    async def get_message(self, wait: float) -> Mapping[str, Any] | None: ...

    async def aclose(self) -> None: ...


class PlainListener:
    """SUBSCRIBE on one connection (one Redis, or the master found through Sentinel)."""

    def __init__(self, client: Redis) -> None:
        self.pubsub: PubSub = client.pubsub(ignore_subscribe_messages=True)

    async def open(self, channels: Sequence[str]) -> None:
        await self.pubsub.subscribe(*channels)

    async def get_message(self, wait: float) -> Mapping[str, Any] | None:
        message: Mapping[str, Any] | None = await self.pubsub.get_message(timeout=wait)
        return message

    async def aclose(self) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]


class TopologyChanged(rx.ConnectionError):
    """A shard channel moved to another master: subscribe again from scratch."""


class ShardedListener:
    """SSUBSCRIBE on a Redis Cluster: one connection per master owning our channels.

    Channels are grouped by slot (one SSUBSCRIBE per slot, as Redis requires) and by
    the master owning the slot. Any sign that the layout changed ends the listener
    with an error, and the engine subscribes again from a fresh slot map:

    * a connection fails (a master died: its replica takes over within the cluster's
      node timeout);
    * Redis itself unsubscribes us (``sunsubscribe`` after a slot moved away, or after
      a master was demoted);
    * the command client learned of a new owner for one of our slots (MOVED).
    """

    #: Seconds between comparisons of our subscriptions with the client's slot map.
    CHECK_EVERY = 1.0

    def __init__(self, cluster: RedisCluster, kwargs: Mapping[str, Any], confirm: float) -> None:
        self.cluster = cluster
        self.kwargs = dict(kwargs)
        self.confirm = confirm
        self.owners: dict[str, str] = {}
        self.clients: list[Redis] = []
        self.pubsubs: list[PubSub] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.queue: asyncio.Queue[Mapping[str, Any] | BaseException] = asyncio.Queue()
        self.checked = time.monotonic()

    async def open(self, channels: Sequence[str]) -> None:
        await self.cluster.nodes_manager.initialize()
        groups: dict[str, tuple[ClusterNode, dict[int, list[str]]]] = {}
        for channel in channels:
            node = self.cluster.get_node_from_key(channel)
            if node is None:
                raise rx.SlotNotCoveredError(f"no master owns {channel}")
            self.owners[channel] = node.name
            slots = groups.setdefault(node.name, (node, {}))[1]
            slots.setdefault(key_slot(channel.encode()), []).append(channel)
        for node, slots in groups.values():
            pool = ConnectionPool(
                host=node.host, port=int(node.port), max_connections=2, **self.kwargs
            )
            client = Redis.from_pool(pool)
            self.clients.append(client)
            pubsub = client.pubsub()
            self.pubsubs.append(pubsub)
            for names in slots.values():
                await pubsub.ssubscribe(*names)
            await self._confirmed(pubsub, sum(len(names) for names in slots.values()))
        for pubsub in self.pubsubs:
            self.tasks.append(asyncio.ensure_future(self._read(pubsub)))

    async def _confirmed(self, pubsub: PubSub, count: int) -> None:
        """Wait until the node has confirmed every SSUBSCRIBE (so no notification is lost)."""
        deadline = time.monotonic() + self.confirm
        while count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise rx.TimeoutError("SSUBSCRIBE was not confirmed in time")
            message = await pubsub.get_message(timeout=left)
            if message is None:
                continue
            if message["type"] == "ssubscribe":
                count -= 1
            else:
                self.queue.put_nowait(message)

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    continue
                if message["type"] == "sunsubscribe":
                    raise TopologyChanged("Redis moved a shard channel away from this master")
                self.queue.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.queue.put_nowait(exc)

    def _moved(self) -> bool:
        for channel, owner in self.owners.items():
            node = self.cluster.get_node_from_key(channel)
            if node is None or node.name != owner:
                return True
        return False

    async def get_message(self, wait: float) -> Mapping[str, Any] | None:
        if time.monotonic() - self.checked >= self.CHECK_EVERY:
            self.checked = time.monotonic()
            if self._moved():
                raise TopologyChanged("the slot map changed")
        try:
            item = await asyncio.wait_for(self.queue.get(), min(wait, self.CHECK_EVERY))
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        for pubsub in self.pubsubs:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.aclose()


class RedisConnection:
    """The command client, the listener and script calls with the retry policy."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.mode = options.mode
        self.scripts: dict[str, Script] = load_all(sharded=self.mode == "cluster")
        self._gate: asyncio.Semaphore | None = None
        self._cluster: RedisCluster | None = None
        self._sentinel: Sentinel | None = None
        self._pools: list[ConnectionPool] = []
        self.client: Client
        if self.mode == "cluster":
            self._cluster = self._make_cluster(options)
            self.client = self._cluster
            self._gate = asyncio.Semaphore(options.pool_size)
        elif self.mode == "sentinel":
            self._sentinel = self._make_sentinel(options)
            self.client = self._sentinel.master_for(
                str(options.service_name),
                redis_class=Redis,
                connection_pool_class=SentinelConnectionPool,
                max_connections=options.pool_size,
                **_socket_kwargs(options, pubsub=False),
            )
            self.listener_client = self._sentinel.master_for(
                str(options.service_name),
                redis_class=Redis,
                connection_pool_class=SentinelConnectionPool,
                max_connections=2,
                **_socket_kwargs(options, pubsub=True),
            )
            self._gate = asyncio.Semaphore(options.pool_size)
        else:
            pool = BlockingConnectionPool(
                max_connections=options.pool_size,
                timeout=options.pool_timeout,
                **connection_kwargs(options),
            )
            listener_pool = ConnectionPool(
                max_connections=2, **connection_kwargs(options, pubsub=True)
            )
            self._pools = [pool, listener_pool]
            self.pool = pool
            self.listener_pool = listener_pool
            self.client = Redis(connection_pool=pool)
            self.listener_client = Redis(connection_pool=listener_pool)

    @staticmethod
    def _make_cluster(options: RedisOptions) -> RedisCluster:
        kwargs = _socket_kwargs(options, pubsub=False)
        if options.ssl.enabled:
            kwargs.update(ssl=True, **_ssl_kwargs(options))
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in options.addresses("cluster")],
            max_connections=options.pool_size,
            # Our retries only; MOVED and ASK are still followed inside each call.
            **kwargs,
        )

    @staticmethod
    def _make_sentinel(options: RedisOptions) -> Sentinel:
        sentinel_kwargs: dict[str, Any] = {
            "socket_connect_timeout": options.connect_timeout,
            "socket_timeout": max(options.read_timeout, options.write_timeout),
            "username": options.sentinel_username,
            "password": options.sentinel_password,
            "retry": Retry(NoBackoff(), 0),
        }
        data_kwargs: dict[str, Any] = {"db": options.database}
        if options.ssl.enabled:
            sentinel_kwargs.update(ssl=True, **_ssl_kwargs(options))
            data_kwargs["connection_class"] = SentinelManagedSSLConnection
            data_kwargs.update(_ssl_kwargs(options))
        else:
            data_kwargs["connection_class"] = SentinelManagedConnection
        return Sentinel(  # type: ignore[no-untyped-call]
            options.addresses("sentinels"), sentinel_kwargs=sentinel_kwargs, **data_kwargs
        )

    def listener(self) -> Listener:
        """A fresh pub/sub listener (the engine makes a new one after each failure)."""
        if self._cluster is not None:
            kwargs = connection_kwargs(self.options, pubsub=True)
            for name in ("host", "port"):
                kwargs.pop(name)
            confirm = self.options.connect_timeout + self.options.read_timeout
            return ShardedListener(self._cluster, kwargs, confirm)
        return PlainListener(self.listener_client)

    def _topology_suspect(self) -> None:
        """After a failure on a Cluster, read the slot map again before the next call.

        redis-py does this itself for single commands but not after a failed pipeline.
        """
        if self._cluster is not None:
            self._cluster._initialize = True

    async def _acquire(self) -> None:
        assert self._gate is not None
        try:
            await asyncio.wait_for(self._gate.acquire(), self.options.pool_timeout)
        except TimeoutError:
            raise rx.ConnectionError(
                f"no free Redis connection within pool_timeout ({self.options.pool_timeout:g} s)"
            ) from None

    async def call(self, what: str, fn: Callable[[Client], Awaitable[T]], *, idempotent: bool) -> T:
        """Run ``fn(client)``, retrying transient failures only when ``idempotent``."""
        attempts = max(1, self.options.max_retries) if idempotent else 1
        for attempt in range(attempts):
            try:
                if self._gate is None:
                    return await fn(self.client)
                await self._acquire()
                try:
                    return await fn(self.client)
                finally:
                    self._gate.release()
            except rx.AuthenticationError as exc:
                raise translate(exc, what) from exc
            except TRANSIENT as exc:
                self._topology_suspect()
                if attempt + 1 >= attempts:
                    raise translate(exc, what) from exc
                await asyncio.sleep(self.options.retry_delay * 2**attempt)
            except rx.RedisError as exc:
                raise translate(exc, what) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def load_scripts(self) -> None:
        async def load(client: Client) -> None:
            if self._cluster is not None:
                # SCRIPT LOAD goes to every master; a pipeline would pick one node.
                for script in self.scripts.values():
                    await client.script_load(script.source)
                return
            pipe = client.pipeline(transaction=False)
            for script in self.scripts.values():
                pipe.script_load(script.source)
            await pipe.execute()

        await self.call("SCRIPT LOAD", load, idempotent=True)

    async def _load(self, client: Client, name: str) -> None:
        await client.script_load(self.scripts[name].source)

    async def evalsha(
        self, name: str, keys: Sequence[str], args: Sequence[Arg], *, idempotent: bool
    ) -> Any:
        """One script call; a NOSCRIPT answer loads the script and runs it once more."""
        script = self.scripts[name]

        async def run(client: Client) -> Any:
            try:
                return await client.evalsha(script.sha, len(keys), *keys, *args)
            except rx.NoScriptError:
                await self._load(client, name)
                return await client.evalsha(script.sha, len(keys), *keys, *args)

        return await self.call(name, run, idempotent=idempotent)

    async def evalsha_many(
        self,
        name: str,
        calls: Sequence[tuple[Sequence[str], Sequence[Arg]]],
        *,
        idempotent: bool,
        partial: bool = False,
    ) -> list[Any]:
        """Several calls of one script (one per partition) in one pipelined round trip.

        On a Cluster the calls are grouped per master and the groups are sent in
        parallel: one round trip per master involved.

        With ``partial`` a failure does not raise: its :class:`EngineError` takes the
        place of the result of every call it concerns. On a Cluster only the calls on
        the failing master are concerned; the others keep their results.
        """
        if partial and self._cluster is not None and len(calls) > 1:
            return await self._evalsha_per_master(name, calls, idempotent)
        try:
            return await self._evalsha_pipelined(name, calls, idempotent)
        except EngineError as exc:
            if not partial:
                raise
            return [exc] * len(calls)

    async def _evalsha_pipelined(
        self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Arg]]], idempotent: bool
    ) -> list[Any]:
        if len(calls) == 1:
            keys, args = calls[0]
            return [await self.evalsha(name, keys, args, idempotent=idempotent)]
        script = self.scripts[name]

        async def run(client: Client) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                # (ClusterPipeline blocks its evalsha() helper, not the command itself.)
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            for index, result in enumerate(results):
                if isinstance(result, rx.NoScriptError):
                    # It did not run: load it and run just that call again.
                    await self._load(client, name)
                    keys, args = calls[index]
                    results[index] = await client.evalsha(script.sha, len(keys), *keys, *args)
                elif isinstance(result, BaseException):
                    raise result
            return results

        return await self.call(name, run, idempotent=idempotent)

    async def _evalsha_per_master(
        self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Arg]]], idempotent: bool
    ) -> list[Any]:
        async def group(client: RedisCluster) -> list[list[int]]:
            await client.initialize()
            masters: dict[str, list[int]] = {}
            for index, (keys, _) in enumerate(calls):
                node = client.get_node_from_key(keys[0])
                masters.setdefault(node.name if node else "", []).append(index)
            return list(masters.values())

        try:
            groups = await self.call("slot map", group, idempotent=True)
        except EngineError as exc:
            return [exc] * len(calls)
        parts = await asyncio.gather(
            *(
                self._evalsha_pipelined(name, [calls[i] for i in indices], idempotent)
                for indices in groups
            ),
            return_exceptions=True,
        )
        results: list[Any] = [None] * len(calls)
        for indices, part in zip(groups, parts, strict=True):
            if isinstance(part, BaseException):
                error = part if isinstance(part, EngineError) else translate(part, name)
                for index in indices:
                    results[index] = error
            else:
                for index, result in zip(indices, part, strict=True):
                    results[index] = result
        return results

    async def close(self) -> None:
        if self._cluster is not None:
            # aclose() skips a client marked for a refresh: unmark it so that every
            # node connection is closed.
            self._cluster._initialize = False
            await self._cluster.aclose()
            return
        await self.client.aclose()
        await self.listener_client.aclose()
        for pool in self._pools:
            await pool.disconnect()
        if self._sentinel is not None:
            await self._sentinel.aclose()

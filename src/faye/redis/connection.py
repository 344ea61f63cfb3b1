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
``retry_delay * 2**n`` between them). A publish is retried only through a stall
(``stall_timeout``), and only because each publish call carries a token its script
checks first: had Redis run it before the connection failed, a retry would otherwise
queue the message twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis import exceptions as rx
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from faye.engine import EngineError
from faye.redis.health import RedisHealth
from faye.redis.listeners import Listener, PushListener, ShardedListener
from faye.redis.log import EngineLog
from faye.redis.options import RedisOptions
from faye.redis.packing import (
    PackedConnection,
    PackedSentinelConnection,
    PackedSentinelSSLConnection,
    PackedSSLConnection,
)
from faye.redis.pipe import Arg as Arg
from faye.redis.pipe import CallPipe, Endpoint
from faye.redis.scripts import Script, library

T = TypeVar("T")

#: What every client type the engine uses answers to (Redis or RedisCluster).
RedisClient = Any

#: The longest pause between two attempts of a call waiting out a stall (seconds).
STALL_PAUSE = 0.25

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


class _Cluster(RedisCluster):
    """redis-py finds the keys of an FCALL by asking a node (COMMAND GETKEYS): one more
    round trip before every call. Like EVALSHA's, they follow the key count."""

    async def _determine_slot(self, command: str, *args: Any) -> int:
        if command.upper() == "FCALL" and len(args) >= 3:
            keys = args[2 : 2 + int(args[1])]
            slots = {self.keyslot(key) for key in keys}
            if len(slots) == 1:
                return slots.pop()
        return await super()._determine_slot(command, *args)


def _socket_kwargs(options: RedisOptions, *, pubsub: bool, lanes: bool = False) -> dict[str, Any]:
    # redis-py has one socket timeout for reads and writes. The lanes' connections wait
    # out a stall (stall_timeout) rather than time out and leave the answer unknown.
    timeout = options.answer_timeout
    if lanes:
        timeout = max(timeout, options.stall_timeout)
    kwargs: dict[str, Any] = {
        "username": options.username,
        "password": options.password,
        "socket_connect_timeout": options.connect_timeout,
        "socket_timeout": None if pubsub else timeout,
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


def connection_kwargs(
    options: RedisOptions, *, pubsub: bool = False, lanes: bool = False
) -> dict[str, Any]:
    """redis-py connection arguments for one Redis (shared by the pools)."""
    kwargs = _socket_kwargs(options, pubsub=pubsub, lanes=lanes)
    kwargs.update(host=options.host, port=options.port, db=options.database)
    if options.ssl.enabled:
        kwargs["connection_class"] = PackedSSLConnection
        kwargs.update(_ssl_kwargs(options))
    else:
        kwargs["connection_class"] = PackedConnection
    return kwargs


def check_tls_files(options: RedisOptions) -> None:
    """Fail at start-up, naming the option and the file, on a certificate, key or CA
    file that is missing, unreadable or not what it should be (PEM)."""
    tls = options.ssl
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, name)
        if path is None:
            continue
        try:
            with open(path, "rb") as file:
                file.read(1)
        except OSError as exc:
            raise ValueError(f"ssl.{name}: cannot read {path}: {exc.strerror or exc}") from None
    context = ssl.create_default_context()
    if tls.ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.ca_file)
        except ssl.SSLError as exc:
            raise ValueError(
                f"ssl.ca_file: {tls.ca_file} holds no CA certificate in PEM ({exc.reason})"
            ) from None
    if tls.cert_file is not None:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except ssl.SSLError as exc:
            raise ValueError(
                f"ssl.cert_file, ssl.key_file: {tls.cert_file} and {tls.key_file} are not a "
                f"certificate and its key in PEM ({exc.reason})"
            ) from None


_SSL_REASON = re.compile(r"\[SSL: [A-Z0-9_]+\] [^(]*")


def tls_problem(exc: BaseException, options: RedisOptions) -> str | None:
    """A TLS handshake Redis or we refused, as one line naming the option to look at;
    None if ``exc`` is no TLS failure. (redis-py reports them as connection errors.)"""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(e) for e in chain)
    if not any(isinstance(e, ssl.SSLError) for e in chain) and "[SSL" not in text:
        return None
    found = _SSL_REASON.search(text)
    reason = found.group(0).strip() if found else text
    where = f"Redis at {options.host}:{options.port}" if options.mode == "single" else "Redis"
    tls = options.ssl
    if "CERTIFICATE_VERIFY_FAILED" in text:
        ca = tls.ca_file or "not set: the system's CAs"
        return f"ssl.ca_file ({ca}) does not verify the certificate of {where}: {reason}"
    if "CERTIFICATE_REQUIRED" in text or "certificate required" in text:
        if tls.cert_file is None:
            return (
                f"{where} requires a client certificate: set ssl.cert_file and ssl.key_file "
                f"({reason})"
            )
        return f"{where} refused the client certificate ssl.cert_file ({tls.cert_file}): {reason}"
    return f"TLS with {where} failed (check ssl.ca_file, ssl.cert_file, ssl.key_file): {reason}"


def tls_context(options: RedisOptions) -> ssl.SSLContext:
    """The TLS settings redis-py's connections get from the ``ssl`` options."""
    tls = options.ssl
    context = ssl.create_default_context(cafile=tls.ca_file)
    context.check_hostname = tls.check_hostname
    if tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


async def probe_tls(options: RedisOptions) -> str | None:
    """Shake hands with one Redis as the engine would and wait briefly for its verdict:
    the TLS mistake found (see :func:`tls_problem`), or None.

    Nothing is sent after the handshake: a server refusing our certificate (TLS 1.3
    says so after the handshake) then closes cleanly and its alert is read, where a
    pending command would make it reset the connection and lose the alert.
    """
    context = tls_context(options)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(options.host, options.port, ssl=context),
            options.connect_timeout,
        )
    except (OSError, TimeoutError) as exc:
        return tls_problem(exc, options)
    try:
        await asyncio.wait_for(reader.read(1), options.connect_timeout)
    except (OSError, TimeoutError) as exc:
        return tls_problem(exc, options)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return None


def reply_text(value: Any) -> str:
    """A name, id or channel from a Redis reply: bytes through hiredis, str otherwise."""
    return value.decode() if isinstance(value, bytes) else str(value)


def translate(exc: BaseException, what: str) -> EngineError:
    if isinstance(exc, rx.AuthenticationError):
        return EngineError(f"Redis refused our credentials during {what}: {exc}")
    if isinstance(exc, rx.TimeoutError | asyncio.TimeoutError):
        return EngineError(f"Redis did not answer in time during {what}")
    if isinstance(exc, TRANSIENT):
        return EngineError(f"Redis is unreachable during {what}: {exc}")
    return EngineError(f"Redis error during {what}: {exc}")


class RedisConnection:
    """The command client, the listener and script calls with the retry policy."""

    def __init__(
        self,
        options: RedisOptions,
        log: EngineLog | None = None,
        counts: Counter[str] | None = None,
    ) -> None:
        self.options = options
        #: redis_round_trips and redis_errors, usually the server's monitor's counters.
        self.counts: Counter[str] = Counter() if counts is None else counts
        self.log = log or EngineLog(options.log_threshold)
        self.health = RedisHealth(self.log)
        self.mode = options.mode
        if options.ssl.enabled:
            check_tls_files(options)
        # A layout left to the namespace is known once the engine resolved it (see
        # RedisEngine.resolve); until then only plain commands run.
        self.library = library(sharded=self.mode == "cluster", layout=options.layout or 1)
        self.scripts: dict[str, Script] = self.library.scripts
        #: FCALL of the library's functions, or EVALSHA of the scripts where Redis has
        #: no functions; None until the code is first loaded.
        self.functions: bool | None = None
        self._gate: asyncio.Semaphore | None = None
        self._cluster: RedisCluster | None = None
        self._sentinel: Sentinel | None = None
        self._pools: list[ConnectionPool] = []
        self.client: RedisClient
        #: The publish and delivery lanes' client: the same Redis, with a socket timeout
        #: of stall_timeout, so that a lane's batch waits out a stall and gets its answer
        #: (a drain whose answer is lost makes the next one resend, and duplicates).
        self.lanes_client: RedisClient
        if self.mode == "cluster":
            self._cluster = self._make_cluster(options)
            self.client = self._cluster
            # One client on a Cluster: its calls time out after read_timeout.
            self.lanes_client = self._cluster
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
            self.lanes_client = self._sentinel.master_for(
                str(options.service_name),
                redis_class=Redis,
                connection_pool_class=SentinelConnectionPool,
                max_connections=options.pool_size,
                **_socket_kwargs(options, pubsub=False, lanes=True),
            )
            self._gate = asyncio.Semaphore(options.pool_size)
        else:
            pool = BlockingConnectionPool(
                max_connections=options.pool_size,
                timeout=options.pool_timeout,
                **connection_kwargs(options),
            )
            lanes_pool = BlockingConnectionPool(
                max_connections=options.pool_size,
                timeout=options.pool_timeout,
                **connection_kwargs(options, lanes=True),
            )
            self._pools = [pool, lanes_pool]
            self.pool = pool
            self.client = Redis(connection_pool=pool)
            self.lanes_pool = lanes_pool
            self.lanes_client = Redis(connection_pool=lanes_pool)
        #: The client calls' own connection and the listener's (faye/redis/pipe.py),
        #: off a Cluster.
        self.endpoint: Endpoint | None = None
        self.pipe: CallPipe | None = None
        if self.mode != "cluster":
            self.endpoint = self._endpoint(options)
            name = f"faye-{options.namespace}"
            self.pipe = CallPipe(self.endpoint, name=name, timeout=options.answer_timeout)

    def _endpoint(self, options: RedisOptions) -> Endpoint:
        """Where the calls' connection and the listener connect (off a Cluster)."""
        sentinel, service = self._sentinel, str(options.service_name)

        async def address() -> tuple[str, int]:
            if sentinel is None:
                return options.host, options.port
            host, port = await sentinel.discover_master(service)
            return str(host), int(port)

        setup: list[tuple[Arg, ...]] = []
        if options.password is not None:
            user = () if options.username is None else (options.username,)
            setup.append(("AUTH", *user, options.password))
        if options.database:
            setup.append(("SELECT", options.database))
        tls = tls_context(options) if options.ssl.enabled else None
        return Endpoint(address, options.connect_timeout, setup, tls)

    @staticmethod
    def _make_cluster(options: RedisOptions) -> RedisCluster:
        kwargs = _socket_kwargs(options, pubsub=False)
        if options.ssl.enabled:
            kwargs.update(ssl=True, **_ssl_kwargs(options))
        packed = PackedSSLConnection if options.ssl.enabled else PackedConnection
        cluster = _Cluster(
            startup_nodes=[
                ClusterNode(host, port, connection_class=packed)
                for host, port in options.addresses("cluster")
            ],
            max_connections=options.pool_size,
            # Our retries only; MOVED and ASK are still followed inside each call.
            **kwargs,
        )
        # RedisCluster takes no connection class: the nodes it finds are made with this.
        cluster.nodes_manager.connection_kwargs["connection_class"] = packed
        return cluster

    @staticmethod
    def _make_sentinel(options: RedisOptions) -> Sentinel:
        sentinel_kwargs: dict[str, Any] = {
            "socket_connect_timeout": options.connect_timeout,
            "socket_timeout": options.answer_timeout,
            "username": options.sentinel_username,
            "password": options.sentinel_password,
            "retry": Retry(NoBackoff(), 0),
        }
        data_kwargs: dict[str, Any] = {"db": options.database}
        if options.ssl.enabled:
            sentinel_kwargs.update(ssl=True, **_ssl_kwargs(options))
            data_kwargs["connection_class"] = PackedSentinelSSLConnection
            data_kwargs.update(_ssl_kwargs(options))
        else:
            data_kwargs["connection_class"] = PackedSentinelConnection
        return Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
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
        assert self.endpoint is not None
        # A stall shorter than stall_timeout is waited out, not taken for a lost Redis.
        timeout = max(self.options.read_timeout, self.options.stall_timeout)
        name = f"faye-{self.options.namespace}-listener"
        return PushListener(self.endpoint, name=name, timeout=timeout)

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

    async def call(
        self,
        what: str,
        fn: Callable[[RedisClient], Awaitable[T]],
        *,
        idempotent: bool,
        until: float | None = None,
        lanes: bool = False,
    ) -> T:
        """Run ``fn(client)``, retrying transient failures only when ``idempotent``.

        With ``until`` (a ``loop.time()``), transient failures are retried until then
        instead, at most ``STALL_PAUSE`` apart: the caller made the call safe to repeat
        and would rather wait out a stall than fail.
        """
        attempts = max(1, self.options.max_retries) if idempotent else 1
        loop = asyncio.get_running_loop()
        client = self.lanes_client if lanes else self.client
        attempt = 0
        counts = self.counts
        while True:
            started = time.monotonic()
            counts["redis_round_trips"] += 1
            try:
                if self._gate is None:
                    result = await fn(client)
                else:
                    await self._acquire()
                    try:
                        result = await fn(client)
                    finally:
                        self._gate.release()
                self.health.last_ok = started
                if not self.health.up:
                    self.health.answered(started)
                return result
            except rx.AuthenticationError as exc:
                counts["redis_errors"] += 1
                raise translate(exc, what) from exc
            except TRANSIENT as exc:
                counts["redis_errors"] += 1
                self.health.failed(what, exc)
                self._topology_suspect()
                if until is not None:
                    pause = min(max(self.options.retry_delay, 0.05) * 2**attempt, STALL_PAUSE)
                    if loop.time() + pause >= until:
                        raise translate(exc, what) from exc
                elif attempt + 1 >= attempts:
                    raise translate(exc, what) from exc
                else:
                    pause = self.options.retry_delay * 2**attempt
                attempt += 1
                await asyncio.sleep(pause)
            except rx.RedisError as exc:
                counts["redis_errors"] += 1
                raise translate(exc, what) from exc

    async def load_scripts(self) -> None:
        await self.call("loading the Lua code", self.load_code, idempotent=True)

    async def load_code(self, client: RedisClient) -> None:
        """Load the function library (on every master of a Cluster), or the scripts
        where Redis has no functions (6.2) or an ACL refuses FUNCTION LOAD."""
        if self.functions is not False:
            try:
                await client.function_load(self.library.source, replace=True)
            except rx.NoPermissionError as exc:
                self._use_scripts(f"FUNCTION LOAD refused: {exc}")
            except rx.ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                self._use_scripts("this Redis has no functions (before 7.0)")
            else:
                if self.functions is None:
                    self.log.info("Lua code: function library %s (FCALL)", self.library.name)
                self.functions = True
                return
        if self._cluster is not None:
            # SCRIPT LOAD goes to every master; a pipeline would pick one node.
            for script in self.scripts.values():
                await client.script_load(script.source)
            return
        pipe = client.pipeline(transaction=False)
        for script in self.scripts.values():
            pipe.script_load(script.source)
        await pipe.execute()

    def _use_scripts(self, why: str) -> None:
        self.log.info("Lua code: scripts (EVALSHA), %s", why)
        self.functions = False

    def script_command(
        self, name: str, keys: Sequence[str], args: Sequence[Arg]
    ) -> tuple[Arg, ...]:
        script = self.scripts[name]
        head = ("FCALL", script.function) if self.functions else ("EVALSHA", script.sha)
        return (*head, len(keys), *keys, *args)

    @staticmethod
    def missing(result: object) -> bool:
        """Whether Redis answered that the function or script is missing (it did not
        run: after loading, the call may simply be sent again)."""
        return isinstance(result, rx.NoScriptError) or (
            isinstance(result, rx.ResponseError) and "function not found" in str(result).lower()
        )

    async def run_script(
        self,
        name: str,
        keys: Sequence[str],
        args: Sequence[Arg],
        *,
        idempotent: bool,
        until: float | None = None,
        lanes: bool = False,
    ) -> Any:
        """One call of a script (FCALL or EVALSHA); if it is missing, load and call again."""

        async def run(client: RedisClient) -> Any:
            if self.functions is None:
                await self.load_code(client)  # not loaded at start (Redis was down)
            command = self.script_command(name, keys, args)
            try:
                return await client.execute_command(*command)
            except rx.ResponseError as exc:
                if not self.missing(exc):
                    raise
                await self.load_code(client)
                return await client.execute_command(*self.script_command(name, keys, args))

        return await self.call(name, run, idempotent=idempotent, until=until, lanes=lanes)

    async def run_scripts(
        self,
        name: str,
        calls: Sequence[tuple[Sequence[str], Sequence[Arg]]],
        *,
        idempotent: bool,
        partial: bool = False,
        grouped: bool = False,
        until: float | None = None,
        lanes: bool = False,
    ) -> list[Any]:
        """Several calls of one script (one per partition) in one pipelined round trip.

        On a Cluster the calls are grouped per master and the groups are sent in
        parallel: one round trip per master involved. ``grouped`` says the caller
        grouped them already (one call per master, see :meth:`group_by_master`): each
        is then sent on its own, side by side, without reading the slot map again.

        With ``partial`` a failure does not raise: its :class:`EngineError` takes the
        place of the result of every call it concerns. On a Cluster only the calls on
        the failing master are concerned; the others keep their results. ``until``:
        see :meth:`call`.
        """
        if partial and self._cluster is not None and len(calls) > 1:
            groups = [[i] for i in range(len(calls))] if grouped else None
            return await self._run_per_master(name, calls, idempotent, groups, until)
        try:
            return await self._run_pipelined(name, calls, idempotent, until, lanes)
        except EngineError as exc:
            if not partial:
                raise
            return [exc] * len(calls)

    async def _run_pipelined(
        self,
        name: str,
        calls: Sequence[tuple[Sequence[str], Sequence[Arg]]],
        idempotent: bool,
        until: float | None = None,
        lanes: bool = False,
    ) -> list[Any]:
        if len(calls) == 1:
            keys, args = calls[0]
            return [
                await self.run_script(
                    name, keys, args, idempotent=idempotent, until=until, lanes=lanes
                )
            ]

        async def run(client: RedisClient) -> list[Any]:
            if self.functions is None:
                await self.load_code(client)
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.execute_command(*self.script_command(name, keys, args))
            results: list[Any] = await pipe.execute(raise_on_error=False)
            loaded = False
            for index, result in enumerate(results):
                if self.missing(result):
                    # It did not run: load the code once and run just that call again.
                    if not loaded:
                        await self.load_code(client)
                        loaded = True
                    keys, args = calls[index]
                    results[index] = await client.execute_command(
                        *self.script_command(name, keys, args)
                    )
                elif isinstance(result, BaseException):
                    raise result
            return results

        return await self.call(name, run, idempotent=idempotent, until=until, lanes=lanes)

    async def group_by_master(self, keys: Sequence[str]) -> list[list[int]]:
        """Indices of ``keys`` grouped by the master serving them, as the slot map last
        read says (no round trip once it is known); one group off Cluster."""
        if self._cluster is None:
            return [list(range(len(keys)))]

        async def group(client: RedisCluster) -> list[list[int]]:
            await client.initialize()
            masters: dict[str, list[int]] = {}
            for index, key in enumerate(keys):
                node = client.get_node_from_key(key)
                masters.setdefault(node.name if node else "", []).append(index)
            return list(masters.values())

        return await self.call("slot map", group, idempotent=True)

    async def _run_per_master(
        self,
        name: str,
        calls: Sequence[tuple[Sequence[str], Sequence[Arg]]],
        idempotent: bool,
        groups: list[list[int]] | None,
        until: float | None,
    ) -> list[Any]:
        if groups is None:
            try:
                groups = await self.group_by_master([keys[0] for keys, _ in calls])
            except EngineError as exc:
                return [exc] * len(calls)
        parts = await asyncio.gather(
            *(
                self._run_pipelined(name, [calls[i] for i in indices], idempotent, until)
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
        if self.pipe is not None:
            self.pipe.close()
        await self.client.aclose()
        await self.lanes_client.aclose()
        for pool in self._pools:
            await pool.disconnect()
        if self._sentinel is not None:
            await self._sentinel.aclose()

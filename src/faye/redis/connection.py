"""redis-py asyncio clients, script calls, retries and error translation.

Two pools per engine: a bounded command pool (``pool_size`` connections, waiting up
to ``pool_timeout`` for one) and a separate one for the pub/sub listener, whose
connection waits for messages without a read timeout.

redis-py's own retries are switched off: only operations the engine marks
idempotent are retried here (``max_retries`` attempts in all, sleeping
``retry_delay * 2**n`` between them). A publish is never retried: had Redis run it
before the connection failed, a retry would queue the message twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis import exceptions as rx
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from faye.engine import EngineError
from faye.redis.options import RedisOptions
from faye.redis.scripts import Script, load_all

T = TypeVar("T")

Arg = str | bytes | int | float

logger = logging.getLogger("faye.redis")

#: Errors after which the same idempotent command may simply be sent again.
TRANSIENT: tuple[type[BaseException], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.BusyLoadingError,
    OSError,
    asyncio.TimeoutError,
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


def connection_kwargs(options: RedisOptions, *, pubsub: bool = False) -> dict[str, Any]:
    """redis-py connection arguments for the options (shared by both pools)."""
    kwargs: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "db": options.database,
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
    if options.ssl.enabled:
        kwargs["connection_class"] = SSLConnection
        kwargs["ssl_certfile"] = options.ssl.cert_file
        kwargs["ssl_keyfile"] = options.ssl.key_file
        kwargs["ssl_ca_certs"] = options.ssl.ca_file
        kwargs["ssl_cert_reqs"] = "required"
        kwargs["ssl_check_hostname"] = options.ssl.check_hostname
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


class RedisConnection:
    """The command client, the listener client and script calls with the retry policy."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.scripts: dict[str, Script] = load_all()
        self.pool = BlockingConnectionPool(
            max_connections=options.pool_size,
            timeout=options.pool_timeout,
            **connection_kwargs(options),
        )
        self.client = Redis(connection_pool=self.pool)
        self.listener_pool = ConnectionPool(
            max_connections=2, **connection_kwargs(options, pubsub=True)
        )
        self.listener_client = Redis(connection_pool=self.listener_pool)

    async def call(self, what: str, fn: Callable[[Redis], Awaitable[T]], *, idempotent: bool) -> T:
        """Run ``fn(client)``, retrying transient failures only when ``idempotent``."""
        attempts = max(1, self.options.max_retries) if idempotent else 1
        for attempt in range(attempts):
            try:
                return await fn(self.client)
            except rx.AuthenticationError as exc:
                raise translate(exc, what) from exc
            except TRANSIENT as exc:
                if attempt + 1 >= attempts:
                    raise translate(exc, what) from exc
                await asyncio.sleep(self.options.retry_delay * 2**attempt)
            except rx.RedisError as exc:
                raise translate(exc, what) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def load_scripts(self) -> None:
        async def load(client: Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for script in self.scripts.values():
                pipe.script_load(script.source)
            await pipe.execute()

        await self.call("SCRIPT LOAD", load, idempotent=True)

    async def _load(self, client: Redis, name: str) -> None:
        await client.script_load(self.scripts[name].source)

    async def evalsha(
        self, name: str, keys: Sequence[str], args: Sequence[Arg], *, idempotent: bool
    ) -> Any:
        """One script call; a NOSCRIPT answer loads the script and runs it once more."""
        script = self.scripts[name]

        async def run(client: Redis) -> Any:
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
    ) -> list[Any]:
        """Several calls of one script (one per partition) in one pipelined round trip."""
        if len(calls) == 1:
            keys, args = calls[0]
            return [await self.evalsha(name, keys, args, idempotent=idempotent)]
        script = self.scripts[name]

        async def run(client: Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
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

    async def close(self) -> None:
        await self.client.aclose()
        await self.listener_client.aclose()
        await self.pool.disconnect()
        await self.listener_pool.disconnect()

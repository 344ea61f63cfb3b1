"""Client calls made in the same event-loop turn share one round trip.

A busy server makes many small calls at once (each handshake, subscribe, connect and
disconnect is one). They go out together on the calls' own connection
(:class:`~faye.redis.pipe.CallPipe`), and the replies of one group wake their callers
in the same turn, so their next calls meet again: under load the calls travel in
groups without anyone waiting for a group to fill. A call alone goes out on its own.

Failures keep each call's own retry policy: when the shared round trip fails, the
calls that may be repeated are sent again one by one through
:meth:`RedisConnection.call` (redis-py), which retries them; the others get the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faye.engine import EngineError
from faye.redis.connection import Arg, RedisClient, RedisConnection, translate


@dataclass(slots=True)
class _Call:
    what: str
    #: The script's name, or None for a plain command.
    script: str | None
    #: The command as it goes on the wire (a script's depends on how it is loaded).
    command: Callable[[], tuple[Arg, ...]]
    #: The same call made on its own, with :meth:`RedisConnection.call`'s retries.
    alone: Callable[[], Awaitable[Any]]
    idempotent: bool
    #: Made when the call joins the queue.
    future: asyncio.Future[Any] = field(init=False)


class Batcher:
    """Groups the calls submitted in one loop turn into one pipeline.

    Off a Cluster only: a Cluster pipeline splits by slot anyway, so there every call
    goes out on its own.
    """

    def __init__(self, redis: RedisConnection) -> None:
        self.redis = redis
        self.enabled = redis.mode != "cluster"
        self._waiting: list[_Call] = []
        self._flushing = False
        self._sending: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Every call fails with this (the namespace runs the other layout).
        self.refusal: EngineError | None = None

    async def script(
        self, name: str, keys: Sequence[str], args: Sequence[Arg], *, idempotent: bool
    ) -> Any:
        """One call of a script, as :meth:`RedisConnection.run_script` makes it."""

        def alone() -> Awaitable[Any]:
            return self.redis.run_script(name, keys, args, idempotent=idempotent)

        def command() -> tuple[Arg, ...]:
            return self.redis.script_command(name, keys, args)

        return await self._call(_Call(name, name, command, alone, idempotent))

    async def command(self, what: str, *args: Arg, idempotent: bool) -> Any:
        """One plain command. Its reply as Redis gives it, or as redis-py parses it
        when it went out alone (a retry, or a Cluster): callers take either, as
        ``ZSCORE``'s bytes or float."""

        async def run(client: RedisClient) -> Any:
            return await client.execute_command(*args)

        def alone() -> Awaitable[Any]:
            return self.redis.call(what, run, idempotent=idempotent)

        return await self._call(_Call(what, None, lambda: args, alone, idempotent))

    async def _call(self, call: _Call) -> Any:
        if self.refusal is not None:
            raise self.refusal
        if not self.enabled:
            return await call.alone()
        if self._closed:
            raise EngineError("the Redis engine is closed")
        loop = asyncio.get_running_loop()
        call.future = loop.create_future()
        self._waiting.append(call)
        if not self._flushing:
            self._flushing = True
            # After the callbacks already queued for this turn: the callers that the
            # same reply woke submit theirs first.
            loop.call_soon(self._flush)
        return await call.future

    def _flush(self) -> None:
        self._flushing = False
        batch, self._waiting = self._waiting, []
        batch = [call for call in batch if not call.future.done()]  # callers gone
        if not batch:
            return
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            try:
                results = await self.redis.call(
                    batch[0].what, lambda client: self._pipeline(client, batch), idempotent=False
                )
            except EngineError as exc:
                # Sent again one by one where that is safe: each with its retries.
                await asyncio.gather(
                    *(self._alone(call) for call in batch if call.idempotent),
                    return_exceptions=True,
                )
                for call in batch:
                    if not call.idempotent:
                        _fail(call, exc)
                return
            # An error answered inline concerns its call alone (WRONGTYPE, say). Redis
            # loading its data is not answered inline: redis-py raises it for the whole
            # round trip, and it is retried above.
            for call, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    _fail(call, translate(result, call.what))
                elif not call.future.done():
                    call.future.set_result(result)
        except BaseException as exc:  # cancelled (the engine closing) or a bug
            error = EngineError(f"Redis call interrupted: {exc!r}")
            for call in batch:
                _fail(call, error)
            raise

    async def _alone(self, call: _Call) -> None:
        try:
            result = await call.alone()
        except Exception as exc:
            _fail(call, exc)
        else:
            if not call.future.done():
                call.future.set_result(result)

    async def _pipeline(self, client: RedisClient, batch: list[_Call]) -> list[Any]:
        redis = self.redis
        if redis.functions is None:
            await redis.load_code(client)
        assert redis.pipe is not None  # off a Cluster
        results = await redis.pipe.send([call.command() for call in batch])
        for index, (call, result) in enumerate(zip(batch, results, strict=True)):
            if call.script is not None and redis.missing(result):
                # Not run: load the code and send just this one again.
                await redis.load_code(client)
                (results[index],) = await redis.pipe.send([call.command()])
        return results

    def refuse(self, error: EngineError) -> None:
        """From now on every call fails with ``error``, those waiting included."""
        self.refusal = error
        self._fail_waiting(error)

    async def close(self, grace: float) -> None:
        """Fail what waits; give what is on the wire ``grace`` seconds, then cancel it
        (a call retrying through an outage must not hold the engine's close)."""
        self._closed = True
        self._fail_waiting(EngineError("the Redis engine is closed"))
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=grace)
        self.abort()

    def abort(self) -> None:
        """Fail what waits, and cancel what is on the wire (a crash, for fault tests)."""
        self._closed = True
        self._fail_waiting(EngineError("the Redis engine is closed"))
        for task in self._sending:
            task.cancel()

    def _fail_waiting(self, error: EngineError) -> None:
        waiting, self._waiting = self._waiting, []
        for call in waiting:
            _fail(call, error)


def _fail(call: _Call, error: BaseException) -> None:
    if not call.future.done():
        call.future.set_exception(error)

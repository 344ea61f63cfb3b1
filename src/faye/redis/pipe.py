"""One connection on which the engine's client calls are written back to back.

redis-py's asyncio client spends about 105 us of CPU on each awaited command (a pool
checkout, a retry wrapper, a timeout context and a parse call per reply), several times
what Redis spends running it. An engine client call written on this plain asyncio
protocol and read back through hiredis costs about 70 us alone and 21 us four at a time
(``python -m bench calls``). Handshakes, subscribes and disconnects are made of such
calls, so :class:`~faye.redis.batching.Batcher` sends them here, and the listener reads
its pub/sub messages here too (``PushListener``: about 1 us a message, against 13 for
redis-py's ``PubSub``); everything else (the lanes, Cluster, loading the code) stays on
redis-py.

Redis answers on one connection in the order it was written to, so the waiting groups
form a queue and each reply belongs to the group at its head. What this connection does
not do, its user does: it never retries (the Batcher sends a repeatable call again
through :meth:`RedisConnection.call` after a failure here) and it reconnects only when
the next group is sent.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import hiredis
import redis.exceptions as rx

#: One argument of a command, as redis-py and hiredis take it.
Arg = str | bytes | int | float

#: Errors Redis answers with that concern the connection, not the command: the group
#: fails as a whole and, where the server it reached cannot serve us, is disconnected.
_FAIL_GROUP: dict[str, type[rx.RedisError]] = {
    "LOADING": rx.BusyLoadingError,  # reloading its data after a restart
    "READONLY": rx.ConnectionError,  # a replica now: the master moved (Sentinel)
    "MASTERDOWN": rx.ConnectionError,
    "NOAUTH": rx.AuthenticationError,
    "WRONGPASS": rx.AuthenticationError,
}
#: What Redis pushes to a subscribed connection, as opposed to answering it.
_PUSHED = (b"message", b"pmessage", b"smessage")
_PER_COMMAND: dict[str, type[rx.ResponseError]] = {
    "NOSCRIPT": rx.NoScriptError,
    "NOPERM": rx.NoPermissionError,
}


class _Group:
    __slots__ = ("count", "deadline", "future", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int, deadline: float) -> None:
        self.future = future
        self.count = count
        self.deadline = deadline
        self.replies: list[Any] = []


class RedisProtocol(asyncio.Protocol):
    """One connection to Redis: groups of commands answered in order, and, once it
    subscribed, the messages Redis pushes (to ``on_push``, with None when the
    connection is lost)."""

    def __init__(self, timeout: float, on_push: Callable[[list[Any] | None], None] | None) -> None:
        self.timeout = timeout
        self.on_push = on_push
        self.reader = hiredis.Reader()
        self.waiting: deque[_Group] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        #: Why the connection was dropped on our side (a timeout, a READONLY answer).
        self.failure: rx.RedisError | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def send(self, packed: bytes, count: int) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if self.lost or self.transport is None:
            future.set_exception(self.failure or rx.ConnectionError("Redis connection lost"))
            return future
        self.waiting.append(_Group(future, count, loop.time() + self.timeout))
        self.transport.write(packed)
        if self._timer is None:
            self._timer = loop.call_later(self.timeout, self._check)
        return future

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self._drop(rx.ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if self.on_push is not None and type(reply) is list and reply and reply[0] in _PUSHED:
                self.on_push(reply)
                continue
            if not waiting:
                self._drop(rx.ConnectionError("Redis answered a command never sent"))
                return
            group = waiting[0]
            if isinstance(reply, hiredis.ReplyError):
                reply = self._error(reply)
            group.replies.append(reply)
            if len(group.replies) == group.count:
                waiting.popleft()
                if group.future.done():
                    continue  # its caller gave up
                failed = next((r for r in group.replies if isinstance(r, _GroupFailure)), None)
                if failed is None:
                    group.future.set_result(group.replies)
                else:
                    group.future.set_exception(failed.error)

    def _error(self, reply: hiredis.ReplyError) -> Any:
        text = str(reply)
        code, _, rest = text.partition(" ")
        if code in _FAIL_GROUP:
            error = _FAIL_GROUP[code](rest or text)
            if code != "LOADING":
                # This server cannot serve us: the next group connects afresh (and a
                # Sentinel names the current master).
                self._close_later(error)
            return _GroupFailure(error)
        return _PER_COMMAND.get(code, rx.ResponseError)(text)

    def close(self) -> None:
        self._drop(rx.ConnectionError("the Redis engine is closed"))

    def _close_later(self, error: rx.RedisError) -> None:
        self.failure = error
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def _check(self) -> None:
        self._timer = None
        if not self.waiting or self.lost:
            return
        loop = asyncio.get_running_loop()
        late = self.waiting[0].deadline - loop.time()
        if late <= 0:
            self._drop(rx.TimeoutError("Timeout reading from Redis"))
        else:
            self._timer = loop.call_later(late, self._check)

    def _drop(self, error: rx.RedisError) -> None:
        self.failure = self.failure or error
        self.lost = True
        if self.transport is not None:
            self.transport.abort()
        self._fail_all()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.failure is None:
            reason = f": {exc}" if exc else ""
            self.failure = rx.ConnectionError(f"Connection closed by Redis{reason}")
        self._fail_all()
        if self.on_push is not None:
            self.on_push(None)

    def _fail_all(self) -> None:
        waiting, self.waiting = self.waiting, deque()
        error = self.failure or rx.ConnectionError("Redis connection lost")
        for group in waiting:
            if not group.future.done():
                group.future.set_exception(error)


class _GroupFailure:
    __slots__ = ("error",)

    def __init__(self, error: rx.RedisError) -> None:
        self.error = error


@dataclass(frozen=True)
class Endpoint:
    """How to reach the Redis the engine uses (off a Cluster)."""

    #: Where Redis is now: fixed, or the master a Sentinel names at each connect.
    address: Callable[[], Awaitable[tuple[str, int]]]
    connect_timeout: float
    #: Sent first on every new connection (AUTH, SELECT).
    setup: Sequence[Sequence[Arg]] = ()
    tls: ssl.SSLContext | None = None


async def connect(
    endpoint: Endpoint,
    *,
    name: str,
    answer_within: float,
    on_push: Callable[[list[Any] | None], None] | None = None,
) -> RedisProtocol:
    """A new connection, named ``name`` (CLIENT SETNAME), with ``endpoint``'s setup done.

    ``answer_within``: how long a group may wait for its answer before the connection
    is dropped and what waits on it fails.
    """
    host, port = await endpoint.address()
    loop = asyncio.get_running_loop()
    tls = endpoint.tls
    try:
        _, protocol = await asyncio.wait_for(
            loop.create_connection(
                lambda: RedisProtocol(answer_within, on_push),
                host,
                port,
                ssl=tls,
                server_hostname=host if tls is not None else None,
            ),
            endpoint.connect_timeout,
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise rx.ConnectionError(f"Error connecting to {host}:{port}: {exc}") from exc
    setup = [*(tuple(command) for command in endpoint.setup), ("CLIENT", "SETNAME", name)]
    try:
        replies = await protocol.send(pack_commands(setup), len(setup))
    except BaseException:
        protocol.close()
        raise
    for command, reply in zip(setup, replies, strict=True):
        if isinstance(reply, BaseException):
            protocol.close()
            if str(command[0]).upper() == "AUTH":
                raise rx.AuthenticationError(str(reply))
            raise reply
    return protocol


class CallPipe:
    """Sends groups of commands on one connection; a group's answer is its replies.

    A reply that is an error concerning that command alone (WRONGTYPE, NOSCRIPT) is
    returned in its place as the exception redis-py would raise; one concerning the
    connection (LOADING, READONLY, a lost connection, no answer within ``timeout``)
    fails the group. The connection is made when the first group is sent, and again
    for the next group after it failed.
    """

    def __init__(self, endpoint: Endpoint, *, name: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.name = name
        self.timeout = timeout
        self._protocol: RedisProtocol | None = None
        self._connecting: asyncio.Task[RedisProtocol] | None = None
        self._closed = False

    async def send(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        protocol = self._protocol
        if protocol is None or protocol.lost:
            protocol = await self._connected()
        return await protocol.send(pack_commands(commands), len(commands))

    async def _connected(self) -> RedisProtocol:
        if self._closed:
            raise rx.ConnectionError("the Redis engine is closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(
                connect(self.endpoint, name=self.name, answer_within=self.timeout)
            )
            self._connecting.add_done_callback(self._connected_or_not)
        return await asyncio.shield(self._connecting)

    def _connected_or_not(self, task: asyncio.Task[RedisProtocol]) -> None:
        self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._protocol = task.result()
            if self._closed:
                self.close()

    def close(self) -> None:
        self._closed = True
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None


def pack_commands(commands: Sequence[Sequence[Arg]]) -> bytes:
    return b"".join([hiredis.pack_command(tuple(command)) for command in commands])  # type: ignore[arg-type]

"""A Python Bayeux client: the server-side (in-process) client, and a long-polling one.

The in-process client is what ``adapter.get_client()`` returns: application code
uses it to publish from a request handler or to listen on channels inside the
server. It speaks the protocol like any remote client (handshake, held connects),
so it follows the same rules, extensions and garbage collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from faye.envelope import Message, as_dicts
from faye.protocol import channels

log = logging.getLogger("faye.client")

Callback = Callable[[Any], Any]
RETRY_DELAY = 1.0


class BayeuxError(Exception):
    """The server refused a message; ``reply`` is its answer."""

    def __init__(self, reply: Message) -> None:
        super().__init__(reply.get("error", "unsuccessful"))
        self.reply = reply


class Transport(Protocol):
    connection_type: str

    async def send(self, messages: list[Message]) -> list[Message]: ...

    async def close(self) -> None: ...


class InProcessTransport:
    """Hands messages straight to a :class:`faye.server.Server` (``request`` is None)."""

    connection_type = "in-process"

    def __init__(self, server: Any, ensure_started: Callable[[], Awaitable[None]]) -> None:
        self._server = server
        self._ensure_started = ensure_started

    async def send(self, messages: list[Message]) -> list[Message]:
        await self._ensure_started()
        # The server may keep and change what it is given; give it a private copy.
        private = orjson.loads(orjson.dumps(messages))
        return as_dicts(await self._server.process(private, None))

    async def close(self) -> None:
        return None


class LongPollingTransport:
    """JSON POSTs to a Bayeux endpoint over HTTP (needs ``httpx``)."""

    connection_type = "long-polling"

    def __init__(self, url: str, *, timeout: float = 90.0, headers: dict[str, str] | None = None):
        from faye.extras import require

        require("faye.LongPollingTransport", "client", "httpx")
        import httpx

        self.url = url
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers)

    async def send(self, messages: list[Message]) -> list[Message]:
        response = await self._http.post(
            self.url,
            content=orjson.dumps(messages),
            headers={"content-type": "application/json"},
        )
        response.raise_for_status()
        replies: list[Message] = orjson.loads(response.content)
        return replies

    async def close(self) -> None:
        await self._http.aclose()


class Subscription:
    def __init__(self, client: Client, channel: str, callback: Callback) -> None:
        self.client = client
        self.channel = channel
        self.callback = callback

    async def cancel(self) -> None:
        await self.client.unsubscribe(self.channel, self.callback)


class Client:
    """Subscribe with callbacks, publish, and keep a connect loop running in between."""

    def __init__(self, transport: Transport, *, extensions: list[Any] | None = None) -> None:
        self.transport = transport
        self.extensions = list(extensions or [])
        self.client_id: str | None = None
        self._ids = itertools.count(1)
        self._callbacks: dict[str, list[Callback]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._handshake_lock = asyncio.Lock()
        self._interval = 0.0
        self._closed = False

    def add_extension(self, extension: Any) -> None:
        self.extensions.append(extension)

    async def _send(self, messages: list[Message]) -> list[Message]:
        outgoing: list[Message] = []
        for message in messages:
            message.setdefault("id", format(next(self._ids), "x"))
            processed: Message | None = message
            for extension in self.extensions:
                hook = getattr(extension, "outgoing", None)
                if hook is not None and processed is not None:
                    processed = await _maybe_await(hook(processed))
            if processed is not None:
                outgoing.append(processed)
        replies = await self.transport.send(outgoing)
        incoming: list[Message] = []
        for reply in replies:
            current: Message | None = reply
            for extension in self.extensions:
                hook = getattr(extension, "incoming", None)
                if hook is not None and current is not None:
                    current = await _maybe_await(hook(current))
            if current is not None:
                incoming.append(current)
        return incoming

    async def connect(self) -> str:
        """Handshake if needed and start the connect loop; returns the client id."""
        async with self._handshake_lock:
            if self.client_id is None:
                await self._handshake()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.ensure_future(self._connect_loop())
        assert self.client_id is not None
        return self.client_id

    async def _handshake(self) -> None:
        replies = await self._send(
            [
                {
                    "channel": channels.HANDSHAKE,
                    "version": "1.0",
                    "supportedConnectionTypes": [self.transport.connection_type],
                }
            ]
        )
        reply = _reply_for(replies, channels.HANDSHAKE)
        if not reply.get("successful"):
            raise BayeuxError(reply)
        self.client_id = reply["clientId"]
        self._take_advice(reply)
        # A fresh client id has no subscriptions: restore ours.
        if self._callbacks:
            await self._request(
                {"channel": channels.SUBSCRIBE, "subscription": list(self._callbacks)}
            )

    def _take_advice(self, reply: Message) -> None:
        advice = reply.get("advice")
        if isinstance(advice, dict) and isinstance(advice.get("interval"), int | float):
            self._interval = float(advice["interval"]) / 1000.0

    async def _request(self, message: Message) -> Message:
        if self.client_id is None:
            await self.connect()
        message["clientId"] = self.client_id
        replies = await self._send([message])
        reply = _reply_for(replies, message["channel"])
        if not reply.get("successful"):
            raise BayeuxError(reply)
        return reply

    async def subscribe(self, channel: str, callback: Callback) -> Subscription:
        await self.connect()
        if channel not in self._callbacks:
            await self._request({"channel": channels.SUBSCRIBE, "subscription": channel})
            self._callbacks.setdefault(channel, [])
        self._callbacks[channel].append(callback)
        return Subscription(self, channel, callback)

    async def unsubscribe(self, channel: str, callback: Callback | None = None) -> None:
        callbacks = self._callbacks.get(channel)
        if callbacks is None:
            return
        remaining = [] if callback is None else [cb for cb in callbacks if cb is not callback]
        if remaining:
            self._callbacks[channel] = remaining
            return
        del self._callbacks[channel]
        if self.client_id is not None:
            await self._request({"channel": channels.UNSUBSCRIBE, "subscription": channel})

    async def publish(self, channel: str, data: Any, **fields: Any) -> Message:
        """Publish; raises :class:`BayeuxError` if the server refuses it."""
        message: Message = {"channel": channel, "data": data, **fields}
        if self.client_id is not None:
            message["clientId"] = self.client_id
        replies = await self._send([message])
        reply = _reply_for(replies, channel)
        if not reply.get("successful"):
            raise BayeuxError(reply)
        return reply

    async def disconnect(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.client_id is not None:
            client_id, self.client_id = self.client_id, None
            with contextlib.suppress(Exception):
                await self._send([{"channel": channels.DISCONNECT, "clientId": client_id}])

    async def close(self) -> None:
        self._closed = True
        await self.disconnect()
        await self.transport.close()

    async def _connect_loop(self) -> None:
        while not self._closed:
            try:
                if self.client_id is None:
                    async with self._handshake_lock:
                        if self.client_id is None:
                            await self._handshake()
                replies = await self._send(
                    [
                        {
                            "channel": channels.CONNECT,
                            "clientId": self.client_id,
                            "connectionType": self.transport.connection_type,
                        }
                    ]
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("connect failed (%s); retrying", exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            for reply in replies:
                if reply.get("channel") == channels.CONNECT:
                    self._on_connect_reply(reply)
                else:
                    await self._dispatch(reply)
            if self._interval:
                await asyncio.sleep(self._interval)

    def _on_connect_reply(self, reply: Message) -> None:
        self._take_advice(reply)
        advice = reply.get("advice") or {}
        if not reply.get("successful") and advice.get("reconnect") == "handshake":
            self.client_id = None
        elif advice.get("reconnect") == "none":
            self._closed = True

    async def _dispatch(self, message: Message) -> None:
        channel = message.get("channel")
        if not isinstance(channel, str) or "data" not in message:
            return
        keys = channels.expand(channel) if channels.is_name(channel) else (channel,)
        for key in keys:
            for callback in list(self._callbacks.get(key, ())):
                try:
                    await _maybe_await(callback(message["data"]))
                except Exception:
                    log.exception("subscriber callback for %s failed", key)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _reply_for(replies: list[Message], channel: str) -> Message:
    for reply in replies:
        if reply.get("channel") == channel and "successful" in reply:
            return reply
    return replies[0] if replies else {"successful": False, "error": "no reply"}

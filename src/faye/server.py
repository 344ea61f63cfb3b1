"""The Bayeux server: extensions, validation, engine calls and replies.

It knows nothing of HTTP; transports hand it decoded messages and a request object
and encode what it returns. The pure rules live in :mod:`faye.protocol.meta`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faye.batch import Batch, Held
from faye.engine import COMPLETED, EngineError
from faye.envelope import Envelope, Item, Message
from faye.extensions import Extensions
from faye.limits import Limits, TokenBuckets
from faye.protocol import channels, errors, meta
from faye.proxy import EngineProxy, PushSocket

log = logging.getLogger("faye.server")

RETRY_AFTER_FAILURE_MS = 1000

#: What an engine may raise when its backing store fails; the client gets a Bayeux error.
ENGINE_FAILURES = (EngineError, OSError, ConnectionError, TimeoutError)


class Server:
    def __init__(self, proxy: EngineProxy, limits: Limits | None = None) -> None:
        self.proxy = proxy
        self.limits = limits or Limits()
        #: Refusals by limit name, kept by the monitor (faye.events.Monitor.limit_hits).
        self.limit_hits: Counter[str] = proxy.limit_hits
        #: Set by a graceful stop (faye.drain): connects are answered at once, so their
        #: clients move to another server instead of waiting on this one.
        self.draining = False
        self._publish_rate = TokenBuckets(self.limits.publish_rate, self.limits.publish_burst)
        self._handshake_rate = TokenBuckets(self.limits.handshake_rate, self.limits.handshake_burst)
        self.extensions = Extensions()
        self._handlers: dict[str, Callable[[Message, bool], Awaitable[list[Item] | Held]]] = {
            channels.HANDSHAKE: self._handshake,
            channels.CONNECT: self._connect,
            channels.DISCONNECT: self._disconnect,
            channels.SUBSCRIBE: self._subscribe,
            channels.UNSUBSCRIBE: self._unsubscribe,
        }

    def add_extension(self, extension: Any) -> None:
        self.extensions.add(extension, self)

    def remove_extension(self, extension: Any) -> None:
        self.extensions.remove(extension, self)

    async def process(self, messages: Any, request: Any) -> list[Item]:
        """Handle one batch; replies come back in completion order (held connects last).

        For a caller that has nothing to write (the in-process client): deliveries in
        the replies count as written at once.
        """
        batch = await self.handle(messages, request)
        batch.written()
        return batch.replies

    async def handle(self, messages: Any, request: Any) -> Batch:
        """Handle one batch whole; the caller writes its replies and settles them."""
        batch = await self.begin(messages, request)
        await batch.finish()
        return batch

    async def begin(self, messages: Any, request: Any) -> Batch:
        """Handle every message of a batch except the waiting of its held connects.

        Messages start one after another, so publishes keep their order (and a
        subscribe is in place before a publish that follows it). A ``/meta/connect``
        is set aside to wait, and so is the completion of a publish: it already has
        its place in the engine's order, so the next publish need not wait for it. A
        transport that receives several batches on one connection (WebSocket) calls
        this for each in turn, so the order holds across batches too, and awaits
        :meth:`Batch.finish` concurrently.
        """
        batch = Batch(self, request)
        arrived = asyncio.get_running_loop().time()
        try:
            for raw in messages if isinstance(messages, list) else [messages]:
                if not meta.js_truthy(raw):
                    continue  # Faye answers a null (or other falsy) message with nothing
                message: Message = raw if isinstance(raw, dict) else {}
                outcome = await self._process_one(message, request, arrived)
                if isinstance(outcome, Held):
                    batch.held.append(outcome)
                elif not isinstance(outcome, list):
                    batch.publishing.append(outcome)
                elif message.get("channel") == channels.CONNECT:
                    batch.late.extend(outcome)
                else:
                    batch.replies.extend(outcome)
            if not batch.publishing:
                batch.replies.extend(batch.late)
                batch.late = []
        except BaseException:
            batch.abandon()
            raise
        return batch

    # -- the transports' port (faye.transport.port.ServerPort) ------------------------

    @property
    def has_outgoing(self) -> bool:
        return self.extensions.has_outgoing

    async def client_exists(self, client_id: Any) -> bool:
        return await self.proxy.client_exists(client_id)

    def open_socket(self, client_id: str, socket: PushSocket) -> None:
        self.proxy.open_socket(client_id, socket)

    def close_socket(self, client_id: str, socket: PushSocket, *, flush: bool = False) -> None:
        self.proxy.detach_socket(client_id, socket, flush=flush)

    def acknowledge(self, client_id: str, count: int) -> None:
        self.proxy.delivered(client_id, count)

    def requeue(self, client_id: str, messages: Sequence[Envelope]) -> None:
        self.proxy.requeue(client_id, messages)

    def release(self, client_id: str, waiter: asyncio.Future[list[Envelope]]) -> None:
        self.proxy.release(client_id, waiter)

    def drop_client(self, client_id: str | None, reason: str) -> None:
        self.limit_hits[reason] += 1
        if client_id is not None:
            self.proxy.spawn(self.proxy.destroy_client(client_id))

    def limit_hit(self, reason: str) -> None:
        self.limit_hits[reason] += 1

    async def _process_one(
        self,
        message: Message,
        request: Any,
        arrived: float | None = None,
    ) -> list[Item] | Held | asyncio.Task[list[Item]]:
        """One message's replies, a task for them when a publish is under way, or a
        held connect (its outgoing extensions run once it is answered).

        ``arrived`` (a ``loop.time()``) is when the message's request reached the server.
        """
        if request is not None:
            # Before the extensions: traffic over its rate costs no authentication work.
            refusal = self._over_rate(message, request)
            if refusal is not None:
                return await self.outgoing([refusal], request)
        extensions = self.extensions
        if not extensions.has_incoming:
            incoming = message  # without extensions, no coroutine per message
        else:
            try:
                processed = await extensions.incoming(message, request)
            except Exception:
                return await self.outgoing([self._extension_failed(message, "incoming")], request)
            if processed is None:
                return []
            if not isinstance(processed, dict):
                kind = type(processed).__name__
                log.error("an incoming extension returned %s, not a message", kind)
                return await self.outgoing([self._extension_failed(message, None)], request)
            incoming = processed
        local = request is None
        channel = incoming.get("channel")
        try:
            # The five meta channels by exact name first: no grammar check for them.
            handler = self._handlers.get(channel) if isinstance(channel, str) else None
            if handler is not None:
                if channel == channels.CONNECT:
                    answer = await self._connect(incoming, local, arrived)
                else:
                    answer = await handler(incoming, local)
                if isinstance(answer, Held):
                    return answer
                out: list[Item] = answer
            elif channels.is_meta(channel):
                reply = meta.reply_skeleton(incoming)
                meta.forbid_unknown_meta(reply, channel)  # type: ignore[arg-type]
                out = [reply]
            else:
                reply, pending = self._start_publish(incoming)
                # A publish the engine finished synchronously (the memory engine) is
                # answered in place, without a task for it and another for its frame.
                if pending is not None and pending is not COMPLETED:
                    return asyncio.ensure_future(self._finish_publish(reply, pending, request))
                out = [reply]
        except ENGINE_FAILURES as exc:
            log.warning("engine failure on %s: %s", channel, exc)
            out = [self._failure(incoming, exc)]
        if not extensions.has_outgoing:
            return out
        return await self.outgoing(out, request)

    def _over_rate(self, message: Message, request: Any) -> Message | None:
        """A refusal if the message's sender is over its handshake or publish rate.

        Handshakes are counted per source address (the only identity a new client has),
        publishes per client id, or per address when the publish names none.
        """
        channel = message.get("channel")
        if channel == channels.HANDSHAKE:
            address = _address(request)
            if self.limits.exempt(address) or self._handshake_rate.allow(address):
                return None
            self.limit_hits["handshake_rate"] += 1
            reply = meta.reply_skeleton(message)
            reply["successful"] = False
            reply["error"] = errors.render(errors.HANDSHAKE_RATE_EXCEEDED)
            reply["advice"] = {"reconnect": "handshake", "interval": RETRY_AFTER_FAILURE_MS}
            return reply
        if not self._publish_rate.enabled or (
            isinstance(channel, str) and channel.startswith("/meta/")
        ):
            return None
        client_id = message.get("clientId")
        key = client_id if isinstance(client_id, str) and client_id else _address(request)
        if self._publish_rate.allow(key):
            return None
        self.limit_hits["publish_rate"] += 1
        reply = meta.reply_skeleton(message)
        reply["successful"] = False
        reply["error"] = errors.render(errors.PUBLISH_RATE_EXCEEDED, channel)
        return reply

    def _count_long_names(self, names: list[Any]) -> None:
        allow = self.limits.channels.allow
        if any(isinstance(name, str) and not allow(name) for name in names):
            self.limit_hits["channel"] += 1

    def _failure(self, message: Message, exc: BaseException) -> Message:
        reply = meta.reply_skeleton(message)
        reply["successful"] = False
        reply["error"] = errors.server_error(type(exc).__name__)
        if reply.get("channel") in (channels.HANDSHAKE, channels.CONNECT):
            reply.pop("clientId", None)
            reply["advice"] = {"reconnect": "retry", "interval": RETRY_AFTER_FAILURE_MS}
        return reply

    async def outgoing(self, items: list[Item], request: Any) -> list[Item]:
        """Run outgoing extensions; each recipient gets its own copy of a delivery."""
        if not self.extensions.has_outgoing:
            return items
        result: list[Item] = []
        for item in items:
            message = item.copy() if isinstance(item, Envelope) else item
            try:
                processed = await self.extensions.outgoing(message, request)
            except Exception:
                if isinstance(item, Envelope):
                    # This recipient does not get this delivery; the others do.
                    log.error("an outgoing extension failed on a delivery", exc_info=True)
                    continue
                processed = self._extension_failed(item, "outgoing")
            if processed is not None:
                result.append(processed)
        return result

    def _extension_failed(self, message: Message, stage: str | None) -> Message:
        """The failure reply for a message an extension broke on; only this message fails.

        The log names the channel, never the message: it may be large, or secret.
        """
        if stage is not None:
            log.error(
                "an %s extension failed on a message to %.200r",
                stage,
                message.get("channel"),
                exc_info=True,
            )
        reply = meta.reply_skeleton({k: message.get(k) for k in ("id", "clientId", "channel")})
        reply["successful"] = False
        reply["error"] = errors.server_error()
        if reply.get("channel") in (channels.HANDSHAKE, channels.CONNECT):
            reply.pop("clientId", None)
            reply["advice"] = {"reconnect": "handshake", "interval": RETRY_AFTER_FAILURE_MS}
        return reply

    def _advise(self, reply: Message, connection_type: Any = None) -> None:
        meta.add_advice(
            reply,
            timeout_ms=int(self.proxy.timeout * 1000),
            interval_ms=int(self.proxy.interval * 1000),
            connection_type=connection_type,
        )

    # -- handlers ---------------------------------------------------------------------

    async def _handshake(self, message: Message, local: bool) -> list[Item]:
        reply = meta.reply_skeleton(message)
        if meta.check_handshake(message, reply):
            reply["clientId"] = await self.proxy.create_client()
        self._advise(reply)
        return [reply]

    async def _connect(
        self, message: Message, local: bool, arrived: float | None = None
    ) -> list[Item] | Held:
        """Answer a connect within the time its client waits for the answer.

        A Faye client gives up on a connect 1.2 x ``advice.timeout`` after sending it
        and then aborts the request; on WebSocket that closes the socket, and whatever
        is pushed to it meanwhile is lost although written. So the hold counts from the
        connect's arrival (``arrived``), not from when the engine has looked the client
        up, and a lookup that outlasts ``timeout`` (Redis stalled) fails the connect
        with retry advice instead of holding it past the client's patience.
        """
        client_id = message.get("clientId")
        loop = asyncio.get_running_loop()
        started = loop.time() if arrived is None else arrived
        try:
            async with asyncio.timeout_at(started + self.proxy.timeout):
                exists = await self.proxy.client_exists(client_id)
        except TimeoutError:
            raise EngineError("the engine did not look the client up within timeout") from None
        reply = meta.reply_skeleton(message)
        connection_type = message.get("connectionType")
        if not meta.check_connect(message, reply, exists):
            self._advise(reply)
            return [reply]
        assert isinstance(client_id, str)
        hold = 0.0 if self.draining else meta.requested_hold(message, self.proxy.timeout)
        if hold > 0:
            # Spent already: answer as soon as the queue is handed over.
            hold = max(hold - (loop.time() - started), 0.0)
        waiter = await self.proxy.hold(client_id, hold)
        self._advise(reply, connection_type)
        return Held(client_id, reply, waiter)

    async def _disconnect(self, message: Message, local: bool) -> list[Item]:
        client_id = message.get("clientId")
        exists = await self.proxy.client_known(client_id)
        reply = meta.reply_skeleton(message)
        if meta.check_disconnect(message, reply, exists):
            assert isinstance(client_id, str)
            await self.proxy.destroy_client(client_id)
        return [reply]

    async def _subscribe(self, message: Message, local: bool) -> list[Item]:
        return await self._subscription(message, local, subscribing=True)

    async def _unsubscribe(self, message: Message, local: bool) -> list[Item]:
        return await self._subscription(message, local, subscribing=False)

    async def _subscription(self, message: Message, local: bool, subscribing: bool) -> list[Item]:
        client_id = message.get("clientId")
        exists = await self.proxy.client_known(client_id)
        reply = meta.reply_skeleton(message)
        requested = meta.check_subscription(message, reply, exists)
        if requested is None:
            return [reply]
        assert isinstance(client_id, str)
        cap = 0 if local or not subscribing else self.limits.max_subscriptions
        self._count_long_names(requested)
        for channel in meta.check_channels(requested, reply, local, self.limits.channels):
            if not subscribing:
                await self.proxy.unsubscribe(client_id, channel)
            elif cap and self.proxy.subscription_count(client_id) >= cap:
                self.limit_hits["subscriptions"] += 1
                # Like a refused channel: those before it stand, the rest are not tried.
                reply["successful"] = False
                reply["error"] = errors.render(errors.TOO_MANY_SUBSCRIPTIONS, channel)
                break
            else:
                await self.proxy.subscribe(client_id, channel)
        return [reply]

    def _start_publish(self, message: Message) -> tuple[Message, Awaitable[None] | None]:
        """Validate and hand a publish to the engine; its completion is awaited later."""
        reply = meta.reply_skeleton(message)
        channel = message.get("channel")
        if isinstance(channel, str) and not self.limits.channels.allow(channel):
            self.limit_hits["channel"] += 1
        if not meta.check_publish(message, reply, self.limits.channels):
            return reply, None
        try:
            return reply, self.proxy.publish(message)
        except TypeError as exc:
            reply["successful"] = False
            reply["error"] = errors.render(errors.PUBLISH_FAILED, message.get("channel"))
            log.warning("cannot publish %r: %s", message.get("channel"), exc)
            return reply, None

    async def _finish_publish(
        self, reply: Message, pending: Awaitable[None], request: Any
    ) -> list[Item]:
        try:
            await pending
        except ENGINE_FAILURES as exc:
            log.warning("engine failure on %s: %s", reply.get("channel"), exc)
            reply = self._failure(reply, exc)
        return await self.outgoing([reply], request)


def _address(request: Any) -> str:
    """The peer's host (the proxy's, unless the ASGI server was told to trust its headers)."""
    client = getattr(request, "client", None)
    return client[0] if client else ""

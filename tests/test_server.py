"""Server.process against a real EngineProxy + MemoryEngine (spec §1, §5 and §6), no sockets.

``REMOTE`` stands for any transport's request object; ``None`` is the in-process client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from faye.adapter import ASGIAdapter
from faye.client import BayeuxError, Client, InProcessTransport
from faye.engine import EngineError
from faye.engines.memory import MemoryEngine
from faye.envelope import Envelope, as_dicts
from faye.proxy import EngineProxy
from faye.server import Server

REMOTE = object()
TIMEOUT = 0.2
ALL_TYPES = [
    "long-polling",
    "cross-origin-long-polling",
    "callback-polling",
    "websocket",
    "eventsource",
    "in-process",
]
HANDSHAKE = {
    "channel": "/meta/handshake",
    "version": "1.0",
    "supportedConnectionTypes": ["long-polling"],
}


class Recorder:
    """Every monitoring event the proxy emits, in order."""

    EVENTS = ("handshake", "subscribe", "unsubscribe", "publish", "disconnect", "close",
              "connection:open", "connection:close")  # fmt: skip

    def __init__(self, proxy: EngineProxy) -> None:
        self.events: list[tuple[Any, ...]] = []
        for name in self.EVENTS:
            proxy.bind(name, self._listener(name))

    def _listener(self, name: str) -> Callable[..., None]:
        return lambda *args: self.events.append((name, *args))

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [e[1:] for e in self.events if e[0] == name]


async def make_server(
    engine: Any = MemoryEngine, timeout: float = TIMEOUT, interval: float = 0.0
) -> Server:
    proxy = EngineProxy(engine.create, {}, timeout=timeout, interval=interval)
    await proxy.start()
    return Server(proxy)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = await make_server()
    try:
        yield srv
    finally:
        await srv.proxy.close()


@pytest.fixture
def events(server: Server) -> Recorder:
    return Recorder(server.proxy)


async def process(server: Server, messages: Any, request: Any = REMOTE) -> list[dict[str, Any]]:
    return as_dicts(await server.process(messages, request))


async def handshake(server: Server, request: Any = REMOTE) -> str:
    [reply] = await process(server, dict(HANDSHAKE), request)
    assert reply["successful"], reply
    return str(reply["clientId"])


async def subscribe(
    server: Server, client_id: str, subscription: Any, request: Any = REMOTE
) -> Any:
    [reply] = await process(
        server,
        {"channel": "/meta/subscribe", "clientId": client_id, "subscription": subscription},
        request,
    )
    return reply


def connect_msg(client_id: str, timeout_ms: float | None = None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": "long-polling",
        **fields,
    }
    if timeout_ms is not None:
        message["advice"] = {"timeout": timeout_ms}
    return message


async def until(predicate: Callable[[], bool], ticks: int = 200) -> None:
    for _ in range(ticks):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def held_connect(
    server: Server, client_id: str, request: Any = REMOTE, **fields: Any
) -> asyncio.Task[list[Any]]:
    """Start a connect and return once the proxy is holding it."""
    task = asyncio.ensure_future(server.process(connect_msg(client_id, **fields), request))
    await until(lambda: server.proxy.has_connection(client_id))
    assert not task.done()
    return task


async def subscribed_client(server: Server, channel: str, request: Any = REMOTE) -> str:
    client_id = await handshake(server, request)
    assert (await subscribe(server, client_id, channel, request))["successful"]
    return client_id


async def poll(server: Server, client_id: str, request: Any = REMOTE) -> list[dict[str, Any]]:
    """A connect that returns at once with whatever is queued."""
    return await process(server, connect_msg(client_id, timeout_ms=0), request)


# == Server.process ===========================================================================


async def test_empty_batch(server: Server) -> None:
    assert await server.process([], REMOTE) == []


async def test_messages_without_channel_are_publishes(server: Server) -> None:
    replies = await process(server, [{}, {"channel": "invalid"}])
    assert replies == [
        {"successful": False, "error": "402:data:Missing required parameter"},
        {"channel": "invalid", "successful": False, "error": "402:data:Missing required parameter"},
    ]


async def test_non_object_member_is_an_empty_message(server: Server) -> None:
    assert await process(server, [1]) == [
        {"successful": False, "error": "402:data:Missing required parameter"}
    ]


@pytest.mark.parametrize("body", [None, [None], [None, 0, "", False]])
async def test_null_messages_get_no_reply(server: Server, body: Any) -> None:
    """Faye's _handle answers a falsy message with nothing (JS accepts a `null` body: `[]`)."""
    assert await process(server, body) == []


@pytest.mark.parametrize("channel", ["/meta/p", "/meta", "/meta/subscribe/x", "/meta/connect/x"])
async def test_unknown_meta_channel_is_forbidden(server: Server, channel: str) -> None:
    assert await process(server, {"channel": channel, "id": "1"}) == [
        {
            "channel": channel,
            "id": "1",
            "successful": False,
            "error": f"403:{channel}:Forbidden channel",
        }
    ]


async def test_single_message_is_routed(server: Server, events: Recorder) -> None:
    [reply] = await process(server, dict(HANDSHAKE))
    assert reply["channel"] == "/meta/handshake"
    assert reply["successful"] is True
    assert events.of("handshake") == [(reply["clientId"],)]


async def test_batch_routes_each_message_and_only_publish_publishes(
    server: Server, events: Recorder
) -> None:
    fake = {"clientId": "fakeclientid"}
    batch = [
        dict(HANDSHAKE),
        {"channel": "/meta/connect", "connectionType": "long-polling", **fake},
        {"channel": "/meta/disconnect", **fake},
        {"channel": "/meta/subscribe", "subscription": "/foo", **fake},
        {"channel": "/meta/unsubscribe", "subscription": "/foo", **fake},
        {"channel": "/some/channel", "data": "publish"},
    ]
    replies = await process(server, batch)
    assert [r["channel"] for r in replies] == [
        "/meta/handshake",
        "/meta/disconnect",
        "/meta/subscribe",
        "/meta/unsubscribe",
        "/some/channel",
        "/meta/connect",  # connects come last (completion order)
    ]
    assert replies[0]["successful"]
    assert all(r["error"] == "401:fakeclientid:Unknown client" for r in replies[1:4])
    assert replies[4] == {"channel": "/some/channel", "successful": True}
    assert events.of("publish") == [(None, "/some/channel", "publish")]
    assert events.of("subscribe") == events.of("disconnect") == []


async def test_handshake_advice_with_default_timeout() -> None:
    srv = await make_server(timeout=60.0)
    try:
        [reply] = await process(srv, dict(HANDSHAKE))
        assert reply["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 60000}
    finally:
        await srv.proxy.close()


async def test_advice_reports_engine_interval() -> None:
    srv = await make_server(timeout=1.5, interval=0.25)
    try:
        [reply] = await process(srv, dict(HANDSHAKE))
        assert reply["advice"] == {"reconnect": "retry", "interval": 250, "timeout": 1500}
    finally:
        await srv.proxy.close()


async def test_messages_returned_with_connect_are_passed_back_unchanged(server: Server) -> None:
    subscriber = await subscribed_client(server, "/x")
    await process(server, {"channel": "/x", "data": "hello"})
    replies = await poll(server, subscriber)
    assert replies == [
        {
            "channel": "/meta/connect",
            "successful": True,
            "clientId": subscriber,
            "advice": {"reconnect": "retry", "interval": 0, "timeout": 200},
        },
        {"channel": "/x", "data": "hello"},
    ]


async def test_deliveries_are_envelopes_without_outgoing_extensions(server: Server) -> None:
    subscriber = await subscribed_client(server, "/x")
    await process(server, {"channel": "/x", "data": 1})
    raw = await server.process(connect_msg(subscriber, timeout_ms=0), REMOTE)
    assert isinstance(raw[1], Envelope)
    assert raw[1].message == {"channel": "/x", "data": 1}


# == Handshake ================================================================================


async def test_handshake_creates_client(server: Server, events: Recorder) -> None:
    [reply] = await process(
        server, {**HANDSHAKE, "id": "foo", "ext": {"a": 1}, "minimumVersion": "1"}
    )
    client_id = reply.pop("clientId")
    assert reply == {
        "id": "foo",
        "channel": "/meta/handshake",
        "successful": True,
        "version": "1.0",
        "supportedConnectionTypes": ALL_TYPES,
        "advice": {"reconnect": "retry", "interval": 0, "timeout": 200},
    }
    assert await server.proxy.client_exists(client_id)
    assert events.of("handshake") == [(client_id,)]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"version": None}, "402:version:Missing required parameter"),
        (
            {"supportedConnectionTypes": None},
            "402:supportedConnectionTypes:Missing required parameter",
        ),
        (
            {"supportedConnectionTypes": ["iframe", "flash"]},
            "301:iframe,flash:Connection types not supported",
        ),
        ({"error": "invalid"}, "invalid"),
    ],
)
async def test_handshake_failures(
    server: Server, events: Recorder, change: dict[str, Any], error: str
) -> None:
    message = {k: v for k, v in {**HANDSHAKE, **change}.items() if v is not None}
    assert await process(server, message) == [
        {
            "channel": "/meta/handshake",
            "successful": False,
            "error": error,
            "version": "1.0",
            "supportedConnectionTypes": ALL_TYPES,
            "advice": {"reconnect": "handshake"},
        }
    ]
    assert events.of("handshake") == []


async def test_handshake_batched_with_others_processes_all(server: Server) -> None:
    replies = await process(server, [dict(HANDSHAKE), {"channel": "/a", "data": 1}])
    assert [r["successful"] for r in replies] == [True, True]


# == Connect ==================================================================================


async def test_connect_honours_advice_timeout_in_ms(server: Server) -> None:
    client_id = await handshake(server)
    started = time.monotonic()
    [reply] = await process(server, connect_msg(client_id, timeout_ms=50))
    elapsed = time.monotonic() - started
    assert 0.04 <= elapsed < TIMEOUT
    assert reply["advice"]["timeout"] == 200  # the server's timeout, not the requested hold


async def test_lone_connect_is_answered_after_the_timeout(server: Server) -> None:
    client_id = await handshake(server)
    started = time.monotonic()
    replies = await process(server, connect_msg(client_id, id="foo"))
    assert time.monotonic() - started >= TIMEOUT * 0.9
    assert replies == [
        {
            "id": "foo",
            "channel": "/meta/connect",
            "successful": True,
            "clientId": client_id,
            "advice": {"reconnect": "retry", "interval": 0, "timeout": 200},
        }
    ]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({}, "401:fakeclientid:Unknown client"),
        ({"clientId": None}, "402:clientId:Missing required parameter"),
        ({"connectionType": None}, "402:connectionType:Missing required parameter"),
        ({"connectionType": "flash"}, "301:flash:Connection types not supported"),
    ],
)
async def test_connect_failures(
    server: Server, events: Recorder, change: dict[str, Any], error: str
) -> None:
    message = {k: v for k, v in {**connect_msg("fakeclientid"), **change}.items() if v is not None}
    assert await process(server, message) == [
        {
            "channel": "/meta/connect",
            "successful": False,
            "error": error,
            "advice": {"reconnect": "handshake"},
        }
    ]
    assert events.of("connection:open") == []


async def test_connect_extension_error_on_real_client(server: Server, events: Recorder) -> None:
    client_id = await handshake(server)
    [reply] = await process(server, connect_msg(client_id, error="invalid"))
    assert reply == {
        "channel": "/meta/connect",
        "successful": False,
        "error": "invalid",
        "advice": {"reconnect": "handshake"},
    }
    assert events.of("connection:open") == []


async def test_eventsource_connect_returns_at_once_with_its_advice() -> None:
    srv = await make_server(timeout=30.0)
    try:
        client_id = await handshake(srv)
        message = connect_msg(client_id, connectionType="eventsource", advice={"timeout": 20000})
        [reply] = await asyncio.wait_for(process(srv, message), 1.0)
        assert reply["successful"]
        assert reply["advice"] == {"reconnect": "retry", "interval": 30000, "timeout": 0}
    finally:
        await srv.proxy.close()


async def test_batched_subscribe_and_zero_timeout_connect_return_at_once() -> None:
    srv = await make_server(timeout=30.0)
    try:
        client_id = await handshake(srv)
        batch = [
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/a"},
            connect_msg(client_id, timeout_ms=0),
        ]
        replies = await asyncio.wait_for(process(srv, batch), 1.0)
        assert [(r["channel"], r["successful"]) for r in replies] == [
            ("/meta/subscribe", True),
            ("/meta/connect", True),
        ]
    finally:
        await srv.proxy.close()


async def test_batch_waits_for_held_connect(server: Server) -> None:
    client_id = await handshake(server)
    batch = [
        {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/a"},
        connect_msg(client_id),
    ]
    started = time.monotonic()
    replies = await process(server, batch)
    assert time.monotonic() - started >= TIMEOUT * 0.9
    assert [r["channel"] for r in replies] == ["/meta/subscribe", "/meta/connect"]


async def test_held_connect_released_by_publish_within_a_tick(server: Server) -> None:
    subscriber = await subscribed_client(server, "/foo/*")
    task = await held_connect(server, subscriber)
    publish = {
        "channel": "/foo/bar",
        "data": {"n": 1},
        "clientId": "publisher-id",
        "id": "42",
        "ext": {"token": "t"},
        "blank": None,
    }
    assert await process(server, publish) == [
        {"channel": "/foo/bar", "successful": True, "clientId": "publisher-id", "id": "42"}
    ]
    for _ in range(20):
        if task.done():
            break
        await asyncio.sleep(0)
    assert task.done(), "held connect was not answered within a few loop turns"
    replies = as_dicts(task.result())
    assert replies[0]["channel"] == "/meta/connect"
    assert replies[0]["successful"] is True
    assert replies[1:] == [
        {"channel": "/foo/bar", "data": {"n": 1}, "id": "42", "ext": {"token": "t"}, "blank": None}
    ]


async def test_queued_messages_arrive_in_next_connect_in_order(server: Server) -> None:
    subscriber = await subscribed_client(server, "/q")
    for n in range(5):
        await process(server, {"channel": "/q", "data": n})
    started = time.monotonic()
    replies = await process(server, connect_msg(subscriber))  # no advice: still immediate
    assert time.monotonic() - started < TIMEOUT / 2
    assert [r["data"] for r in replies[1:]] == [0, 1, 2, 3, 4]
    assert await poll(server, subscriber) == [replies[0]]  # delivered once only


async def test_one_delivery_per_client_even_if_several_patterns_match(server: Server) -> None:
    subscriber = await subscribed_client(server, ["/m/*", "/m/foo", "/**", "/m/**"])
    await process(server, {"channel": "/m/foo", "data": "x"})
    await process(server, {"channel": "/m/foo", "data": "x"})
    replies = await poll(server, subscriber)
    assert [r["data"] for r in replies[1:]] == ["x", "x"]


async def test_routing_by_pattern(server: Server) -> None:
    star = await subscribed_client(server, "/messages/*")
    top_star = await subscribed_client(server, "/*")
    deep = await subscribed_client(server, "/messages/**")
    everything = await subscribed_client(server, "/**")
    other = await subscribed_client(server, "/messages/bar")
    await process(server, {"channel": "/messages/foo", "data": "ok"})
    got = {
        cid: len(await poll(server, cid)) - 1 for cid in (star, top_star, deep, everything, other)
    }
    assert got == {star: 1, top_star: 0, deep: 1, everything: 1, other: 0}


async def test_superseded_connect_is_answered_empty() -> None:
    """OUR behaviour (Faye orphans the first connect): the older held connect is answered at
    once with an empty successful reply; the newer one receives the next delivery."""
    srv = await make_server(timeout=5.0)
    try:
        subscriber = await subscribed_client(srv, "/s")
        first = await held_connect(srv, subscriber, id="1")
        second = asyncio.ensure_future(srv.process(connect_msg(subscriber, id="2"), REMOTE))
        replies = as_dicts(await asyncio.wait_for(first, 0.5))
        assert replies == [
            {
                "id": "1",
                "channel": "/meta/connect",
                "successful": True,
                "clientId": subscriber,
                "advice": {"reconnect": "retry", "interval": 0, "timeout": 5000},
            }
        ]
        await asyncio.sleep(0.01)
        assert not second.done()
        await process(srv, {"channel": "/s", "data": "late"})
        replies = as_dicts(await asyncio.wait_for(second, 0.5))
        assert replies[0]["id"] == "2"
        assert replies[1:] == [{"channel": "/s", "data": "late"}]
    finally:
        await srv.proxy.close()


async def test_client_gone_after_twice_the_timeout() -> None:
    srv = await make_server(timeout=0.05)
    events = Recorder(srv.proxy)
    try:
        client_id = await subscribed_client(srv, "/gc")
        await asyncio.sleep(0.05 * 2 + 0.05)
        [reply] = await process(srv, connect_msg(client_id, timeout_ms=0))
        assert reply["error"] == f"401:{client_id}:Unknown client"
        assert events.of("unsubscribe") == [(client_id, "/gc")]
        assert events.of("disconnect") == [(client_id,)]
    finally:
        await srv.proxy.close()


async def test_connect_keeps_client_alive() -> None:
    srv = await make_server(timeout=0.1)
    try:
        client_id = await handshake(srv)
        for _ in range(5):  # 5 x 0.05 s > 2 x timeout
            await asyncio.sleep(0.05)
            [reply] = await process(srv, connect_msg(client_id, timeout_ms=0))
            assert reply["successful"], reply
    finally:
        await srv.proxy.close()


# == Disconnect ===============================================================================


async def test_disconnect_destroys_client(server: Server, events: Recorder) -> None:
    client_id = await handshake(server)
    replies = await process(
        server, {"channel": "/meta/disconnect", "clientId": client_id, "id": "d"}
    )
    assert replies == [
        {"channel": "/meta/disconnect", "successful": True, "clientId": client_id, "id": "d"}
    ]
    assert events.of("disconnect") == [(client_id,)]
    assert not await server.proxy.client_exists(client_id)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"clientId": "fakeclientid"}, "401:fakeclientid:Unknown client"),
        ({}, "402:clientId:Missing required parameter"),
    ],
)
async def test_disconnect_failures(
    server: Server, events: Recorder, message: dict[str, Any], error: str
) -> None:
    assert await process(server, {"channel": "/meta/disconnect", **message}) == [
        {"channel": "/meta/disconnect", "successful": False, "error": error}
    ]
    assert events.of("disconnect") == []


async def test_disconnect_extension_error(server: Server, events: Recorder) -> None:
    client_id = await handshake(server)
    [reply] = await process(
        server, {"channel": "/meta/disconnect", "clientId": client_id, "error": "invalid"}
    )
    assert reply == {"channel": "/meta/disconnect", "successful": False, "error": "invalid"}
    assert events.of("disconnect") == []
    assert await server.proxy.client_exists(client_id)


async def test_disconnect_answers_held_connect() -> None:
    srv = await make_server(timeout=5.0)
    try:
        client_id = await handshake(srv)
        task = await held_connect(srv, client_id)
        await process(srv, {"channel": "/meta/disconnect", "clientId": client_id})
        [reply] = as_dicts(await asyncio.wait_for(task, 0.5))
        assert reply["channel"] == "/meta/connect"
        assert reply["successful"] is True
        assert reply["clientId"] == client_id
    finally:
        await srv.proxy.close()


# == Subscribe / Unsubscribe ==================================================================


@pytest.fixture(params=["/meta/subscribe", "/meta/unsubscribe"])
def action(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def changes(events: Recorder, action: str) -> list[tuple[Any, ...]]:
    return events.of(action.rsplit("/", 1)[1])


async def prepared(server: Server, action: str, channels: list[str]) -> str:
    """A client; for unsubscribe tests it is subscribed to ``channels`` first."""
    client_id = await handshake(server)
    if action == "/meta/unsubscribe":
        assert (await subscribe(server, client_id, channels))["successful"]
    return client_id


async def test_subscription_single(server: Server, events: Recorder, action: str) -> None:
    client_id = await prepared(server, action, ["/foo"])
    events.events.clear()
    [reply] = await process(
        server, {"channel": action, "clientId": client_id, "subscription": "/foo"}
    )
    assert reply == {
        "channel": action,
        "successful": True,
        "clientId": client_id,
        "subscription": "/foo",
    }
    assert changes(events, action) == [(client_id, "/foo")]


async def test_subscription_list(server: Server, events: Recorder, action: str) -> None:
    client_id = await prepared(server, action, ["/foo", "/bar"])
    events.events.clear()
    message = {"channel": action, "clientId": client_id, "subscription": ["/foo", "/bar"]}
    [reply] = await process(server, message)
    assert reply["successful"]
    assert reply["subscription"] == ["/foo", "/bar"]
    assert changes(events, action) == [(client_id, "/foo"), (client_id, "/bar")]


async def test_subscription_pattern(server: Server, events: Recorder, action: str) -> None:
    client_id = await prepared(server, action, ["/foo/**"])
    events.events.clear()
    message = {"channel": action, "clientId": client_id, "subscription": "/foo/**"}
    [reply] = await process(server, message)
    assert reply["successful"]
    assert reply["subscription"] == "/foo/**"
    assert changes(events, action) == [(client_id, "/foo/**")]


async def test_subscription_unknown_client(server: Server, events: Recorder, action: str) -> None:
    message = {"channel": action, "clientId": "fakeclientid", "subscription": "/foo"}
    assert await process(server, message) == [
        {
            "channel": action,
            "successful": False,
            "error": "401:fakeclientid:Unknown client",
            "clientId": "fakeclientid",
            "subscription": "/foo",
        }
    ]
    assert changes(events, action) == []


async def test_subscription_missing_client_id(
    server: Server, events: Recorder, action: str
) -> None:
    assert await process(server, {"channel": action, "subscription": "/foo"}) == [
        {
            "channel": action,
            "successful": False,
            "error": "402:clientId:Missing required parameter",
            "subscription": "/foo",
        }
    ]


async def test_subscription_missing_subscription(
    server: Server, events: Recorder, action: str
) -> None:
    client_id = await handshake(server)
    assert await process(server, {"channel": action, "clientId": client_id}) == [
        {
            "channel": action,
            "successful": False,
            "error": "402:subscription:Missing required parameter",
            "clientId": client_id,
            "subscription": [],
        }
    ]


async def test_subscription_invalid_channel(server: Server, events: Recorder, action: str) -> None:
    client_id = await handshake(server)
    [reply] = await process(
        server, {"channel": action, "clientId": client_id, "subscription": "foo"}
    )
    assert reply == {
        "channel": action,
        "successful": False,
        "error": "405:foo:Invalid channel",
        "clientId": client_id,
        "subscription": "foo",
    }
    assert changes(events, action) == []


async def test_subscription_meta_forbidden_remotely(
    server: Server, events: Recorder, action: str
) -> None:
    client_id = await handshake(server)
    message = {"channel": action, "clientId": client_id, "subscription": "/meta/foo"}
    [reply] = await process(server, message)
    assert reply["error"] == "403:/meta/foo:Forbidden channel"
    assert reply["successful"] is False
    assert changes(events, action) == []


async def test_subscription_meta_allowed_locally(
    server: Server, events: Recorder, action: str
) -> None:
    client_id = await handshake(server, None)
    if action == "/meta/unsubscribe":
        assert (await subscribe(server, client_id, "/meta/foo", None))["successful"]
    events.events.clear()
    message = {"channel": action, "clientId": client_id, "subscription": "/meta/foo"}
    [reply] = await process(server, message, None)
    assert reply["successful"] is True
    assert changes(events, action) == [(client_id, "/meta/foo")]


async def test_subscription_extension_error(server: Server, events: Recorder, action: str) -> None:
    client_id = await prepared(server, action, ["/foo"])
    events.events.clear()
    message = {"channel": action, "clientId": client_id, "subscription": "/foo", "error": "invalid"}
    assert await process(server, message) == [
        {
            "channel": action,
            "successful": False,
            "error": "invalid",
            "clientId": client_id,
            "subscription": "/foo",
        }
    ]
    assert changes(events, action) == []


async def test_subscribe_list_stops_at_forbidden_channel(server: Server, events: Recorder) -> None:
    client_id = await handshake(server)
    reply = await subscribe(server, client_id, ["/a", "/meta/x", "/b"])
    assert reply["successful"] is False
    assert reply["error"] == "403:/meta/x:Forbidden channel"
    assert reply["subscription"] == ["/a", "/meta/x", "/b"]
    assert events.of("subscribe") == [(client_id, "/a")]


async def test_subscribe_service_forbidden_but_service_publish_reaches_everything(
    server: Server,
) -> None:
    client_id = await handshake(server)
    reply = await subscribe(server, client_id, "/service/x")
    assert reply["error"] == "403:/service/x:Forbidden channel"
    everything = await subscribed_client(server, "/**")
    [ack] = await process(server, {"channel": "/service/x", "data": "svc"})
    assert ack == {"channel": "/service/x", "successful": True}
    replies = await poll(server, everything)
    assert replies[1:] == [{"channel": "/service/x", "data": "svc"}]


async def test_resubscribe_idempotent_and_unsubscribe_unknown_silent(
    server: Server, events: Recorder
) -> None:
    client_id = await subscribed_client(server, "/a")
    assert (await subscribe(server, client_id, "/a"))["successful"]
    message = {"channel": "/meta/unsubscribe", "clientId": client_id, "subscription": "/zzz"}
    [reply] = await process(server, message)
    assert reply["successful"]
    assert events.of("subscribe") == [(client_id, "/a")]
    assert events.of("unsubscribe") == []


async def test_unsubscribed_client_receives_nothing(server: Server) -> None:
    client_id = await subscribed_client(server, "/u")
    await process(
        server, {"channel": "/meta/unsubscribe", "clientId": client_id, "subscription": "/u"}
    )
    await process(server, {"channel": "/u", "data": 1})
    assert len(await poll(server, client_id)) == 1


async def test_subscribe_is_awaited_before_reply() -> None:
    """OUR behaviour (Faye does not wait): the subscription exists when the reply is sent."""

    class SlowSubscribe(MemoryEngine):
        async def subscribe(self, client_id: str, channel: str) -> bool:
            await asyncio.sleep(0.02)
            return await super().subscribe(client_id, channel)

    srv = await make_server(SlowSubscribe)
    try:
        client_id = await subscribed_client(srv, "/slow")
        await process(srv, {"channel": "/slow", "data": 1})
        assert len(await poll(srv, client_id)) == 2
    finally:
        await srv.proxy.close()


# == Publish ==================================================================================


async def test_publish(server: Server, events: Recorder) -> None:
    assert await process(server, {"channel": "/some/channel", "data": "publish"}) == [
        {"channel": "/some/channel", "successful": True}
    ]
    assert events.of("publish") == [(None, "/some/channel", "publish")]


async def test_publish_without_handshake_with_any_client_id(
    server: Server, events: Recorder
) -> None:
    message = {"channel": "/p", "data": 1, "clientId": "nobody-knows-me", "id": "5"}
    assert await process(server, message) == [
        {"channel": "/p", "successful": True, "clientId": "nobody-knows-me", "id": "5"}
    ]
    assert events.of("publish") == [("nobody-knows-me", "/p", 1)]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"channel": "channel", "data": "x"}, "405:channel:Invalid channel"),
        ({"channel": "/invalid/*", "data": "x"}, "405:/invalid/*:Invalid channel"),
        ({"channel": "/a"}, "402:data:Missing required parameter"),
        ({"channel": "/a", "data": "x", "error": "invalid"}, "invalid"),
    ],
)
async def test_publish_failures(
    server: Server, events: Recorder, message: dict[str, Any], error: str
) -> None:
    assert await process(server, message) == [
        {"channel": message["channel"], "successful": False, "error": error}
    ]
    assert events.of("publish") == []


async def test_publish_data_null(server: Server, events: Recorder) -> None:
    subscriber = await subscribed_client(server, "/n")
    [reply] = await process(server, {"channel": "/n", "data": None})
    assert reply == {"channel": "/n", "successful": True}
    assert (await poll(server, subscriber))[1:] == [{"channel": "/n", "data": None}]
    assert events.of("publish") == [(None, "/n", None)]


@pytest.mark.parametrize("falsy_id", [0, ""])
async def test_falsy_id_not_echoed(server: Server, falsy_id: Any) -> None:
    [reply] = await process(server, {"channel": "/a", "data": 1, "id": falsy_id})
    assert "id" not in reply


async def test_null_client_id_not_echoed(server: Server) -> None:
    """Faye copies clientId only when truthy."""
    [reply] = await process(server, {"channel": "/a", "data": 1, "clientId": None})
    assert reply == {"channel": "/a", "successful": True}


async def test_unencodable_data_is_407(server: Server, events: Recorder) -> None:
    """OUR behaviour: data JSON cannot carry gives `407:<channel>:Failed to publish`."""
    [reply] = await process(server, {"channel": "/a", "data": {1, 2}}, None)
    assert reply == {"channel": "/a", "successful": False, "error": "407:/a:Failed to publish"}
    assert events.of("publish") == []


async def test_publish_is_awaited_before_reply() -> None:
    """OUR behaviour (Faye replies before fan-out): fan-out is done when the reply comes."""

    class SlowPublish(MemoryEngine):
        async def publish(self, envelope: Envelope, channels: Any) -> None:
            await asyncio.sleep(0.02)
            await super().publish(envelope, channels)

    srv = await make_server(SlowPublish)
    try:
        client_id = await subscribed_client(srv, "/slow")
        await process(srv, {"channel": "/slow", "data": 1})
        assert len(await poll(srv, client_id)) == 2
    finally:
        await srv.proxy.close()


async def test_publishes_in_a_batch_keep_order(server: Server) -> None:
    subscriber = await subscribed_client(server, "/o")
    await process(server, [{"channel": "/o", "data": n} for n in range(10)])
    assert [r["data"] for r in (await poll(server, subscriber))[1:]] == list(range(10))


async def test_recipients_get_distinct_copies(server: Server) -> None:
    alice = await subscribed_client(server, "/c")
    bob = await subscribed_client(server, "/c")
    await process(server, {"channel": "/c", "data": {"list": [1]}})
    a = (await poll(server, alice))[1]
    b = (await poll(server, bob))[1]
    a["data"]["list"].append(2)
    assert b == {"channel": "/c", "data": {"list": [1]}}


# == Engine failures ==========================================================================


class FlakyEngine(MemoryEngine):
    failing: set[str] = set()

    def _maybe_fail(self, what: str) -> None:
        if what in self.failing:
            raise EngineError("down")

    async def create_client(self) -> str:
        self._maybe_fail("create")
        return await super().create_client()

    async def client_exists(self, client_id: str) -> bool:
        self._maybe_fail("exists")
        return await super().client_exists(client_id)

    async def publish(self, envelope: Envelope, channels: Any) -> None:
        self._maybe_fail("publish")
        await super().publish(envelope, channels)


@pytest.fixture
async def flaky() -> AsyncIterator[Server]:
    FlakyEngine.failing = set()
    srv = await make_server(FlakyEngine)
    try:
        yield srv
    finally:
        FlakyEngine.failing = set()
        await srv.proxy.close()


async def test_engine_failure_on_handshake(flaky: Server) -> None:
    """OUR behaviour: 500:<ExcName>:Internal server error, advice retry after 1000 ms."""
    FlakyEngine.failing = {"create"}
    assert await process(flaky, {**HANDSHAKE, "id": "h"}) == [
        {
            "id": "h",
            "channel": "/meta/handshake",
            "successful": False,
            "error": "500:EngineError:Internal server error",
            "advice": {"reconnect": "retry", "interval": 1000},
        }
    ]


async def test_engine_failure_on_connect(flaky: Server) -> None:
    """OUR behaviour: a 500 connect reply drops clientId and advises retry, not handshake."""
    client_id = await handshake(flaky)
    FlakyEngine.failing = {"exists"}
    assert await process(flaky, connect_msg(client_id)) == [
        {
            "channel": "/meta/connect",
            "successful": False,
            "error": "500:EngineError:Internal server error",
            "advice": {"reconnect": "retry", "interval": 1000},
        }
    ]


async def test_engine_failure_on_subscribe_and_publish(flaky: Server) -> None:
    """OUR behaviour: 500 without advice on other channels; the batch still completes."""
    client_id = await handshake(flaky)
    FlakyEngine.failing = {"exists", "publish"}
    replies = await process(
        flaky,
        [
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/a"},
            {"channel": "/a", "data": 1},
        ],
    )
    assert replies == [
        {
            "channel": "/meta/subscribe",
            "clientId": client_id,
            "successful": False,
            "error": "500:EngineError:Internal server error",
        },
        {"channel": "/a", "successful": False, "error": "500:EngineError:Internal server error"},
    ]


# == Extensions ===============================================================================


class Incoming:
    def __init__(self, fn: Callable[[dict[str, Any], Any], Any]) -> None:
        self.fn = fn

    def incoming(self, message: dict[str, Any], request: Any) -> Any:
        return self.fn(message, request)


class Outgoing:
    def __init__(self, fn: Callable[[dict[str, Any], Any], Any]) -> None:
        self.fn = fn

    def outgoing(self, message: dict[str, Any], request: Any) -> Any:
        return self.fn(message, request)


async def test_incoming_mutation_is_what_engine_receives(server: Server) -> None:
    def add_auth(message: dict[str, Any], request: Any) -> dict[str, Any]:
        if not message["channel"].startswith("/meta/"):
            message["ext"] = {"auth": "password"}
        return message

    subscriber = await subscribed_client(server, "/e")
    server.add_extension(Incoming(add_auth))
    [reply] = await process(server, {"channel": "/e", "data": 1})
    assert reply == {"channel": "/e", "successful": True}  # incoming-only: replies unaltered
    assert (await poll(server, subscriber))[1:] == [
        {"channel": "/e", "data": 1, "ext": {"auth": "password"}}
    ]


async def test_incoming_sees_meta_messages_with_request(server: Server) -> None:
    seen: list[tuple[str, Any]] = []

    def record(message: dict[str, Any], request: Any) -> dict[str, Any]:
        seen.append((message.get("channel"), request))
        return message

    server.add_extension(Incoming(record))
    client_id = await handshake(server)
    await poll(server, client_id)
    await process(server, {"channel": "/x", "data": 1}, None)
    assert seen == [("/meta/handshake", REMOTE), ("/meta/connect", REMOTE), ("/x", None)]


async def test_subscribe_auth_extension_prevents_subscription(
    server: Server, events: Recorder
) -> None:
    def auth(message: dict[str, Any], request: Any) -> dict[str, Any]:
        if message["channel"] == "/meta/subscribe" and message.get("ext", {}).get("token") != "ok":
            message["error"] = "Invalid subscription auth token"
        return message

    server.add_extension(Incoming(auth))
    client_id = await handshake(server)
    reply = await subscribe(server, client_id, "/secret")
    assert reply["error"] == "Invalid subscription auth token"
    assert reply["successful"] is False
    assert events.of("subscribe") == []
    message = {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/secret"}
    [reply] = await process(server, {**message, "ext": {"token": "ok"}})
    assert reply["successful"]
    assert events.of("subscribe") == [(client_id, "/secret")]


async def test_meta_subscribe_suffix_never_subscribes(server: Server, events: Recorder) -> None:
    client_id = await handshake(server)
    message = {"channel": "/meta/subscribe/x", "clientId": client_id, "subscription": "/foo"}
    assert await process(server, message) == [
        {
            "channel": "/meta/subscribe/x",
            "clientId": client_id,
            "successful": False,
            "error": "403:/meta/subscribe/x:Forbidden channel",
        }
    ]
    assert events.of("subscribe") == []


async def test_outgoing_only_does_not_alter_engine_input(server: Server) -> None:
    def strip(message: dict[str, Any], request: Any) -> dict[str, Any]:
        message.pop("ext", None)
        message["out"] = True
        return message

    subscriber = await subscribed_client(server, "/o")
    extension = Outgoing(strip)
    server.add_extension(extension)
    [reply] = await process(server, {"channel": "/o", "data": 1, "ext": {"secret": 1}})
    assert reply == {"channel": "/o", "successful": True, "out": True}  # mutation in replies
    server.remove_extension(extension)
    assert (await poll(server, subscriber))[1:] == [
        {"channel": "/o", "data": 1, "ext": {"secret": 1}}
    ]


async def test_outgoing_can_change_advice(server: Server) -> None:
    def advise(message: dict[str, Any], request: Any) -> dict[str, Any]:
        if "advice" in message:
            message["advice"]["interval"] = 1234
        return message

    server.add_extension(Outgoing(advise))
    [reply] = await process(server, dict(HANDSHAKE))
    assert reply["advice"]["interval"] == 1234


async def test_incoming_none_drops_message_without_reply(server: Server, events: Recorder) -> None:
    server.add_extension(Incoming(lambda m, r: None if m.get("channel") == "/drop" else m))
    replies = await process(
        server, [{"channel": "/drop", "data": 1}, {"channel": "/keep", "data": 2}]
    )
    assert replies == [{"channel": "/keep", "successful": True}]
    assert events.of("publish") == [(None, "/keep", 2)]


async def test_outgoing_none_drops_reply(server: Server) -> None:
    server.add_extension(Outgoing(lambda m, r: None if m.get("channel") == "/hide" else m))
    replies = await process(
        server, [{"channel": "/hide", "data": 1}, {"channel": "/show", "data": 2}]
    )
    assert replies == [{"channel": "/show", "successful": True}]


async def test_async_extensions(server: Server) -> None:
    class AsyncExt:
        async def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
            await asyncio.sleep(0)
            if message["channel"] == "/async":
                message["data"] = {"tagged": True, **message["data"]}
            return message

        async def outgoing(self, message: dict[str, Any], request: Any) -> dict[str, Any] | None:
            await asyncio.sleep(0)
            if message.get("channel") == "/async" and "data" in message:
                message["data"]["url"] = "req"
            if message.get("channel") == "/async/drop":
                return None
            return message

    subscriber = await subscribed_client(server, "/async")
    server.add_extension(AsyncExt())
    replies = await process(
        server,
        [{"channel": "/async", "data": {"hello": "world"}}, {"channel": "/async/drop", "data": 1}],
    )
    assert replies == [{"channel": "/async", "successful": True}]
    assert (await poll(server, subscriber))[1:] == [
        {"channel": "/async", "data": {"tagged": True, "hello": "world", "url": "req"}}
    ]


async def test_extensions_run_in_registration_order_both_ways(server: Server) -> None:
    trail: list[str] = []

    class Ext:
        def __init__(self, name: str) -> None:
            self.name = name

        def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
            trail.append(f"in:{self.name}")
            return message

        def outgoing(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
            trail.append(f"out:{self.name}")
            return message

    server.add_extension(Ext("a"))
    server.add_extension(Ext("b"))
    await process(server, {"channel": "/x", "data": 1})
    assert trail == ["in:a", "in:b", "out:a", "out:b"]


async def test_added_and_removed_hooks(server: Server) -> None:
    calls: list[tuple[str, Any]] = []

    class Ext:
        def added(self, host: Any) -> None:
            calls.append(("added", host))

        def removed(self, host: Any) -> None:
            calls.append(("removed", host))

        def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
            message["error"] = "blocked"
            return message

    ext = Ext()
    server.add_extension(ext)
    server.add_extension(ext)
    [reply] = await process(server, {"channel": "/x", "data": 1})
    assert reply["error"] == "blocked"
    server.remove_extension(ext)
    assert calls == [("added", server), ("added", server), ("removed", server), ("removed", server)]
    [reply] = await process(server, {"channel": "/x", "data": 1})
    assert reply["successful"]


async def test_outgoing_mutation_per_recipient_is_private(server: Server) -> None:
    """Each recipient's copy goes through outgoing extensions with its own request."""
    req_a, req_b = object(), object()
    seen: list[Any] = []

    def tag(message: dict[str, Any], request: Any) -> dict[str, Any]:
        if message.get("channel") == "/shared":
            seen.append(request)
            if request is req_a:
                message["data"]["mine"] = "a"
                message["only_a"] = True
        return message

    alice = await subscribed_client(server, "/shared", req_a)
    bob = await subscribed_client(server, "/shared", req_b)
    task_a = await held_connect(server, alice, req_a)
    task_b = await held_connect(server, bob, req_b)
    server.add_extension(Outgoing(tag))
    publisher = object()
    await process(server, {"channel": "/shared", "data": {"n": 1}}, publisher)
    got_a = as_dicts(await asyncio.wait_for(task_a, 0.5))[1:]
    got_b = as_dicts(await asyncio.wait_for(task_b, 0.5))[1:]
    assert got_a == [{"channel": "/shared", "data": {"n": 1, "mine": "a"}, "only_a": True}]
    assert got_b == [{"channel": "/shared", "data": {"n": 1}}]
    assert seen.count(req_a) == 1  # the delivery
    assert seen.count(req_b) == 1
    assert seen.count(publisher) == 1  # the publish acknowledgement


# == In-process client ========================================================================


@pytest.fixture
async def adapter() -> AsyncIterator[ASGIAdapter]:
    adp = ASGIAdapter(mount="/faye", timeout=TIMEOUT)
    try:
        yield adp
    finally:
        await adp.close()


async def test_in_process_round_trip(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    assert adapter.get_client() is client
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/chat/*", received.put_nowait)
    reply = await client.publish("/chat/room", {"text": "hi"})
    assert reply["successful"]
    assert await asyncio.wait_for(received.get(), 1.0) == {"text": "hi"}


async def test_in_process_messages_survive_a_connect_cycle(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/later", received.put_nowait)
    await asyncio.sleep(TIMEOUT * 1.5)  # at least one held connect has timed out and renewed
    await client.publish("/later", 1)
    await client.publish("/later", 2)
    assert [await asyncio.wait_for(received.get(), 1.0) for _ in range(2)] == [1, 2]


async def test_in_process_may_subscribe_meta_and_service(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/meta/*", received.put_nowait)
    await client.subscribe("/service/x", received.put_nowait)
    await client.publish("/service/x", "svc")
    assert await asyncio.wait_for(received.get(), 1.0) == "svc"


async def test_in_process_publish_failure_raises(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    with pytest.raises(BayeuxError) as info:
        await client.publish("/bad/*", 1)
    assert info.value.reply["error"] == "405:/bad/*:Invalid channel"


async def test_two_in_process_clients(adapter: ASGIAdapter) -> None:
    alice = adapter.get_client()
    bob = Client(InProcessTransport(adapter.server, adapter.start))
    try:
        got_a: asyncio.Queue[Any] = asyncio.Queue()
        got_b: asyncio.Queue[Any] = asyncio.Queue()
        await alice.subscribe("/room", got_a.put_nowait)
        await bob.subscribe("/room", got_b.put_nowait)
        assert alice.client_id != bob.client_id
        await alice.publish("/room", "from alice")
        assert await asyncio.wait_for(got_b.get(), 1.0) == "from alice"
        assert await asyncio.wait_for(got_a.get(), 1.0) == "from alice"
        sub = await bob.subscribe("/other", got_b.put_nowait)
        await sub.cancel()
        await alice.publish("/other", "nobody")
        await alice.publish("/room", "second")
        assert await asyncio.wait_for(got_b.get(), 1.0) == "second"
    finally:
        await bob.close()


async def test_in_process_client_goes_through_server_extensions(adapter: ASGIAdapter) -> None:
    requests: list[Any] = []

    def record(message: dict[str, Any], request: Any) -> dict[str, Any]:
        requests.append(request)
        if message["channel"] == "/tag":
            message["data"] = {**message["data"], "tagged": True}
        return message

    adapter.add_extension(Incoming(record))
    client = adapter.get_client()
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/tag", received.put_nowait)
    await client.publish("/tag", {"x": 1})
    assert await asyncio.wait_for(received.get(), 1.0) == {"x": 1, "tagged": True}
    assert requests and all(r is None for r in requests)


async def test_in_process_client_disconnect(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    client_id = await client.connect()
    assert await adapter.proxy.client_exists(client_id)
    await client.disconnect()
    assert not await adapter.proxy.client_exists(client_id)


# == Held connects that go away ===============================================================


async def test_cancelled_held_connect_keeps_later_messages(server: Server) -> None:
    """The transport gave up on a held connect: what arrives later waits for the next one."""
    subscriber = await subscribed_client(server, "/c")
    task = await held_connect(server, subscriber)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await process(server, {"channel": "/c", "data": "after"})
    assert (await poll(server, subscriber))[1:] == [{"channel": "/c", "data": "after"}]


async def test_cancel_right_after_delivery_requeues(server: Server) -> None:
    """A delivery taken by a connect whose request then vanished is not lost."""
    subscriber = await subscribed_client(server, "/c")
    for settle in (0, 1, 2, 3):
        task = await held_connect(server, subscriber)
        await process(server, {"channel": "/c", "data": settle})
        for _ in range(settle):
            await asyncio.sleep(0)
        if task.done():
            continue  # answered already: nothing to lose
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
        assert (await poll(server, subscriber))[1:] == [{"channel": "/c", "data": settle}]


async def test_connect_batched_with_publish_to_itself() -> None:
    srv = await make_server(timeout=5.0)
    try:
        client_id = await subscribed_client(srv, "/self")
        batch = [connect_msg(client_id), {"channel": "/self", "data": "me"}]
        replies = await asyncio.wait_for(process(srv, batch), 0.5)
        assert [r["channel"] for r in replies] == ["/self", "/meta/connect", "/self"]
        assert replies[2] == {"channel": "/self", "data": "me"}
    finally:
        await srv.proxy.close()


async def test_in_process_client_rehandshakes_and_resubscribes(adapter: ASGIAdapter) -> None:
    client = adapter.get_client()
    received: asyncio.Queue[Any] = asyncio.Queue()
    await client.subscribe("/again", received.put_nowait)
    old_id = client.client_id
    assert old_id is not None
    await adapter.proxy.destroy_client(old_id)  # e.g. garbage-collected by the server
    await until(lambda: client.client_id not in (None, old_id), ticks=2000)
    await asyncio.sleep(0.01)
    await client.publish("/again", "back")
    assert await asyncio.wait_for(received.get(), 1.0) == "back"

"""/meta/subscribe and /meta/unsubscribe through Server.process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from faye.engines.memory import MemoryEngine
from faye.server import Server
from tests.support.server import (
    Recorder,
    handshake,
    make_server,
    poll,
    process,
    subscribe,
    subscribed_client,
)


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

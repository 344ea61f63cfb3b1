"""Server.process: batches, routing, advice and what a reply carries (spec §1, §5)."""

from __future__ import annotations

from typing import Any

import pytest

from faye.envelope import Envelope
from faye.server import Server
from tests.support.server import (
    HANDSHAKE,
    REMOTE,
    Recorder,
    connect_msg,
    make_server,
    poll,
    process,
    subscribed_client,
)


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

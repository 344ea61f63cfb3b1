"""Server extensions: incoming and outgoing hooks, their order and their errors."""

from __future__ import annotations

import asyncio
from typing import Any

from faye.envelope import as_dicts
from faye.server import Server
from tests.support.server import (
    HANDSHAKE,
    REMOTE,
    Incoming,
    Outgoing,
    Recorder,
    handshake,
    held_connect,
    poll,
    process,
    subscribe,
    subscribed_client,
)


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

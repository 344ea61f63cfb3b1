"""The engine contract (Faye's shared engine examples), run against every engine.

Each test goes through the EngineProxy, as the server does, so events, delivery and
liveness are checked end to end for the memory engine and for Redis alike.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from faye.proxy import EngineProxy
from tests.support.engines import EngineKit, attach, settle
from tests.support.waiting import wait_for


def recorder(proxy: EngineProxy, event: str) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    proxy.bind(event, lambda *args: seen.append(args))
    return seen


def strip_id(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "id"} for m in messages]


# -- client lifecycle ------------------------------------------------------------------


async def test_create_client_returns_a_base36_id(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    client_id = await proxy.create_client()
    assert re.fullmatch(r"[a-z0-9]+", client_id)


async def test_client_ids_are_distinct(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    ids = {await proxy.create_client() for _ in range(10)}
    assert len(ids) == 10


async def test_create_client_emits_handshake(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    seen = recorder(proxy, "handshake")
    client_id = await proxy.create_client()
    assert seen == [(client_id,)]


async def test_client_exists_only_for_issued_ids(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    client_id = await proxy.create_client()
    assert await proxy.client_exists(client_id)
    assert not await proxy.client_exists("anything-never-issued")
    assert not await proxy.client_exists("")
    assert not await proxy.client_exists(None)


async def test_new_client_survives_within_timeout(engines: EngineKit) -> None:
    proxy = await engines.proxy(timeout=0.3)
    client_id = await proxy.create_client()
    await asyncio.sleep(0.25)
    assert await proxy.client_exists(client_id)


async def test_client_that_never_pings_expires(engines: EngineKit) -> None:
    proxy = await engines.proxy(timeout=0.3, gc_interval=0.1)
    client_id = await proxy.create_client()
    await asyncio.sleep(0.7)
    assert not await proxy.client_exists(client_id)


async def test_ping_extends_liveness(engines: EngineKit) -> None:
    proxy = await engines.proxy(timeout=0.3, gc_interval=0.1)
    client_id = await proxy.create_client()
    await asyncio.sleep(0.45)
    await proxy.backend.ping(client_id)
    # Alive for 1.6 x timeout (Redis) or 2 x timeout (memory) after the ping: 480 ms
    # at least. Checked with wide margins so a busy machine cannot flip the result.
    await asyncio.sleep(0.3)
    assert await proxy.client_exists(client_id)
    await asyncio.sleep(0.6)
    assert not await proxy.client_exists(client_id)


async def test_expired_client_is_collected_with_events(engines: EngineKit) -> None:
    proxy = await engines.proxy(timeout=0.2, gc_interval=0.1)
    client_id = await proxy.create_client()
    await proxy.subscribe(client_id, "/expiring")
    unsubscribed = recorder(proxy, "unsubscribe")
    disconnected = recorder(proxy, "disconnect")
    closed = recorder(proxy, "close")
    await wait_for(lambda: disconnected == [(client_id,)], timeout=3)
    assert unsubscribed == [(client_id, "/expiring")]
    await wait_for(lambda: (client_id,) in closed)
    await settle(0.2)
    assert closed == [(client_id,)]


def every_event(proxy: EngineProxy) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    for name in ("handshake", "subscribe", "unsubscribe", "disconnect", "close"):
        proxy.bind(name, lambda *args, name=name: seen.append((name, *args)))
    return seen


async def test_destroy_events_in_fayes_order_with_one_close(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    other = await engines.proxy() if engines.distributed else None
    seen = every_event(proxy)
    alice = await proxy.create_client()
    await proxy.subscribe(alice, "/one")
    await proxy.destroy_client(alice)
    await settle(0.3)  # a second close, local or from another server's broadcast
    assert seen == [
        ("handshake", alice),
        ("subscribe", alice, "/one"),
        ("unsubscribe", alice, "/one"),
        ("disconnect", alice),
        ("close", alice),
    ]
    if other is not None:
        elsewhere = every_event(other)
        bob = await proxy.create_client()
        await proxy.destroy_client(bob)
        await wait_for(lambda: elsewhere == [("close", bob)])
        await settle(0.3)
        assert elsewhere == [("close", bob)]


async def test_destroy_client(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    client_id = await proxy.create_client()
    disconnected = recorder(proxy, "disconnect")
    await proxy.destroy_client(client_id)
    assert not await proxy.client_exists(client_id)
    assert disconnected == [(client_id,)]


async def test_destroying_unknown_client_emits_nothing(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    disconnected = recorder(proxy, "disconnect")
    await proxy.destroy_client("never-issued")
    assert disconnected == []


async def test_destroyed_client_receives_nothing(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    alice = await proxy.create_client()
    bob = await proxy.create_client()
    await proxy.subscribe(alice, "/messages/foo")
    inbox = await attach(proxy, alice)
    unsubscribed = recorder(proxy, "unsubscribe")
    await proxy.destroy_client(alice)
    assert unsubscribed == [(alice, "/messages/foo")]
    await proxy.publish({"channel": "/messages/foo", "data": "x", "clientId": bob})
    await settle(0.1)
    assert inbox.messages == []


async def test_destroy_closes_the_clients_socket(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    alice = await proxy.create_client()
    inbox = await attach(proxy, alice)
    await proxy.destroy_client(alice)
    await wait_for(lambda: inbox.closed)
    assert not proxy.has_connection(alice)


# -- subscriptions ---------------------------------------------------------------------


async def test_subscribe_events(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    alice = await proxy.create_client()
    subscribed = recorder(proxy, "subscribe")
    unsubscribed = recorder(proxy, "unsubscribe")
    await proxy.subscribe(alice, "/foo/*")
    await proxy.subscribe(alice, "/foo/*")
    assert subscribed == [(alice, "/foo/*")]
    await proxy.unsubscribe(alice, "/bar")
    assert unsubscribed == []
    await proxy.unsubscribe(alice, "/foo/*")
    assert unsubscribed == [(alice, "/foo/*")]


# -- publishing ------------------------------------------------------------------------


async def setup_trio(proxy: EngineProxy) -> tuple[list[str], dict[str, Any]]:
    ids = [await proxy.create_client() for _ in range(3)]
    inboxes = {client_id: await attach(proxy, client_id) for client_id in ids}
    return ids, inboxes


async def test_publish_without_subscribers(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    (alice, _, _), inbox = await setup_trio(proxy)
    published = recorder(proxy, "publish")
    await proxy.publish({"channel": "/messages/foo", "data": "ok", "clientId": alice})
    await settle(0.1)
    assert all(not i.messages for i in inbox.values())
    assert published == [(alice, "/messages/foo", "ok")]


async def test_publish_event_without_client_id(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    published = recorder(proxy, "publish")
    await proxy.publish({"channel": "/messages/foo", "data": "ok"})
    assert published == [(None, "/messages/foo", "ok")]


async def test_subscriber_receives_exactly_the_message(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    (alice, bob, carol), inbox = await setup_trio(proxy)
    await proxy.subscribe(bob, "/messages/foo")
    message = {
        "channel": "/messages/foo",
        "data": {"text": "hello \uf8ff ünïcödé 😀", "blank": None},
        "clientId": alice,
        "ext": {"k": 1},
        "extra": [1, 2.5, True],
    }
    published = recorder(proxy, "publish")
    await proxy.publish(dict(message))
    await wait_for(lambda: bool(inbox[bob].messages))
    expected = {k: v for k, v in message.items() if k != "clientId"}
    assert inbox[bob].messages == [expected]
    assert inbox[alice].messages == [] and inbox[carol].messages == []
    assert published == [(alice, "/messages/foo", message["data"])]


async def test_unsubscribed_client_receives_nothing(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    (alice, bob, _), inbox = await setup_trio(proxy)
    await proxy.subscribe(bob, "/messages/foo")
    await proxy.unsubscribe(bob, "/messages/foo")
    published = recorder(proxy, "publish")
    await proxy.publish({"channel": "/messages/foo", "data": "ok", "clientId": alice})
    await settle(0.1)
    assert inbox[bob].messages == []
    assert len(published) == 1


@pytest.mark.parametrize(
    ("subscription", "receives"),
    [
        ("/messages/foo", True),
        ("/messages/bar", False),
        ("/messages/*", True),
        ("/*", False),
        ("/messages/**", True),
        ("/**", True),
        ("/messages/foo/*", False),
        ("/messages/foo/**", False),
    ],
)
async def test_channel_routing(engines: EngineKit, subscription: str, receives: bool) -> None:
    proxy = await engines.proxy()
    (alice, bob, _), inbox = await setup_trio(proxy)
    await proxy.subscribe(bob, subscription)
    await proxy.publish({"channel": "/messages/foo", "data": "ok", "clientId": alice})
    await settle(0.1)
    assert strip_id(inbox[bob].messages) == (
        [{"channel": "/messages/foo", "data": "ok"}] if receives else []
    )


async def test_one_copy_per_client_whatever_matches(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    (alice, bob, carol), inbox = await setup_trio(proxy)
    for channel in ("/messages/*", "/messages/foo", "/**", "/messages/**"):
        await proxy.subscribe(bob, channel)
    await proxy.subscribe(carol, "/messages/*")
    await proxy.publish({"channel": "/messages/foo", "data": "once", "clientId": alice})
    await settle(0.15)
    assert len(inbox[bob].messages) == 1
    assert len(inbox[carol].messages) == 1


async def test_same_message_twice_is_delivered_twice(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    (alice, bob, _), inbox = await setup_trio(proxy)
    await proxy.subscribe(bob, "/messages/foo")
    for _ in range(2):
        await proxy.publish({"channel": "/messages/foo", "data": "x", "id": "1", "clientId": alice})
    await wait_for(lambda: len(inbox[bob].messages) == 2)
    await settle(0.1)
    assert len(inbox[bob].messages) == 2


async def test_messages_wait_for_a_client_between_connects(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    alice = await proxy.create_client()
    await proxy.subscribe(alice, "/queued")
    for n in range(5):
        await proxy.publish({"channel": "/queued", "data": n})
    delivered = await proxy.connect(alice, hold=1.0)
    assert [m.message["data"] for m in delivered] == [0, 1, 2, 3, 4]


async def test_immediate_connect_returns_queued_messages(engines: EngineKit) -> None:
    """``advice.timeout: 0`` (Faye's first connect, every EventSource connect) is answered
    at once, with what was waiting."""
    proxy = await engines.proxy()
    alice = await proxy.create_client()
    await proxy.subscribe(alice, "/waiting")
    for n in range(3):
        await proxy.publish({"channel": "/waiting", "data": n})
    started = asyncio.get_running_loop().time()
    delivered = await proxy.connect(alice, hold=0)
    assert [m.message["data"] for m in delivered] == [0, 1, 2]
    assert asyncio.get_running_loop().time() - started < 0.5
    assert await proxy.connect(alice, hold=0) == []


async def test_held_connect_answers_on_publish(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    alice = await proxy.create_client()
    await proxy.subscribe(alice, "/live")
    held = asyncio.ensure_future(proxy.connect(alice, hold=5.0))
    await settle(0.05)
    assert not held.done()
    await proxy.publish({"channel": "/live", "data": "now"})
    delivered = await asyncio.wait_for(held, 2)
    assert [m.message["data"] for m in delivered] == ["now"]


async def test_held_connect_times_out_empty(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    alice = await proxy.create_client()
    started = asyncio.get_running_loop().time()
    delivered = await proxy.connect(alice, hold=0.2)
    assert delivered == []
    assert 0.15 < asyncio.get_running_loop().time() - started < 1.0


async def test_abandoned_connect_keeps_its_messages(engines: EngineKit) -> None:
    """A long-poll whose HTTP client vanished must not eat the messages meant for it."""
    proxy = await engines.proxy()
    alice = await proxy.create_client()
    await proxy.subscribe(alice, "/kept")
    held = asyncio.ensure_future(proxy.connect(alice, hold=5.0))
    await settle(0.05)
    held.cancel()
    await settle(0.05)
    await proxy.publish({"channel": "/kept", "data": 1})
    delivered = await proxy.connect(alice, hold=1.0)
    assert [m.message["data"] for m in delivered] == [1]


async def test_disconnect_answers_held_connect(engines: EngineKit) -> None:
    proxy = await engines.proxy()
    alice = await proxy.create_client()
    held = asyncio.ensure_future(proxy.connect(alice, hold=5.0))
    await settle(0.05)
    await proxy.destroy_client(alice)
    assert await asyncio.wait_for(held, 2) == []


# -- several servers on one engine -----------------------------------------------------


async def test_distributed_delivery_exactly_once(engines: EngineKit) -> None:
    if not engines.distributed:
        pytest.skip("the memory engine lives in one process")
    server_a = await engines.proxy()
    server_b = await engines.proxy()
    alice = await server_a.create_client()
    bob = await server_b.create_client()
    await server_a.subscribe(alice, "/shared/*")
    inbox_a = await attach(server_a, alice)
    await server_b.publish({"channel": "/shared/x", "data": "first", "clientId": bob})
    await wait_for(lambda: len(inbox_a.messages) == 1)
    server_a.detach_socket(alice, inbox_a)
    await server_b.publish({"channel": "/shared/x", "data": "second", "clientId": bob})
    await settle(0.1)
    delivered = await server_b.connect(alice, hold=1.0)
    assert [m.message["data"] for m in delivered] == ["second"]
    await settle(0.1)
    assert [m["data"] for m in inbox_a.messages] == ["first"]


async def test_distributed_close_reaches_every_server(engines: EngineKit) -> None:
    if not engines.distributed:
        pytest.skip("the memory engine lives in one process")
    server_a = await engines.proxy(timeout=0.2, gc_interval=0.1)
    server_b = await engines.proxy(timeout=0.2, gc_interval=0.1)
    closed_a = recorder(server_a, "close")
    closed_b = recorder(server_b, "close")
    alice = await server_a.create_client()
    await wait_for(lambda: (alice,) in closed_a and (alice,) in closed_b, timeout=5)

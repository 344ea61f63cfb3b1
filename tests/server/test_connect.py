"""/meta/connect: held, answered, superseded, and held connects that go away."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from faye.envelope import as_dicts
from faye.server import Server
from tests.support.server import (
    REMOTE,
    TIMEOUT,
    Recorder,
    connect_msg,
    handshake,
    held_connect,
    make_server,
    poll,
    process,
    subscribed_client,
)


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

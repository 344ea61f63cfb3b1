"""Publishing through Server.process, and an engine that fails under it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from faye.engine import EngineError
from faye.engines.memory import MemoryEngine
from faye.envelope import Envelope
from faye.server import Server
from tests.support.server import (
    HANDSHAKE,
    Recorder,
    connect_msg,
    handshake,
    make_server,
    poll,
    process,
    subscribed_client,
)


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

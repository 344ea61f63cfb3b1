"""/meta/handshake and /meta/disconnect through Server.process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from faye import engine
from faye.envelope import as_dicts
from faye.server import Server
from tests.support.server import (
    ALL_TYPES,
    HANDSHAKE,
    Recorder,
    handshake,
    held_connect,
    make_server,
    process,
)


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


@pytest.mark.parametrize("number", [0, 1, 35, 36, 1295, 1296, 36**30, 2**160 - 1])
def test_client_ids_are_160_random_bits_in_31_base_36_digits(
    number: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.secrets, "randbits", lambda bits: number if bits == 160 else -1)
    client_id = engine.generate_id()
    assert len(client_id) == 31
    assert set(client_id) <= set("0123456789abcdefghijklmnopqrstuvwxyz")
    assert int(client_id, 36) == number

"""Bayeux over HTTP (httpx) and WebSocket (websockets) for tests that drive real servers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection


async def post(http: httpx.AsyncClient, url: str, messages: Any) -> list[dict[str, Any]]:
    """POST messages as JSON to a Bayeux endpoint; the replies (status 200 asserted)."""
    response = await http.post(url, json=messages)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def polling_client(http: httpx.AsyncClient, url: str, *subscriptions: str) -> str:
    """A long-polling client handshaken over HTTP and subscribed to ``subscriptions``."""
    (reply,) = await post(
        http,
        url,
        {
            "channel": "/meta/handshake",
            "version": "1.0",
            "supportedConnectionTypes": ["long-polling"],
        },
    )
    client_id: str = reply["clientId"]
    for channel in subscriptions:
        (subscribed,) = await post(
            http,
            url,
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": channel},
        )
        assert subscribed["successful"], subscribed
    return client_id


async def exchange(ws: ClientConnection, messages: Any, timeout: float = 3) -> list[dict[str, Any]]:
    await ws.send(json.dumps(messages))
    return await receive(ws, timeout)


async def receive(ws: ClientConnection, timeout: float = 3) -> list[dict[str, Any]]:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(frame, str), "Bayeux frames must be text"
    result: list[dict[str, Any]] = json.loads(frame)
    return result


async def ws_handshake(ws: ClientConnection) -> str:
    (reply,) = await exchange(
        ws,
        [
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["websocket"],
            }
        ],
    )
    assert reply["successful"]
    client_id: str = reply["clientId"]
    return client_id


def connect_msg(client_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": "websocket",
        **extra,
    }


async def subscribed_socket(ws: ClientConnection, channel: str, settle: float = 0.05) -> str:
    """A client on ``ws`` subscribed to ``channel``, with a connect held for pushes."""
    client_id = await ws_handshake(ws)
    await exchange(
        ws,
        [
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": channel},
            connect_msg(client_id, advice={"timeout": 0}),
        ],
    )
    await ws.send(json.dumps([connect_msg(client_id)]))
    await asyncio.sleep(settle)
    return client_id

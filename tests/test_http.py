"""HTTP transports over real sockets: long-polling, CORS, JSON-P, static client, bad input."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from faye import ASGIAdapter
from tests.support.live_server import LiveServer

MOUNT = "/faye"


@pytest.fixture
def adapter(tmp_path: Path) -> ASGIAdapter:
    script = tmp_path / "faye-browser-min.js"
    script.write_text("window.Faye = {};\n")
    (tmp_path / "faye-browser-min.js.map").write_text("{}")
    return ASGIAdapter(mount=MOUNT, timeout=2, client_script=script, max_request_size=64 * 1024)


async def post(http: httpx.AsyncClient, messages: Any, **headers: str) -> list[dict[str, Any]]:
    response = await http.post(
        MOUNT, content=json.dumps(messages), headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def handshake(http: httpx.AsyncClient) -> str:
    (reply,) = await post(
        http,
        {
            "channel": "/meta/handshake",
            "version": "1.0",
            "supportedConnectionTypes": ["long-polling"],
        },
    )
    assert reply["successful"], reply
    client_id: str = reply["clientId"]
    return client_id


async def subscribe(http: httpx.AsyncClient, client_id: str, channel: str) -> None:
    replies = await post(
        http,
        [
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": channel},
            {
                "channel": "/meta/connect",
                "clientId": client_id,
                "connectionType": "long-polling",
                "advice": {"timeout": 0},
            },
        ],
    )
    assert [r["channel"] for r in replies[:2]] == ["/meta/subscribe", "/meta/connect"]
    assert all(r["successful"] for r in replies[:2]), replies


def connect_message(client_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": "long-polling",
        **extra,
    }


# -- long-polling ----------------------------------------------------------------------


async def test_held_connect_receives_a_publish(http: httpx.AsyncClient) -> None:
    alice = await handshake(http)
    await subscribe(http, alice, "/chat/*")
    held = asyncio.ensure_future(post(http, connect_message(alice, id="7")))
    await asyncio.sleep(0.2)
    assert not held.done()
    ack = await post(
        http, {"channel": "/chat/room", "data": {"text": "hi"}, "id": "p1", "ext": {"x": 1}}
    )
    assert ack == [{"id": "p1", "channel": "/chat/room", "successful": True}]
    replies = await asyncio.wait_for(held, 3)
    assert replies[0] == {
        "id": "7",
        "clientId": alice,
        "channel": "/meta/connect",
        "successful": True,
        "advice": {"reconnect": "retry", "interval": 0, "timeout": 2000},
    }
    assert replies[1:] == [
        {"channel": "/chat/room", "data": {"text": "hi"}, "id": "p1", "ext": {"x": 1}}
    ]


async def test_reply_headers_and_compact_body(http: httpx.AsyncClient) -> None:
    response = await http.post(
        MOUNT,
        content=b'{ "channel" : "/meta/p" }',
        headers={"content-type": "application/json; charset=UTF-8"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache, no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in response.headers
    body = b'[{"channel":"/meta/p","successful":false,"error":"403:/meta/p:Forbidden channel"}]'
    assert response.content == body
    assert response.headers["content-length"] == str(len(body))


async def test_lone_connect_answered_after_timeout(http: httpx.AsyncClient) -> None:
    alice = await handshake(http)
    started = asyncio.get_running_loop().time()
    replies = await post(http, connect_message(alice))
    elapsed = asyncio.get_running_loop().time() - started
    assert 1.8 < elapsed < 3.5
    assert replies == [
        {
            "clientId": alice,
            "channel": "/meta/connect",
            "successful": True,
            "advice": {"reconnect": "retry", "interval": 0, "timeout": 2000},
        }
    ]


async def test_cross_origin_form_post(http: httpx.AsyncClient) -> None:
    message = quote(json.dumps({"channel": "/meta/p"}))
    response = await http.post(
        MOUNT,
        content=f"message={message}",
        headers={"content-type": "text/plain;charset=UTF-8", "origin": "http://example.com"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://example.com"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.json()[0]["error"] == "403:/meta/p:Forbidden channel"


async def test_form_post_without_content_type(http: httpx.AsyncClient) -> None:
    message = quote(json.dumps([{"channel": "/x", "data": 1}]))
    response = await http.post(MOUNT, content=f"message={message}")
    assert response.status_code == 200
    assert response.json() == [{"channel": "/x", "successful": True}]


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ({"origin": "http://a.example"}, "http://a.example"),
        ({"referer": "http://b.example/page"}, "http://b.example/page"),
        ({}, "*"),
    ],
)
async def test_cors_preflight(
    http: httpx.AsyncClient, headers: dict[str, str], origin: str
) -> None:
    response = await http.options(MOUNT, headers=headers)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-allow-methods"] == "POST, GET"
    assert response.headers["access-control-max-age"] == "86400"
    assert "Pragma" in response.headers["access-control-allow-headers"]


async def test_jsonp(http: httpx.AsyncClient) -> None:
    message = json.dumps({"channel": "/line", "data": "a\u2028b"})
    response = await http.get(MOUNT, params={"message": message, "jsonp": "cb.fn_1"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["content-disposition"] == "attachment; filename=f.txt"
    assert response.headers["cache-control"] == "no-cache, no-store"
    assert response.content == b'/**/cb.fn_1([{"channel":"/line","successful":true}]);'
    default = await http.get(MOUNT, params={"message": json.dumps({"channel": "/meta/p"})})
    assert default.content.startswith(b"/**/jsonpcallback([")


async def test_jsonp_escapes_line_separators(http: httpx.AsyncClient) -> None:
    alice = await handshake(http)
    await subscribe(http, alice, "/lines")
    held = asyncio.ensure_future(
        http.get(MOUNT, params={"message": json.dumps(connect_message(alice)), "jsonp": "cb"})
    )
    await asyncio.sleep(0.2)
    await post(http, {"channel": "/lines", "data": "a\u2028b\u2029c"})
    response = await asyncio.wait_for(held, 3)
    assert b"a\\u2028b\\u2029c" in response.content
    assert "\u2028".encode() not in response.content


# -- bad input -------------------------------------------------------------------------


def assert_bad_request(response: httpx.Response, status: int = 400) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("body", [b"[ }", b"{", b"1", b'"text"', b"true", b"\xff\xfe", b""])
async def test_unparseable_json_bodies(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(
        MOUNT, content=body, headers={"content-type": "application/json", "origin": "http://x"}
    )
    assert_bad_request(response)


@pytest.mark.parametrize("form", ["message=%7B%5B", "message=1", "message=", "other=1", "%ff=%ff"])
async def test_bad_form_bodies(http: httpx.AsyncClient, form: str) -> None:
    response = await http.post(MOUNT, content=form, headers={"content-type": "text/plain"})
    assert_bad_request(response)


@pytest.mark.parametrize(
    "params",
    [
        {"message": "[ }", "jsonp": "cb"},
        {"message": '{"channel":"/meta/p"}', "jsonp": "42"},
        {"message": '{"channel":"/meta/p"}', "jsonp": "alert(1)//"},
        {"jsonp": "cb"},
    ],
)
async def test_bad_jsonp_requests(http: httpx.AsyncClient, params: dict[str, str]) -> None:
    assert_bad_request(await http.get(MOUNT, params=params))


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods(http: httpx.AsyncClient, method: str) -> None:
    assert_bad_request(await http.request(method, MOUNT, content=b"[]"))


async def test_oversized_body(http: httpx.AsyncClient) -> None:
    big = json.dumps({"channel": "/big", "data": "x" * (70 * 1024)})
    response = await http.post(MOUNT, content=big, headers={"content-type": "application/json"})
    assert_bad_request(response, 413)
    assert (await post(http, {"channel": "/small", "data": 1}))[0]["successful"]


async def test_null_body_and_odd_members(http: httpx.AsyncClient) -> None:
    assert await post(http, None) == []
    assert await post(http, []) == []
    # As in Faye: non-object members count as empty messages, null ones get no reply.
    replies = await post(http, [1, "x", None, {"channel": "invalid"}])
    assert replies == [
        {"successful": False, "error": "402:data:Missing required parameter"},
        {"successful": False, "error": "402:data:Missing required parameter"},
        {
            "channel": "invalid",
            "successful": False,
            "error": "402:data:Missing required parameter",
        },
    ]


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("/meta/subscribe/x", "403:/meta/subscribe/x:Forbidden channel"),
        ("/meta", "403:/meta:Forbidden channel"),
        ("/foo/*", "405:/foo/*:Invalid channel"),
        ("/fo o", "405:/fo o:Invalid channel"),
        ("nope", "405:nope:Invalid channel"),
    ],
)
async def test_bad_channels(http: httpx.AsyncClient, channel: str, error: str) -> None:
    (reply,) = await post(http, {"channel": channel, "data": 1})
    assert reply["successful"] is False
    assert reply["error"] == error


async def test_outside_the_mount_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/elsewhere")
    assert response.status_code == 404
    assert response.text == "Sure you're not looking for /faye ?"


async def test_client_vanishing_mid_connect_loses_nothing(
    http: httpx.AsyncClient, live: LiveServer, adapter: ASGIAdapter
) -> None:
    alice = await handshake(http)
    await subscribe(http, alice, "/vanish")
    body = json.dumps(connect_message(alice)).encode()
    raw = socket.create_connection(("127.0.0.1", live.port))
    raw.sendall(
        b"POST /faye HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await asyncio.sleep(0.3)
    assert adapter.proxy.has_connection(alice)
    raw.close()
    for _ in range(50):
        if not adapter.proxy.has_connection(alice):
            break
        await asyncio.sleep(0.02)
    assert not adapter.proxy.has_connection(alice)
    await post(http, {"channel": "/vanish", "data": "kept"})
    replies = await post(http, connect_message(alice))
    assert [r.get("data") for r in replies[1:]] == ["kept"]


async def test_superseded_connect_is_answered(http: httpx.AsyncClient) -> None:
    alice = await handshake(http)
    first = asyncio.ensure_future(post(http, connect_message(alice, id="1")))
    await asyncio.sleep(0.2)
    second = asyncio.ensure_future(post(http, connect_message(alice, id="2")))
    replies = await asyncio.wait_for(first, 1)
    assert replies[0]["id"] == "1" and replies[0]["successful"]
    await post(http, {"channel": "/nothing", "data": 1})
    assert (await asyncio.wait_for(second, 4))[0]["id"] == "2"


async def test_failed_connect_advises_handshake(http: httpx.AsyncClient) -> None:
    (reply,) = await post(http, connect_message("unknown"))
    assert reply == {
        "channel": "/meta/connect",
        "successful": False,
        "error": "401:unknown:Unknown client",
        "advice": {"reconnect": "handshake"},
    }


# -- static client ---------------------------------------------------------------------


async def test_client_script(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{MOUNT}/client.js")
    assert response.status_code == 200
    assert response.text == "window.Faye = {};\n"
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    etag = response.headers["etag"]
    again = await http.get(f"{MOUNT}/client.js", headers={"if-none-match": etag})
    assert again.status_code == 304
    assert (await http.get(f"{MOUNT}.js")).text == response.text
    source_map = await http.get(f"{MOUNT}/faye-browser-min.js.map")
    assert source_map.headers["content-type"] == "application/json; charset=utf-8"
    assert (await http.get(f"{MOUNT}/missing.js")).status_code == 404


async def test_no_client_script_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAYE_CLIENT_JS", raising=False)
    server = LiveServer(ASGIAdapter(mount=MOUNT)).start()
    try:
        async with httpx.AsyncClient(base_url=server.base) as client:
            assert (await client.get(f"{MOUNT}/client.js")).status_code == 404
    finally:
        server.stop()


async def test_vanishing_clients_leave_no_task_behind(
    http: httpx.AsyncClient, live: LiveServer
) -> None:
    alice = await handshake(http)
    await post(http, {"channel": "/warm", "data": 1})
    await asyncio.sleep(0.1)
    baseline = live.task_count()
    body = json.dumps(connect_message(alice)).encode()
    sockets = []
    for _ in range(20):
        raw = socket.create_connection(("127.0.0.1", live.port))
        raw.sendall(
            b"POST /faye HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        sockets.append(raw)
    await asyncio.sleep(0.3)
    assert live.task_count() > baseline
    for raw in sockets:
        raw.close()
    for _ in range(100):
        if live.task_count() <= baseline:
            break
        await asyncio.sleep(0.02)
    assert live.task_count() <= baseline

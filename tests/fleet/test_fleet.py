"""Several real ``faye serve`` processes sharing one real Redis, driven by real clients.

Faults are caused for real: servers are killed with SIGKILL and Redis is stopped and
started again while messages flow.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.support.balancer import Balancer
from tests.support.bayeux import connect_msg, post, ws_handshake
from tests.support.processes import FayeServer, start_client, wait_ready
from tests.support.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.interop

TIMEOUT = "3"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture(params=[1, 2], ids=["layout1", "layout2"])
def fleet(redis_server: RedisServer, request: pytest.FixtureRequest) -> Iterator[list[FayeServer]]:
    """Three servers on one Redis, on each key layout (the ``layout`` option)."""
    namespace = f"fleet-{uuid.uuid4().hex[:8]}"
    servers = [
        FayeServer(
            "--redis",
            redis_server.url,
            "--namespace",
            namespace,
            "--timeout",
            TIMEOUT,
            "--engine-option",
            "gc_interval=1",
            "--engine-option",
            f"layout={request.param}",
            "--log-level",
            "warning",
        )
        for _ in range(3)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_a_client_may_use_every_server(fleet: list[FayeServer]) -> None:
    a, b, c = (s.url for s in fleet)
    async with httpx.AsyncClient(timeout=10) as http:
        (hs,) = await post(
            http,
            a,
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            },
        )
        alice = hs["clientId"]
        subscribed = await post(
            http,
            b,
            [
                {
                    "channel": "/meta/subscribe",
                    "clientId": alice,
                    "subscription": ["/r/*", "/r/x", "/**"],
                },
                {
                    "channel": "/meta/connect",
                    "clientId": alice,
                    "connectionType": "long-polling",
                    "advice": {"timeout": 0},
                },
            ],
        )
        assert all(r["successful"] for r in subscribed), subscribed
        held = asyncio.ensure_future(
            post(
                http,
                c,
                {"channel": "/meta/connect", "clientId": alice, "connectionType": "long-polling"},
            )
        )
        await asyncio.sleep(0.3)
        assert not held.done()
        await post(http, a, {"channel": "/r/x", "data": "across", "id": "m1"})
        replies = await asyncio.wait_for(held, 5)
        assert replies[0]["successful"]
        assert replies[1:] == [{"channel": "/r/x", "data": "across", "id": "m1"}]
        # Nothing else is waiting: one copy per publish even with three matching subscriptions.
        again = await post(
            http,
            b,
            {
                "channel": "/meta/connect",
                "clientId": alice,
                "connectionType": "long-polling",
                "advice": {"timeout": 0},
            },
        )
        assert again[1:] == []
        bye = await post(http, a, {"channel": "/meta/disconnect", "clientId": alice})
        assert bye[0]["successful"]
        gone = await post(
            http,
            c,
            {"channel": "/meta/connect", "clientId": alice, "connectionType": "long-polling"},
        )
        assert gone[0]["error"] == f"401:{alice}:Unknown client"


CROSSINGS = [
    ("faye-node", "websocket", 0, "faye-ruby", "long-polling", 1, "/x/*"),
    ("faye-ruby", "websocket", 2, "faye-node", "long-polling", 0, "/x/**"),
    ("faye-node", "long-polling", 1, "faye-node", "websocket", 2, "/x/y"),
    ("faye-ruby", "long-polling", 1, "faye-ruby", "websocket", 0, "/**"),
]


@pytest.mark.parametrize(
    (
        "sub_client",
        "sub_transport",
        "sub_server",
        "pub_client",
        "pub_transport",
        "pub_server",
        "channel",
    ),
    CROSSINGS,
)
def test_real_clients_across_servers(
    fleet: list[FayeServer],
    sub_client: str,
    sub_transport: str,
    sub_server: int,
    pub_client: str,
    pub_transport: str,
    pub_server: int,
    channel: str,
) -> None:
    sub = start_client(
        sub_client, fleet[sub_server].url, "subscribe", channel, sub_transport, 3, linger=1
    )
    try:
        wait_ready(sub)
        pub = start_client(
            pub_client, fleet[pub_server].url, "publish", "/x/y", pub_transport, 3, data='{"k":"v"}'
        )
        _, pub_err = pub.communicate(timeout=60)
        assert pub.returncode == 0, pub_err
        out, err = sub.communicate(timeout=60)
        assert sub.returncode == 0, f"{out}\n{err}"
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.communicate()
    received = [json.loads(line) for line in out.splitlines()]
    assert [m["data"] for m in received] == [{"k": "v", "seq": i} for i in range(3)]


def collect_output(process: subprocess.Popen[str], wait: float) -> list[dict[str, Any]]:
    try:
        out, _ = process.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


async def publish_series(url: str, start: int, count: int, gap: float) -> list[int]:
    """Publish seq numbers over HTTP; returns the ones the server accepted."""
    accepted: list[int] = []
    async with httpx.AsyncClient(timeout=5) as http:
        for seq in range(start, start + count):
            try:
                reply = await post(http, url, {"channel": "/stream", "data": {"seq": seq}})
                if reply[0].get("successful"):
                    accepted.append(seq)
            except (httpx.HTTPError, AssertionError):
                pass
            await asyncio.sleep(gap)
    return accepted


async def test_killed_server_loses_no_message(fleet: list[FayeServer]) -> None:
    """SIGKILL the server holding a WebSocket client mid-stream; it reconnects elsewhere."""
    a, b, c = fleet
    balancer = Balancer([a.port, b.port], failover=True).start()
    try:
        sub = start_client(
            "faye-node",
            f"http://127.0.0.1:{balancer.port}/faye",
            "subscribe",
            "/stream",
            "websocket",
            10_000,
            timeout=40,
        )
        wait_ready(sub)
        first = await publish_series(c.url, 0, 20, 0.05)
        a.kill()
        rest = await publish_series(c.url, 20, 60, 0.05)
        await asyncio.sleep(2 * float(TIMEOUT))
        received = collect_output(sub, wait=0.5)
    finally:
        balancer.stop()
    assert len(first) == 20 and len(rest) == 60, "publishing through server C must not fail"
    seqs = [m["data"]["seq"] for m in received]
    assert set(first + rest) <= set(seqs), sorted(set(first + rest) - set(seqs))


async def test_redis_restart_recovers_by_itself(
    fleet: list[FayeServer], redis_server: RedisServer
) -> None:
    """Stop Redis mid-stream and start it again (empty): clients re-handshake and carry on."""
    a, b, _ = fleet
    sub = start_client("faye-node", a.url, "subscribe", "/stream", "websocket", 10_000, timeout=60)
    wait_ready(sub)
    await publish_series(b.url, 0, 10, 0.05)
    redis_server.stop()
    during = await publish_series(b.url, 100, 10, 0.1)
    redis_server.start()
    deadline = time.monotonic() + 30
    after: list[int] = []
    seq = 1000
    while time.monotonic() < deadline and len(after) < 20:
        after += await publish_series(b.url, seq, 10, 0.2)
        seq += 10
    received = collect_output(sub, wait=8)
    seqs = {m["data"]["seq"] for m in received}
    assert set(range(10)) <= seqs
    assert after, "publishing never recovered"
    assert during == [] or set(during) <= seqs
    # After recovery the subscriber is back (it re-handshook and re-subscribed).
    assert any(s >= 1000 for s in seqs), sorted(seqs)


async def test_client_of_a_vanished_server_is_collected(
    fleet: list[FayeServer], redis_server: RedisServer
) -> None:
    a, b, _ = fleet
    async with httpx.AsyncClient(timeout=10) as http:
        (hs,) = await post(
            http,
            a.url,
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            },
        )
        alice = hs["clientId"]
        await post(
            http, a.url, {"channel": "/meta/subscribe", "clientId": alice, "subscription": "/gc"}
        )
        a.kill()
        store = redis.Redis.from_url(redis_server.url)
        before = sum(1 for _ in store.scan_iter(match=f"*{alice}*"))
        assert before > 0
        deadline = time.monotonic() + 4 * float(TIMEOUT) + 5
        while time.monotonic() < deadline:
            if not any(store.scan_iter(match=f"*{alice}*")):
                break
            await asyncio.sleep(0.25)
        left = [k.decode() for k in store.scan_iter(match=f"*{alice}*")]
        assert left == [], left
        members = [
            k for k in store.scan_iter(match="*chan*") if alice.encode() in store.smembers(k)
        ]
        assert members == []
        (gone,) = await post(
            http,
            b.url,
            {"channel": "/meta/connect", "clientId": alice, "connectionType": "long-polling"},
        )
        assert gone["error"] == f"401:{alice}:Unknown client"


async def test_disconnect_on_one_server_closes_the_socket_on_another(
    fleet: list[FayeServer],
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    a, b, _ = fleet
    async with connect(f"ws://127.0.0.1:{a.port}/faye") as ws:
        alice = await ws_handshake(ws)
        await ws.send(json.dumps([connect_msg(alice)]))
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(timeout=5) as http:
            (bye,) = await post(http, b.url, {"channel": "/meta/disconnect", "clientId": alice})
        assert bye["successful"]
        frames = []
        with pytest.raises(ConnectionClosed):
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        # The held connect was answered before the socket closed.
        assert [r["channel"] for frame in frames for r in frame] == ["/meta/connect"]

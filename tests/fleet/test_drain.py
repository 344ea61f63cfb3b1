"""SIGTERM drains ``faye serve``: held clients are answered at once and handed on.

Real server processes get a real SIGTERM; clients are real sockets (httpx, websockets)
and, for the rolling restart, npm faye clients behind a TCP balancer.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.balancer import Balancer
from tests.support.bayeux import (
    connect_msg,
    exchange,
    polling_client,
    post,
    receive,
    ws_handshake,
)
from tests.support.processes import FayeServer, start_client, wait_ready
from tests.support.redis_server import RedisServer, running_redis

HOLD = "20"  # --timeout: a connect held this long, unless the drain answers it


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


def _server(redis_server: RedisServer, *extra: str) -> FayeServer:
    return FayeServer(
        "--redis",
        redis_server.url,
        "--namespace",
        f"drain-{uuid.uuid4().hex[:8]}",
        "--timeout",
        HOLD,
        "--log-level",
        "warning",
        *extra,
    )


async def _polling_client(http: httpx.AsyncClient, url: str) -> str:
    client_id = await polling_client(http, url)
    first = connect_msg(client_id, advice={"timeout": 0}, connectionType="long-polling")
    await post(http, url, first)
    return client_id


async def _stream_until_closed(url: str) -> float:
    """Hold an EventSource stream open; when the server ends it, the time it did."""
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", url, headers={"accept": "text/event-stream"}) as response,
    ):
        assert response.status_code == 200
        async for _ in response.aiter_bytes():
            pass
    return time.monotonic()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_answers_held_connects_and_closes_sockets(
    redis_server: RedisServer, workers: str
) -> None:
    server = _server(redis_server, "--workers", workers, "--drain-timeout", "5").start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            polling = [await _polling_client(http, server.url) for _ in range(3)]
            held = [
                asyncio.ensure_future(
                    post(http, server.url, connect_msg(cid, connectionType="long-polling"))
                )
                for cid in polling
            ]
            stream_client = await polling_client(http, server.url)
            stream = asyncio.ensure_future(_stream_until_closed(f"{server.url}/{stream_client}"))
            ws_url = f"ws://127.0.0.1:{server.port}/faye"
            async with connect(ws_url) as ws:
                ws_client = await ws_handshake(ws)
                await exchange(ws, [connect_msg(ws_client, advice={"timeout": 0})])
                await ws.send(json.dumps([connect_msg(ws_client)]))
                await asyncio.sleep(0.5)  # every connect is held now
                assert not any(task.done() for task in held)

                assert server.process is not None
                started = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                (ws_reply,) = await receive(ws, timeout=3)
                replies = await asyncio.wait_for(asyncio.gather(*held), 3)
                answered = time.monotonic() - started
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 3)
                stream_closed = await asyncio.wait_for(stream, 3) - started
            exit_code = await asyncio.to_thread(server.process.wait, 10)
            stopped = time.monotonic() - started

        for (reply,) in replies:
            assert reply["successful"] is True
            assert reply["advice"]["reconnect"] == "retry"
        assert ws_reply["successful"] is True and ws_reply["advice"]["reconnect"] == "retry"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        # Answered at once, not after the 20 s --timeout; the process then exits.
        assert answered < 2, answered
        assert stream_closed < 2, stream_closed  # the EventSource stream ended too
        assert stopped < 5, stopped
        # uvicorn re-raises the signal once it has shut down: a clean stop by SIGTERM.
        assert exit_code in (0, -signal.SIGTERM)
    finally:
        server.stop()


@pytest.mark.interop
async def test_a_rolling_restart_under_load_loses_nothing(redis_server: RedisServer) -> None:
    """Two servers behind a balancer, restarted one after the other while a publisher
    sends 50 messages a second to npm faye subscribers (two on WebSocket, two on
    long-polling): every subscriber gets every message."""
    namespace = f"rolling-{uuid.uuid4().hex[:8]}"
    servers = [
        FayeServer(
            "--redis",
            redis_server.url,
            "--namespace",
            namespace,
            "--timeout",
            "10",
            "--publish-rate",
            "0",
            "--log-level",
            "warning",
        ).start()
        for _ in range(2)
    ]
    balancer = Balancer([s.port for s in servers]).start()
    url = f"http://127.0.0.1:{balancer.port}/faye"
    channel = f"/rolling/{uuid.uuid4().hex[:8]}"
    subscribers = [
        start_client("faye-node", url, "subscribe", channel, transport, 10**6, timeout=300)
        for transport in ("websocket", "long-polling", "websocket", "long-polling")
    ]
    stops: list[float] = []
    try:
        for subscriber in subscribers:
            await asyncio.to_thread(wait_ready, subscriber)
        sent: list[int] = []
        retries = 0
        publishing = True

        async def publish() -> None:
            nonlocal retries
            seq = 0
            async with httpx.AsyncClient(timeout=10) as http:
                while publishing:
                    message = {"channel": channel, "data": {"seq": seq}, "clientId": "publisher"}
                    for _ in range(50):
                        try:
                            (reply,) = await post(http, url, message)
                            assert reply["successful"], reply
                            break
                        except httpx.TransportError:
                            retries += 1
                            await asyncio.sleep(0.05)
                    else:
                        raise AssertionError(f"publish {seq} failed 50 times")
                    sent.append(seq)
                    seq += 1
                    await asyncio.sleep(0.02)

        publisher = asyncio.ensure_future(publish())
        await asyncio.sleep(2)
        for server in servers:
            assert server.process is not None
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(server.process.wait, 15)
            stops.append(time.monotonic() - started)
            await asyncio.to_thread(server.start)
            await asyncio.sleep(2)
        publishing = False
        await publisher

        expected = set(sent)
        counts: list[dict[int, int]] = []
        for subscriber in subscribers:
            seen: dict[int, int] = {}
            deadline = time.monotonic() + 20
            assert subscriber.stdout is not None
            while time.monotonic() < deadline and not expected <= seen.keys():
                line = await asyncio.to_thread(subscriber.stdout.readline)
                if not line:
                    break
                seq = json.loads(line)["data"]["seq"]
                seen[seq] = seen.get(seq, 0) + 1
            counts.append(seen)
    finally:
        for subscriber in subscribers:
            subscriber.kill()
            subscriber.communicate()
        balancer.stop()
        for server in servers:
            server.stop()

    lost = [len(expected - seen.keys()) for seen in counts]
    duplicates = [sum(n - 1 for n in seen.values()) for seen in counts]
    print(
        f"rolling restart: {len(sent)} published, stops {[f'{s:.2f}s' for s in stops]}, "
        f"lost {lost}, duplicates {duplicates}, publish retries {retries}"
    )
    assert lost == [0, 0, 0, 0]
    # A message arrives twice only if its publish was sent twice (a retried request).
    assert sum(duplicates) <= retries, duplicates
    assert all(stop < 5 for stop in stops), stops  # not the 10 s --timeout
    assert len(sent) > 200


async def test_the_drain_is_bounded_by_drain_timeout(redis_server: RedisServer) -> None:
    """A request that never finishes (its body stops halfway) holds the drain up only
    until --drain-timeout; then the process exits anyway."""
    server = _server(redis_server, "--drain-timeout", "1").start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /faye HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n[{"
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        assert server.process is not None
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.process.wait, 10)
        stopped = time.monotonic() - started
        writer.close()
    finally:
        server.stop()
    assert 1 <= stopped < 4, stopped

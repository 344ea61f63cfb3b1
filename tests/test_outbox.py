"""The outbox's rules over a real TCP socket whose peer stops reading or goes away:
write then acknowledge, put back what a failed write did not carry, drop a client
that falls too far behind, close one that stalls. The server is real (memory engine),
so what is put back is what the client's next connect receives."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from faye.envelope import Envelope
from faye.server import Server
from faye.transport import outbox
from faye.transport.outbox import Outbox
from tests.support.server import make_server, poll, subscribed_client

SCOPE = {"type": "http", "headers": []}


class StreamOutbox(Outbox):
    """An outbox that writes each delivery group as one line to a TCP stream."""

    __slots__ = ("closed", "stream", "writer")

    def __init__(self, server: Server, client_id: str, stream: asyncio.StreamWriter) -> None:
        super().__init__(
            server, (SCOPE, None, None), client_id, max_queue=5, max_bytes=200_000, max_frame=10**6
        )
        self.stream = stream
        self.writer: asyncio.Task[None] | None = None
        self.closed = ""

    def close(self) -> None:
        self._closing = True

    def _wake(self) -> None:
        if self.writer is None or self.writer.done():
            self.writer = asyncio.ensure_future(self._write_queued())

    def _stalled(self) -> None:
        self.closed = "stalled"
        self._closing = True

    def _dropped(self) -> None:
        self.closed = "dropped"
        self._closing = True
        self.stream.transport.abort()

    async def _write_deliveries(self, messages: list[Envelope]) -> None:
        self.stream.write(b",".join(message.raw for message in messages) + b"\n")
        await self.stream.drain()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = await make_server(timeout=5)
    try:
        yield srv
    finally:
        await srv.proxy.close()


@pytest.fixture
async def peer() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A connected pair of small-buffered sockets: (what the client reads, what the
    server writes to). The client reads only when a test asks it to."""
    accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

    async def on_connect(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        writer.transport.set_write_buffer_limits(high=4096)
        accepted.set_result(writer)

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
    reader, client_writer = await asyncio.open_connection(sock=raw, limit=1024)
    server_writer = await accepted
    try:
        yield reader, server_writer
    finally:
        client_writer.close()
        server_writer.close()
        listener.close()


def deliveries(count: int, size: int) -> list[Envelope]:
    return [Envelope.from_message({"channel": "/x", "data": [n, "x" * size]}) for n in range(count)]


async def test_written_deliveries_are_acknowledged_after_the_write(
    server: Server, peer: Any
) -> None:
    reader, writer = peer
    client_id = await subscribed_client(server, "/x")
    box = StreamOutbox(server, client_id, writer)
    box.push(deliveries(2, 10))
    assert server.proxy.counts["deliveries"] == 0  # queued, not yet written
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line.count(b'"channel":"/x"') == 2
    await asyncio.wait_for(box.writer, 5)  # type: ignore[arg-type]
    assert server.proxy.counts["deliveries"] == 2


async def test_a_client_that_stops_reading_is_closed_and_its_messages_kept(
    server: Server, peer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "STALL_GRACE", 0.2)
    _, writer = peer
    client_id = await subscribed_client(server, "/x")
    box = StreamOutbox(server, client_id, writer)
    sent = deliveries(30, 5_000)
    for message in sent[:20]:  # 100 KB against 8 KB of socket buffers: the write blocks
        box.push([message])
    await asyncio.sleep(0.05)
    for message in sent[20:]:  # queued behind the blocked write, past max_queue
        box.push([message])
    await asyncio.sleep(0.5)
    assert box.closed == "stalled"
    assert server.limit_hits["stalled"] == 1
    assert server.proxy.counts["deliveries"] == 0
    kept = [m["data"][0] for m in (await poll(server, client_id))[1:]]
    assert kept == list(range(20, 30))  # what the blocked write holds is not put back twice
    box.writer.cancel()  # type: ignore[union-attr]


async def test_a_failed_write_puts_back_what_it_did_not_carry(server: Server, peer: Any) -> None:
    _, writer = peer
    client_id = await subscribed_client(server, "/x")
    box = StreamOutbox(server, client_id, writer)
    writer.transport.abort()  # the connection is gone before anything is written
    await asyncio.sleep(0)
    box.push(deliveries(3, 10))
    with pytest.raises((OSError, RuntimeError)):
        await asyncio.wait_for(box.writer, 5)  # type: ignore[arg-type]
    assert server.proxy.counts["deliveries"] == 0
    kept = [m["data"][0] for m in (await poll(server, client_id))[1:]]
    assert kept == [0, 1, 2]


async def test_a_client_too_far_behind_is_dropped_with_its_backlog(
    server: Server, peer: Any
) -> None:
    _, writer = peer
    client_id = await subscribed_client(server, "/x")
    box = StreamOutbox(server, client_id, writer)
    for message in deliveries(60, 5_000):  # 300 KB against a 200 KB bound
        box.push([message])
        if box.closed:
            break
    assert box.closed == "dropped"
    assert server.limit_hits["outbox_bytes"] == 1
    await asyncio.sleep(0.05)
    assert not await server.client_exists(client_id)

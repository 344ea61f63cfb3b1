"""HTTP header size, header timeout and connection cap of ``faye serve``, over raw sockets.

Each test runs a real ``faye serve`` process and checks that other clients are served
while one misbehaves.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.processes import FayeServer

HANDSHAKE = {
    "channel": "/meta/handshake",
    "version": "1.0",
    "supportedConnectionTypes": ["long-polling"],
}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def server() -> Iterator[FayeServer]:
    faye = FayeServer(
        "--header-timeout", "1", "--max-header-size", "16384", "--log-level", "warning"
    ).start()
    try:
        yield faye
    finally:
        faye.stop()


def handshake_time(url: str) -> float:
    start = time.perf_counter()
    response = httpx.post(url, json=HANDSHAKE, timeout=10)
    assert response.status_code == 200
    assert response.json()[0]["successful"]
    return time.perf_counter() - start


class Prober(threading.Thread):
    """Handshakes in a loop on its own connection; records each round trip."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.times: list[float] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.times.append(handshake_time(self.url))
            time.sleep(0.02)

    def __enter__(self) -> Prober:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.join(10)


def test_huge_header_is_refused_quickly(server: FayeServer) -> None:
    assert server.process is not None
    before = rss_bytes(server.process.pid)
    with Prober(server.url) as prober:
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /faye HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * 65536
            sent = 0
            try:
                while sent < 100 * 1024 * 1024:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the server closed the connection: what we want
            try:
                answer = sock.recv(4096)
            except OSError:
                answer = b""  # reset before we read it: also refused
        elapsed = time.perf_counter() - started
        time.sleep(0.2)
    assert sent < 10 * 1024 * 1024, f"the server read {sent} bytes of one header"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:80]
    assert elapsed < 3, elapsed
    assert rss_bytes(server.process.pid) - before < 30 * 1024 * 1024
    assert prober.times and max(prober.times) < 1.0, prober.times


def test_ordinary_requests_with_big_cookies_pass(server: FayeServer) -> None:
    response = httpx.post(server.url, json=HANDSHAKE, headers={"cookie": "s=" + "x" * 12000})
    assert response.status_code == 200


def test_slow_headers_are_dropped_after_the_timeout(server: FayeServer) -> None:
    slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    try:
        for sock in slow:
            sock.sendall(b"GET /faye HTTP/1.1\r\n")
        with Prober(server.url) as prober:
            started = time.perf_counter()
            # A trickle that never finishes the headers: one header line every 0.3 s.
            closed: set[int] = set()
            while len(closed) < len(slow) and time.perf_counter() - started < 5:
                for i, sock in enumerate(slow):
                    if i in closed:
                        continue
                    try:
                        sock.sendall(b"X-Slow: 1\r\n")
                        sock.settimeout(0.001)
                        data = sock.recv(4096)
                        if data == b"" or data.startswith(b"HTTP/1.1 408"):
                            closed.add(i)
                    except TimeoutError:
                        pass
                    except OSError:
                        closed.add(i)
                time.sleep(0.3)
            elapsed = time.perf_counter() - started
        assert len(closed) == len(slow)
        assert 0.8 < elapsed < 3.5, elapsed
        assert prober.times and max(prober.times) < 1.0, prober.times
    finally:
        for sock in slow:
            sock.close()


def test_silent_connections_are_dropped_too(server: FayeServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.perf_counter()
        answer = sock.recv(4096)
        elapsed = time.perf_counter() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 0.8 < elapsed < 3, elapsed


async def test_connection_cap_answers_503_then_recovers() -> None:
    server = FayeServer(
        "--max-connections", "20", "--header-timeout", "1.5", "--log-level", "error"
    ).start()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(25)]
    try:
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.post(server.url, json=HANDSHAKE)
            assert response.status_code == 503
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://127.0.0.1:{server.port}/faye"):
                    pass
            assert refused.value.response.status_code == 503
            await asyncio.sleep(1.6)  # the idle connections miss their header deadline
            response = await http.post(server.url, json=HANDSHAKE)
            assert response.status_code == 200
            async with connect(f"ws://127.0.0.1:{server.port}/faye") as ws:
                await ws.send("[]")
                assert await asyncio.wait_for(ws.recv(), 3) == "[]"
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_connections_far_over_the_cap_are_dropped_on_arrival() -> None:
    server = FayeServer(
        "--max-connections", "20", "--header-timeout", "5", "--log-level", "error"
    ).start()
    flood = []
    try:
        for _ in range(80):
            flood.append(socket.create_connection(("127.0.0.1", server.port)))
        time.sleep(0.5)
        dropped = 0
        for sock in flood:
            sock.settimeout(0.01)
            try:
                if sock.recv(1) == b"":
                    dropped += 1
            except TimeoutError:
                pass
            except OSError:
                dropped += 1
        # 20 within the cap and 32 more that would get a 503 are held; the rest are gone
        # long before the 5 s header timeout.
        assert 80 - dropped <= 20 + 32 + 2, dropped
        assert dropped >= 20
    finally:
        for sock in flood:
            sock.close()
        server.stop()

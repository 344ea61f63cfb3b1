"""Raw asyncio sockets for the load generator: a WebSocket (RFC 6455) and HTTP/1.1 POSTs.

No client library sits between the load generator and the server: a WebSocket frame
is parsed with a few byte operations, client frames use the all-zero mask key (legal
framing; servers unmask by XOR, which is then a no-op) and every Bayeux batch is
decoded once with orjson. The upgrade offers ``permessage-deflate`` as browsers do;
where a server accepts it, every frame we send is compressed (each on its own, which
any server's terms allow), and compressed frames we receive are inflated. This keeps
the generator's cost per delivery well below the servers', and ``python -m bench``
reports the generator's CPU so a reader can check.

Everything here is bounded: every wait has a timeout, every loop a count or a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import os
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

_ZERO_MASK = b"\x00\x00\x00\x00"
#: What Chromium and Firefox offer.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def deflate_message(payload: bytes) -> bytes:
    """One message compressed on its own (RFC 7692 7.2.1) with a 512-byte window, within
    any ``client_max_window_bits`` from 9 up (``faye serve`` asks for 12)."""
    compressor = zlib.compressobj(wbits=-9, memLevel=1)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]


class ProtocolError(Exception):
    pass


def split_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise ValueError(f"benchmarks only talk to 127.0.0.1, not {parts.hostname}")
    return parts.hostname, parts.port or 80, parts.path or "/"


class WebSocket(asyncio.Protocol):
    """A client WebSocket; ``on_message(payload: bytes)`` gets every text/binary message."""

    def __init__(self, host: str, port: int, path: str, on_message: Callable[[bytes], None]):
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self._on_message = on_message
        self._buf = bytearray()
        self._fragments: list[bytes] = []
        self._fragments_compressed = False
        #: Whether the server accepted permessage-deflate.
        self.deflate = False
        self._inflater: Any = None  # made at the first compressed frame we receive
        self._upgraded = False
        #: Bytes on the wire each way, frame headers included (the upgrade's too).
        self.bytes_in = self.bytes_out = 0
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(
        cls, url: str, on_message: Callable[[bytes], None], timeout: float = 10.0
    ) -> WebSocket:
        host, port, path = split_url(url)
        loop = asyncio.get_running_loop()
        protocol = cls(host, port, path, on_message)
        await asyncio.wait_for(
            loop.create_connection(lambda: protocol, host, port), timeout=timeout
        )
        try:
            await asyncio.wait_for(asyncio.shield(protocol.ready), timeout=timeout)
        except BaseException:
            protocol.abort()
            raise
        return protocol

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed during the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if not self._upgraded:
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > 65536:
                    self._fail(ProtocolError("oversized upgrade response"))
                return
            head = bytes(self._buf[:end])
            rest = bytes(self._buf[end + 4 :])
            self._buf.clear()
            if not head.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101")):
                self._fail(ProtocolError(f"upgrade refused: {head[:80]!r}"))
                return
            self._upgraded = True
            self.deflate = b"\r\nsec-websocket-extensions: permessage-deflate" in head.lower()
            if not self.ready.done():
                self.ready.set_result(None)
            if not rest:
                return
            data = rest
        if self._buf:
            self._buf += data
            data = bytes(self._buf)
            self._buf.clear()
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        pos = 0
        size = len(data)
        while size - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:  # servers must not mask; tolerate it anyway
                head += 4
            end = pos + head + length
            if end > size:
                break
            payload = data[pos + head : end]
            if b1 & 0x80:
                mask = data[pos + head - 4 : pos + head]
                payload = bytes(c ^ mask[i & 3] for i, c in enumerate(payload))
            pos = end
            opcode = b0 & 0x0F
            if opcode in (1, 2):
                if b0 & 0x80:
                    self._on_message(self._inflate(payload) if b0 & 0x40 else payload)
                else:
                    self._fragments = [payload]
                    self._fragments_compressed = bool(b0 & 0x40)
            elif opcode == 0:
                self._fragments.append(payload)
                if b0 & 0x80:
                    whole = b"".join(self._fragments)
                    self._fragments = []
                    self._on_message(self._inflate(whole) if self._fragments_compressed else whole)
            elif opcode == 9:
                self._control(0x8A, payload)
            elif opcode == 8:
                self._control(0x88, payload[:2])
                if self.transport is not None:
                    self.transport.close()
                return
        if pos < size:
            self._buf += data[pos:]

    def _inflate(self, payload: bytes) -> bytes:
        """A compressed message; the context is kept, as the server may take it over."""
        if self._inflater is None:
            self._inflater = zlib.decompressobj(wbits=-15)
        data: bytes = self._inflater.decompress(payload + _DEFLATE_TAIL)
        return data

    # -- sending ---------------------------------------------------------------------

    def _control(self, first: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes((first, 0x80 | len(payload))) + _ZERO_MASK + payload)

    def send(self, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionError("WebSocket is closed")
        first = 0x81
        if self.deflate:
            payload = deflate_message(payload)
            first = 0xC1  # RSV1: compressed
        size = len(payload)
        if size < 126:
            head = bytes((first, 0x80 | size))
        elif size < 65536:
            head = bytes((first, 0xFE)) + size.to_bytes(2, "big")
        else:
            head = bytes((first, 0xFF)) + size.to_bytes(8, "big")
        transport.write(head + _ZERO_MASK + payload)
        self.bytes_out += len(head) + 4 + size

    def close(self) -> None:
        """Send a close frame and drop the TCP connection (we do not wait for the echo)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(b"\x88\x82" + _ZERO_MASK + b"\x03\xe8")
            transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        self.abort()


class HttpConnection:
    """One keep-alive HTTP/1.1 connection for JSON POSTs (Content-Length or chunked replies)."""

    def __init__(self, url: str) -> None:
        self.host, self.port, self.path = split_url(url)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, timeout: float) -> bytes:
        return await asyncio.wait_for(self._post(body), timeout)

    async def _post(self, body: bytes) -> bytes:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(
            (
                f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Content-Type: application/json\r\nAccept: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip().lower()
        if "content-length" in headers:
            payload = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            chunks = []
            for _ in range(1_000_000):
                size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self._reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            payload = b"".join(chunks)
        else:
            payload = await self._reader.read()
            headers["connection"] = "close"
        if headers.get("connection") == "close":
            self.close()
        if len(status) < 2 or status[1] != "200":
            raise ProtocolError(f"HTTP {lines[0]}: {payload[:200]!r}")
        return payload

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

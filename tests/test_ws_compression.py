"""What a ``permessage-deflate`` offer gets under each ``ws_compression`` setting.

The clients are the ``websockets`` library's, offering compression the way browsers do
(``permessage-deflate; client_max_window_bits``). One of them is its sans-I/O protocol
on a plain socket, so the test sees the bytes of each frame it sends: when compression
was negotiated the frame must carry RSV1 (it is compressed) and still arrive intact.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from faye import ASGIAdapter
from faye.transport.uvicorn_websocket import COMPRESSION_SETTINGS
from tests.support.bayeux import connect_msg, receive, subscribed_socket
from tests.support.live_server import LiveServer

MOUNT = "/faye"
RSV1 = 0x40

#: The server's answer to a browser's offer, per setting (None: declined).
NEGOTIATED = {
    "off": None,
    "on": "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
    "no-context-takeover": "permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12",
}

#: Compressible, and not ASCII: a broken inflate shows up as a changed or missing message.
PAYLOAD = {"text": "héllo wörld ✓ " * 300, "list": list(range(200)), "nested": {"k": None}}


@pytest.fixture(params=COMPRESSION_SETTINGS)
def live(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    adapter = ASGIAdapter(mount=MOUNT, timeout=2, ws_compression=request.param)
    server = LiveServer(adapter).start()
    try:
        yield server
    finally:
        server.stop()


def setting_of(live: LiveServer) -> str:
    setting: str = live.app.ws_compression
    return setting


class FrameSocket:
    """A ``websockets`` sans-I/O client that keeps the wire bytes of each frame it sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{writer.get_extra_info('peername')[1]}{MOUNT}"),
            extensions=enable_client_permessage_deflate(None),
        )
        self.sent_headers: list[int] = []

    @classmethod
    async def open(cls, port: int) -> FrameSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self = cls(reader, writer)
        self.protocol.send_request(self.protocol.connect())
        self.writer.write(b"".join(self.protocol.data_to_send()))
        while self.protocol.state.name == "CONNECTING":
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "the server closed during the upgrade"
            self.protocol.receive_data(data)
        assert self.protocol.handshake_exc is None
        return self

    def negotiated(self) -> str | None:
        assert self.protocol.handshake_exc is None
        response = self.protocol.events_received()[0]
        return response.headers.get("Sec-WebSocket-Extensions")  # type: ignore[union-attr]

    def send(self, messages: Any) -> None:
        self.protocol.send_text(json.dumps(messages).encode())
        data = b"".join(self.protocol.data_to_send())
        self.sent_headers.append(data[0])
        self.writer.write(data)

    async def receive(self, timeout: float = 5) -> list[dict[str, Any]]:
        while True:
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    frame: list[dict[str, Any]] = json.loads(bytes(event.data))
                    return frame
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            assert data, "the server closed the socket"
            self.protocol.receive_data(data)

    def close(self) -> None:
        self.writer.close()


async def test_the_offer_gets_what_the_setting_says(live: LiveServer) -> None:
    async with connect(live.ws_base + MOUNT) as ws:  # offers permessage-deflate by default
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Extensions") == NEGOTIATED[setting_of(live)]


async def test_compressed_frames_from_the_client_arrive_intact(live: LiveServer) -> None:
    """Publishes sent compressed (when negotiated) reach a subscriber on another socket,
    unchanged, in order; with context takeover each later frame builds on the earlier."""
    compressing = NEGOTIATED[setting_of(live)] is not None
    async with connect(live.ws_base + MOUNT) as subscriber:
        await subscribed_socket(subscriber, "/squeeze")
        publisher = await FrameSocket.open(live.port)
        try:
            assert publisher.negotiated() == NEGOTIATED[setting_of(live)]
            publisher.send([{"channel": "/meta/handshake", "version": "1.0",
                             "supportedConnectionTypes": ["websocket"]}])  # fmt: skip
            (reply,) = await publisher.receive()
            client_id = reply["clientId"]
            for seq in range(3):
                publisher.send(
                    [
                        {
                            "channel": "/squeeze",
                            "clientId": client_id,
                            "data": {**PAYLOAD, "seq": seq},
                        }
                    ]
                )
                (ack,) = await publisher.receive()
                assert ack["successful"], ack
            assert all(bool(byte & RSV1) is compressing for byte in publisher.sent_headers)
            got: list[Any] = []
            while len(got) < 3:
                for message in await receive(subscriber, 5):
                    if message.get("channel") == "/squeeze":
                        got.append(message["data"])
                    elif message.get("channel") == "/meta/connect":
                        await subscriber.send(json.dumps([connect_msg(message["clientId"])]))
            assert got == [{**PAYLOAD, "seq": seq} for seq in range(3)]
        finally:
            publisher.close()


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="ws_compression must be one of off, on"):
        ASGIAdapter(ws_compression="fast")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--ws-compression", "fast"], {}, "invalid choice: 'fast'"),
        ([], {"FAYE_WS_COMPRESSION": "fast"}, "faye serve: ws_compression must be one of"),
    ],
)
def test_serve_refuses_unknown_setting_before_starting(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faye", "serve", "--port", "1", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert message in result.stderr

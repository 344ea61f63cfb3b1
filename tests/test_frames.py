"""Frames built by hand must be exactly what a WebSocket library builds and parses."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from faye.envelope import Envelope
from faye.transport.frames import delivery_frame, delivery_text, push_frame, text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_matches_websockets_at_every_length_boundary(size: int) -> None:
    payload = b"x" * size
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


def test_a_lone_delivery_frame_is_built_once_and_shared() -> None:
    envelope = Envelope.from_message({"channel": "/a", "data": "\u00e9"})
    first = delivery_frame([envelope])
    assert first is push_frame(envelope)
    assert first == text_frame(b"[" + envelope.raw + b"]")
    assert delivery_text([envelope]) is delivery_text([envelope])


def test_several_deliveries_share_one_array() -> None:
    a = Envelope.from_message({"channel": "/a", "data": 1})
    b = Envelope.from_message({"channel": "/b", "data": 2, "clientId": "gone"})
    assert delivery_text([a, b]) == '[{"channel":"/a","data":1},{"channel":"/b","data":2}]'
    assert delivery_frame([a, b]) == text_frame(delivery_text([a, b]).encode())

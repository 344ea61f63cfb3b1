"""WebSocket frames built once and written to every recipient.

Server-to-client frames are never masked (RFC 6455, 5.1), so the bytes of one text frame
serve every socket a message goes to: a fan-out frames each message once, and a server
that offers a direct write (:data:`WRITE_EXTENSION`) puts those bytes on each socket
without a coroutine per recipient.
"""

from __future__ import annotations

from collections.abc import Sequence

from faye.envelope import Envelope
from faye.transport.codec import encode_items

#: ``scope["extensions"][WRITE_EXTENSION]["write"](frame) -> bool``: write a frame made
#: by :func:`text_frame` now, or False when only ASGI ``send`` may (the handshake is not
#: done, the socket is closing, or the client is not reading); ``["abort"]()``: drop the
#: connection now, whether or not the client reads; ``["frames"](sink)``: from now on
#: hand each received message (bytes; text already checked as UTF-8) to ``sink`` as it
#: is parsed, instead of queueing it for ``receive`` (which then only reports the
#: disconnect), and return ``pause(flag)``, which stops (True) or resumes (False)
#: reading the socket while the sink has too much to work through. ``faye serve`` offers it
#: (:mod:`faye.transport.uvicorn_websocket`); other servers do not, and then every write
#: goes through ``send``.
WRITE_EXTENSION = "faye.websocket.write"

_FIN_TEXT = 0x81  # FIN bit and the text opcode: one whole, unfragmented text message


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame carrying ``payload`` (UTF-8)."""
    size = len(payload)
    if size < 126:
        header = bytes((_FIN_TEXT, size))
    elif size < 1 << 16:
        header = bytes((_FIN_TEXT, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((_FIN_TEXT, 127)) + size.to_bytes(8, "big")
    return header + payload


def push_frame(envelope: Envelope) -> bytes:
    """The whole frame pushing ``envelope`` alone (``[message]``), built once for all."""
    wire = envelope.wire
    if wire is None:
        wire = envelope.wire = text_frame(b"[" + envelope.raw + b"]")
    return wire


def push_text(envelope: Envelope) -> str:
    """``[message]`` as text, for ASGI ``send``; decoded once for all recipients."""
    text = envelope.wire_text
    if text is None:
        text = envelope.wire_text = f"[{envelope.text}]"
    return text


def delivery_frame(messages: Sequence[Envelope]) -> bytes:
    """The frame pushing ``messages`` together; a lone message's is shared."""
    if len(messages) == 1:
        return push_frame(messages[0])
    return text_frame(encode_items(messages))


def delivery_text(messages: Sequence[Envelope]) -> str:
    """:func:`delivery_frame`'s payload as text, for ASGI ``send``."""
    if len(messages) == 1:
        return push_text(messages[0])
    return "[" + ",".join(envelope.text for envelope in messages) + "]"

"""A published message encoded once and shared by every recipient.

Fan-out cost must not grow with JSON work per subscriber: the publisher's message
is serialised once (orjson) and the same bytes are spliced into every reply, frame
and Redis queue. A private dict is only made when an outgoing extension needs to
read or change a recipient's copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

Message = dict[str, Any]


class Envelope:
    """One delivered message (publisher's ``clientId`` removed), as bytes."""

    __slots__ = ("_frame", "_message", "_text", "_wire", "raw")

    def __init__(self, raw: bytes, message: Message | None = None) -> None:
        self.raw = raw
        self._message = message
        self._text: str | None = None
        self._frame: str | None = None
        self._wire: bytes | None = None

    @classmethod
    def from_message(cls, message: Message) -> Envelope:
        """Encode a publish for delivery; raises TypeError for data JSON cannot carry."""
        if "clientId" in message:
            message = {k: v for k, v in message.items() if k != "clientId"}
        return cls(orjson.dumps(message), message)

    @property
    def message(self) -> Message:
        """A read-only view; use :meth:`copy` before changing anything."""
        if self._message is None:
            self._message = orjson.loads(self.raw)
        return self._message

    @property
    def text(self) -> str:
        """The JSON as text (WebSocket text frames), decoded once for all recipients."""
        if self._text is None:
            self._text = self.raw.decode()
        return self._text

    @property
    def frame(self) -> str:
        """``[message]``: the frame pushing this message alone, built once."""
        if self._frame is None:
            self._frame = f"[{self.text}]"
        return self._frame

    @property
    def websocket_frame(self) -> bytes:
        """:attr:`frame` as a whole server-to-client WebSocket frame, built once."""
        if self._wire is None:
            self._wire = text_frame(b"[" + self.raw + b"]")
        return self._wire

    def copy(self) -> Message:
        """A private deep copy for one recipient's outgoing extensions."""
        copied: Message = orjson.loads(self.raw)
        return copied

    def __repr__(self) -> str:
        return f"Envelope({self.raw[:80]!r})"


Item = Message | Envelope


def encode_items(items: Iterable[Item]) -> bytes:
    """A JSON array of replies and deliveries; deliveries reuse their bytes."""
    parts = [item.raw if isinstance(item, Envelope) else orjson.dumps(item) for item in items]
    return b"[" + b",".join(parts) + b"]"


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame carrying ``payload`` (UTF-8).

    Server frames are never masked, so the same bytes can go to every recipient.
    """
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def as_dicts(items: Iterable[Item]) -> list[Message]:
    return [item.copy() if isinstance(item, Envelope) else item for item in items]

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

Message = dict[str, Any]


class Envelope:
    """One delivered message (publisher's ``clientId`` removed), as bytes."""

    __slots__ = ("_message", "_text", "raw", "wire", "wire_text")

    def __init__(self, raw: bytes, message: Message | None = None) -> None:
        self.raw = raw
        self._message = message
        self._text: str | None = None
        #: The push frame's bytes and text, built once by :mod:`faye.transport.frames`
        #: for every recipient; this module knows no wire format.
        self.wire: bytes | None = None
        self.wire_text: str | None = None

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
        """The JSON as text (for text frames and ASGI ``send``), decoded once for all recipients."""
        if self._text is None:
            self._text = self.raw.decode()
        return self._text

    def copy(self) -> Message:
        """A private deep copy for one recipient's outgoing extensions."""
        copied: Message = orjson.loads(self.raw)
        return copied

    def __repr__(self) -> str:
        return f"Envelope({self.raw[:80]!r})"


Item = Message | Envelope


def as_dicts(items: Iterable[Item]) -> list[Message]:
    return [item.copy() if isinstance(item, Envelope) else item for item in items]

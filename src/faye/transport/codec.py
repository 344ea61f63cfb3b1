"""The Bayeux JSON codec every transport shares: request bodies in, reply arrays out.

Decoding accepts what Faye's clients send (an object, an array, or ``null`` for no
message); anything else is the transport's 400, never a Bayeux error. Encoding splices a
delivery's already-encoded bytes into the array, so a fan-out serialises each message
once (:class:`faye.envelope.Envelope`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from faye.envelope import Envelope, Item
from faye.protocol import channels


class BadRequest(Exception):
    """The request cannot carry Bayeux messages; answered with HTTP 400."""


def decode_messages(text: str | bytes) -> Any:
    """Parse a request's JSON: an object or an array; ``null`` counts as no message."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("invalid JSON") from exc
    if value is None:
        return []
    if not isinstance(value, dict | list):
        raise BadRequest("JSON is not an object or an array")
    return value


def has_connect(messages: Any) -> bool:
    """Whether a decoded batch holds a ``/meta/connect`` (which may be held)."""
    batch = messages if isinstance(messages, list) else [messages]
    return any(isinstance(m, dict) and m.get("channel") == channels.CONNECT for m in batch)


def encode_items(items: Iterable[Item]) -> bytes:
    """A JSON array of replies and deliveries; deliveries reuse their bytes."""
    parts = [item.raw if isinstance(item, Envelope) else orjson.dumps(item) for item in items]
    return b"[" + b",".join(parts) + b"]"

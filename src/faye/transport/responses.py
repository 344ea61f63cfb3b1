"""Small ASGI response helpers shared by the HTTP transports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

TEXT_PLAIN = b"text/plain; charset=utf-8"
NO_CACHE = (b"cache-control", b"no-cache, no-store")
NOSNIFF = (b"x-content-type-options", b"nosniff")


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (names are lower-case in ASGI)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def respond(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def plain(send: Send, status: int, text: str) -> None:
    """A transport-level failure: plain text and, as in Faye, no CORS headers."""
    await respond(send, status, [(b"content-type", TEXT_PLAIN)], text.encode())


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes before reading them."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)

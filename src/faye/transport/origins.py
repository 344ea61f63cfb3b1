"""Which web origins may use the endpoint: CORS, JSON-P, EventSource and WebSocket alike.

A browser sends cookies with a cross-site POST, a JSON-P ``<script>`` and a WebSocket
handshake whatever CORS says, so a refused origin gets 403 before any message is
processed, not just a response without CORS headers. Faye trusts every origin; that
stays the default, and an allowlist turns the check on.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from faye.transport.responses import Scope, header


def origin_of(scope: Scope) -> str | None:
    """The request's origin: its ``Origin`` header, else the origin of its ``Referer``."""
    origin = header(scope, b"origin")
    if origin is not None:
        return origin.strip().lower()
    referer = header(scope, b"referer")
    if referer is None:
        return None
    try:
        parts = urlsplit(referer.strip())
    except ValueError:
        return "null"
    if not parts.scheme or not parts.netloc:
        return "null"
    return f"{parts.scheme}://{parts.netloc}".lower()


class OriginPolicy:
    """``patterns`` are shell-style (``https://*.example.com``, ``http://localhost:*``);
    None allows every origin. ``strict`` also refuses requests that carry neither
    ``Origin`` nor ``Referer`` (which is every non-browser client)."""

    __slots__ = ("patterns", "strict")

    def __init__(self, patterns: Iterable[str] | None = None, *, strict: bool = False) -> None:
        self.patterns = None if patterns is None else tuple(p.strip().lower() for p in patterns)
        self.strict = strict

    @property
    def open(self) -> bool:
        """Every request passes: Faye's behaviour, and the default."""
        return self.patterns is None and not self.strict

    def permits(self, scope: Scope) -> bool:
        if self.open:
            return True
        origin = origin_of(scope)
        if origin is None:
            return not self.strict
        if self.patterns is None:
            return True
        return any(fnmatchcase(origin, pattern) for pattern in self.patterns)

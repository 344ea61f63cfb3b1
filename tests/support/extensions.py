"""Server extensions for tests that load them by name (``faye serve --extension``)."""

from __future__ import annotations

import os
from typing import Any


class RequireToken:
    """Handshakes must carry ``ext.token`` equal to ``$FAYE_TEST_TOKEN``."""

    def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        if message.get("channel") == "/meta/handshake":
            ext = message.get("ext")
            token = ext.get("token") if isinstance(ext, dict) else None
            if token != os.environ["FAYE_TEST_TOKEN"]:
                message["error"] = "403::Invalid token"
        return message


class Broken:
    """Raises on messages to ``/boom`` (incoming) and on replies to ``/boom-out`` (outgoing)."""

    def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        if message.get("channel") == "/boom":
            raise RuntimeError("incoming extension bug")
        return message

    def outgoing(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        if message.get("channel") == "/boom-out":
            raise RuntimeError("outgoing extension bug")
        return message


def broken() -> Broken:
    return Broken()

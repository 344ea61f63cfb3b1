"""Serves the Faye browser client (``<mount>/client.js``) from a file the operator names.

The client is not part of this package: install the npm ``faye`` package and point
``client_script`` (or ``FAYE_CLIENT_JS``) at its ``client/faye-browser-min.js``.
"""

from __future__ import annotations

import hashlib
import os
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from faye.transport.responses import Scope, Send, header, respond


class StaticClient:
    def __init__(self, script: str | os.PathLike[str] | None, mount: str) -> None:
        self.script = Path(script) if script else None
        base = mount.rstrip("/").rsplit("/", 1)[-1]
        self._aliases = {"client.js", f"{base}.js"} if base else {"client.js"}
        self._cache: dict[Path, tuple[bytes, str, float]] = {}

    def resolve(self, name: str) -> Path | None:
        if self.script is None:
            return None
        if name in self._aliases:
            return self.script
        candidate = self.script.parent / Path(name).name
        return candidate if candidate.is_file() else None

    async def serve(self, scope: Scope, send: Send, name: str) -> None:
        path = self.resolve(name)
        if path is None or not path.is_file():
            await respond(send, 404, [(b"content-type", b"text/plain; charset=utf-8")])
            return
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached is None or cached[2] != mtime:
            content = path.read_bytes()
            cached = (content, hashlib.sha1(content).hexdigest(), mtime)
            self._cache[path] = cached
        content, etag, _ = cached
        kind = b"application/json" if path.suffix == ".map" else b"text/javascript"
        headers = [
            (b"etag", etag.encode()),
            (b"last-modified", formatdate(mtime, usegmt=True).encode()),
            (b"content-type", kind + b"; charset=utf-8"),
        ]
        if _not_modified(scope, etag, mtime):
            await respond(send, 304, headers)
        else:
            await respond(send, 200, headers, content)


def _not_modified(scope: Scope, etag: str, mtime: float) -> bool:
    if header(scope, b"if-none-match") == etag:
        return True
    since = header(scope, b"if-modified-since")
    if since:
        try:
            return parsedate_to_datetime(since).timestamp() >= int(mtime)
        except (TypeError, ValueError):
            return False
    return False

"""Server extensions: Faye's incoming/outgoing message pipelines.

An extension is any object with some of ``incoming(message, request)``,
``outgoing(message, request)``, ``added(server)`` and ``removed(server)``. The
pipelines return the (possibly changed) message, or ``None`` to drop it; either may
be a coroutine. To reject a message, set ``message["error"]`` and return it.
``request`` is ``None`` for the in-process client.
"""

from __future__ import annotations

import inspect
from typing import Any

from faye.envelope import Message


async def _run(stage: str, extensions: list[Any], message: Message, request: Any) -> Message | None:
    current: Message | None = message
    for extension in extensions:
        hook = getattr(extension, stage, None)
        if hook is None:
            continue
        result = hook(current, request)
        if inspect.isawaitable(result):
            result = await result
        current = result
        if current is None:
            return None
    return current


class Extensions:
    """The ordered extension list; both stages run in registration order."""

    def __init__(self) -> None:
        self._list: list[Any] = []
        self.has_incoming = False
        self.has_outgoing = False

    def add(self, extension: Any, host: Any) -> None:
        self._list.append(extension)
        self._refresh()
        added = getattr(extension, "added", None)
        if added is not None:
            added(host)

    def remove(self, extension: Any, host: Any) -> None:
        kept = [e for e in self._list if e is not extension]
        removed = len(self._list) - len(kept)
        self._list = kept
        self._refresh()
        hook = getattr(extension, "removed", None)
        for _ in range(removed if hook is not None else 0):
            hook(host)  # type: ignore[misc]

    def _refresh(self) -> None:
        self.has_incoming = any(hasattr(e, "incoming") for e in self._list)
        self.has_outgoing = any(hasattr(e, "outgoing") for e in self._list)

    async def incoming(self, message: Message, request: Any) -> Message | None:
        if not self.has_incoming:
            return message
        return await _run("incoming", list(self._list), message, request)

    async def outgoing(self, message: Message, request: Any) -> Message | None:
        if not self.has_outgoing:
            return message
        return await _run("outgoing", list(self._list), message, request)

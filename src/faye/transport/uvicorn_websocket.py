"""uvicorn's sans-I/O WebSocket protocol, plus one synchronous write of ready frames.

A fan-out sends the same message to thousands of sockets. Through plain ASGI every
recipient costs a coroutine (often a task) and a fresh encoding and framing of the same
text. Server-to-client frames are not masked, so one frame's bytes serve every
recipient: this protocol offers them a direct way onto the socket, as the scope
extension :data:`WRITE_EXTENSION`. Everything else (handshake, parsing, pings, close)
is uvicorn's and the ``websockets`` library's own.

``faye serve`` uses it; an app served by any other ASGI server, or by uvicorn with its
own protocols, simply takes the ordinary ``send`` path.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

#: ``scope["extensions"][WRITE_EXTENSION]["write"](frame) -> bool``
WRITE_EXTENSION = "faye.websocket.write"


class FayeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with :data:`WRITE_EXTENSION` in the scope."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if not self.close_sent:
            self.scope["extensions"][WRITE_EXTENSION] = {"write": self.write_frame}

    def write_frame(self, frame: bytes) -> bool:
        """Write a frame made by :func:`faye.envelope.text_frame` now; False when only ``send`` may.

        False while the handshake is unfinished, once a close was sent or received, and
        while the client is not reading (the transport paused our writes): the caller
        then queues and awaits ``send``, which waits for the socket to drain.
        """
        if (
            not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True

"""Graceful stop for ``faye serve``: on SIGTERM, hand every client to the other servers.

uvicorn's own shutdown waits for requests in progress, which for a Bayeux server means
each held ``/meta/connect`` runs to its ``--timeout``, and it closes WebSockets with
1012 before their queued deliveries are written. :class:`DrainingServer` puts a drain
first, so a stop takes about a round trip instead of a whole ``--timeout``:

1. stop accepting connections (the balancer sends new ones elsewhere);
2. make every HTTP connection the last request of its keep-alive connection, so a
   client's next request opens a new one, through the balancer, to another server;
3. let the engine stop handing messages out and record how far each client got
   (what arrives from then on waits for the client's next server);
4. answer every held connect at once with its deliveries and the usual ``reconnect:
   retry`` advice; connects that arrive meanwhile are answered at once too;
5. close each WebSocket and EventSource after what is queued for it is written
   (code 1000), so its client reconnects elsewhere with the same client id;
6. wait for those requests and sockets to end, at most ``--drain-timeout`` seconds in
   all, then let uvicorn cancel what is left, and the engine write its acknowledgements
   and leave (messages it handed out and saw no write of go to the clients' next
   connect on another server).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import multiprocess

log = logging.getLogger("faye.drain")

DEFAULT_DRAIN_TIMEOUT = 10.0

#: What uvicorn cancels after the drain is given, at least (seconds).
_LAST_GRACE = 0.5


def adapter_of(app: Any) -> Any:
    """The Faye adapter ``app`` is or wraps (uvicorn's middleware keep it as ``.app``)."""
    for _ in range(8):
        if hasattr(app, "proxy") and hasattr(app, "server") and hasattr(app, "open_connections"):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


async def drain(adapter: Any) -> None:
    """Answer the adapter's held connects and close its sockets; return once its
    requests and sockets are done (the caller bounds the wait)."""
    adapter.server.draining = True
    await adapter.proxy.hand_over()
    held = adapter.proxy.connections_held()
    adapter.proxy.flush_all()
    log.info("draining: answered %d held client(s)", held)
    while True:
        open_now = sum(adapter.open_connections.values())
        if open_now <= 0:
            return
        await asyncio.sleep(0.02)


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the drain above before its own shutdown; the config's
    ``timeout_graceful_shutdown`` bounds the whole (the drain and uvicorn's wait)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.config.timeout_graceful_shutdown
        drain_timeout = DEFAULT_DRAIN_TIMEOUT if timeout is None else float(timeout)
        deadline = loop.time() + drain_timeout
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            # HTTP only: idle keep-alive connections close, busy ones close after
            # their response. uvicorn's WebSocket shutdown would close at once.
            if isinstance(connection, HttpToolsProtocol | H11Protocol):
                connection.shutdown()
        adapter = adapter_of(getattr(self.config, "loaded_app", None))
        if adapter is not None and not self.force_exit:
            try:
                async with asyncio.timeout(drain_timeout):
                    await drain(adapter)
            except TimeoutError:
                left = sum(adapter.open_connections.values())
                log.warning("drain: %d connection(s) still open after %gs", left, drain_timeout)
        # uvicorn annotates it as int; it only ever reaches asyncio.timeout.
        remaining = max(deadline - loop.time(), _LAST_GRACE)
        self.config.timeout_graceful_shutdown = remaining  # type: ignore[assignment]
        await super().shutdown(sockets)


class _DrainingProcess(multiprocess.Process):
    """A ``--workers`` process that runs a :class:`DrainingServer`."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


class _Supervisor(multiprocess.Multiprocess):
    """uvicorn's supervisor, which also stops listening as soon as it is told to stop:
    the workers' own listening sockets are copies of its one, and connections would
    otherwise wait in its backlog until it exits, and then be reset."""

    def handle_term(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().handle_term()

    def handle_int(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().handle_int()


def run(app: Any, drain_timeout: float, **settings: Any) -> None:
    """``uvicorn.run(app, **settings)`` with a drain of at most ``drain_timeout`` seconds
    on SIGTERM or SIGINT, for one process or for each of ``workers``."""
    bound: Any = max(drain_timeout, 0.1)  # uvicorn annotates int; asyncio takes seconds
    config = uvicorn.Config(app, timeout_graceful_shutdown=bound, **settings)
    if config.workers > 1:
        # The supervisor builds its workers from this module global; the class travels
        # to each spawned worker by name, the config (and so the timeout) by value.
        multiprocess.Process = _DrainingProcess  # type: ignore[misc]
        _Supervisor(config, sockets=[config.bind_socket()]).run()
        return
    server = DrainingServer(config=config)
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's exit status for a server that never started

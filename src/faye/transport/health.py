"""``/healthz`` (the process answers) and ``/readyz`` (its engine answers too), for load
balancers and Kubernetes probes. Neither needs an Origin, and neither touches a client."""

from __future__ import annotations

import asyncio
import logging

from faye.transport.port import ServerPort
from faye.transport.responses import NO_CACHE, TEXT_PLAIN, Send, respond

log = logging.getLogger("faye.transport.health")

#: A client id no engine ever issues (ids are 31 base-36 digits): looking it up costs
#: the engine one round trip to its store and changes nothing.
PROBE_CLIENT_ID = "readiness-probe"


async def alive(send: Send) -> None:
    await respond(send, 200, [(b"content-type", TEXT_PLAIN), NO_CACHE], b"ok\n")


async def ready(send: Send, server: ServerPort, limit_seconds: float) -> None:
    """200 when the engine can be asked something within ``limit_seconds``, else 503."""
    try:
        await asyncio.wait_for(server.client_exists(PROBE_CLIENT_ID), limit_seconds)
    except Exception as exc:  # any failure of the store is "not ready", never a 500
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        log.warning("not ready: engine %s", reason)
        body = f"engine unreachable: {reason}\n".encode()
        await respond(send, 503, [(b"content-type", TEXT_PLAIN), NO_CACHE], body)
        return
    await respond(send, 200, [(b"content-type", TEXT_PLAIN), NO_CACHE], b"ready\n")

"""The fixtures of the Server.process tests (helpers: tests/support/server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from faye.adapter import ASGIAdapter
from faye.server import Server
from tests.support.server import TIMEOUT, Recorder, make_server


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = await make_server()
    try:
        yield srv
    finally:
        await srv.proxy.close()


@pytest.fixture
def events(server: Server) -> Recorder:
    return Recorder(server.proxy)


@pytest.fixture
async def adapter() -> AsyncIterator[ASGIAdapter]:
    """An adapter whose in-process clients the tests use."""
    adp = ASGIAdapter(mount="/faye", timeout=TIMEOUT)
    try:
        yield adp
    finally:
        await adp.close()

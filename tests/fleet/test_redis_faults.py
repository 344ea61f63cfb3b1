"""Redis faults under load, with real processes end to end.

Two ``faye serve --redis`` servers share one real redis-server behind the test balancer;
stock npm ``faye`` clients subscribe through it on WebSocket or long-polling; a publisher
sends 50 numbered messages a second to the servers in turn. Mid-stream Redis is
restarted (with and without its data) or stopped with SIGSTOP, or a server is killed
with SIGKILL. Each test asserts that no acknowledged publish is lost, bounds the time
until every subscriber receives again, and counts duplicates (see docs/redis.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import Fault, Figures, KillServer, RestartRedis, Scenario, StallRedis
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.interop

TRANSPORTS = ["websocket", "long-polling"]

#: Every subscriber receives again within this many seconds of Redis being back.
RECOVERY_BOUND = 5.0


@pytest.fixture(params=[1, 2], ids=["layout1", "layout2"])
def layout(request: pytest.FixtureRequest) -> int:
    """The engine's key layout (``layout`` option): every fault runs on both."""
    return int(request.param)


@pytest.fixture
def redis_without_persistence() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always").start()
    try:
        yield server
    finally:
        server.cleanup()


def run(
    redis: RedisServer,
    transport: str,
    fault: Fault,
    tmp_path: Path,
    layout: int,
    settle: float = 2.0,
    timeout: float = 25.0,
) -> Figures:
    # By default the servers' default hold (25 s): a held connect outlives the whole
    # test, so a client nothing wakes after the fault never receives again.
    options = {"layout": layout}
    scenario = Scenario(
        redis, transport, tmp_path, timeout=timeout, settle=settle, engine_options=options
    )
    figures = scenario.run(fault)
    print(f"{type(fault).__name__} {transport} layout {layout}: {figures.row()}")
    assert figures.recovery <= RECOVERY_BOUND, figures.row()
    assert figures.lost == 0, figures.missing
    return figures


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_redis_restarted_without_its_data(
    redis_without_persistence: RedisServer, transport: str, tmp_path: Path, layout: int
) -> None:
    """Clients' records are gone: every held client is told at once to handshake again."""
    fault = RestartRedis(2, persistent=False)
    figures = run(redis_without_persistence, transport, fault, tmp_path, layout)
    # Only what Redis held at the moment it died may be missing: at most the last
    # publishes before the crash (0.5 s of them), never one acknowledged after it.
    assert figures.crashed <= 25, figures.row()
    assert figures.duplicates == 0, figures.row()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_redis_restarted_with_its_data(
    persistent_redis: RedisServer, transport: str, tmp_path: Path, layout: int
) -> None:
    run(persistent_redis, transport, RestartRedis(2, persistent=True), tmp_path, layout)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_redis_stalled(
    redis_without_persistence: RedisServer, transport: str, tmp_path: Path, layout: int
) -> None:
    """A stall shorter than stall_timeout (10 s) delays publishes; none fails, none doubles.

    The servers hold connects for 2 s, so every client sends connects during the 3 s
    stall. Each must be answered before its client gives up on it (1.2 x the hold
    after sending): a Faye client that gives up closes its WebSocket, and what the
    server pushed to it meanwhile is lost although written. The stall is longer than
    0.6 x the hold, so the clients' last pings are older than the 1.6 x timeout they
    count as alive for when it ends: the outage must not count against them.
    """
    figures = run(
        redis_without_persistence, transport, StallRedis(3), tmp_path, layout, timeout=2.0
    )
    assert figures.gave_up == 0, figures.row()
    assert figures.failed == 0, figures.row()
    assert figures.duplicates == 0, figures.row()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_killed(
    redis_without_persistence: RedisServer, transport: str, tmp_path: Path, layout: int
) -> None:
    """Clients move to the other server at once; what the killed one had handed out
    and not acknowledged comes back once its heartbeat is 3 intervals old (6 s), hence
    the long settle: written ones as duplicates (at-least-once), the others late."""
    figures = run(redis_without_persistence, transport, KillServer(), tmp_path, layout, settle=10.0)
    # Only messages written in the last ACK_DELAY (layout 1) or cursor_interval (layout
    # 2), both 0.25 s, before the kill may come twice.
    assert figures.duplicates <= 0.25 * 50 * 5, figures.row()

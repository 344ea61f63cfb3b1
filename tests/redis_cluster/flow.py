"""Messages flowing between two servers while something breaks: what arrives, and when.

Server A publishes a numbered message every ``interval`` seconds on ``/flow``; every
subscriber is a client held by server B (a live push connection). The report says how
long publishing failed, the longest silence any subscriber saw, and, per subscriber,
which *accepted* publishes (the call returned without error) never arrived.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faye.envelope import Envelope
from faye.proxy import EngineProxy
from tests.redis.conftest import Fleet

#: The channel the flow publishes on.
FLOW_CHANNEL = "/flow"


class TimedSocket:
    """A push target recording when each message arrived."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, int]] = []
        self.closed = False

    def push(self, messages: Sequence[Envelope]) -> None:
        now = time.monotonic()
        for envelope in messages:
            self.arrivals.append((now, int(envelope.message["data"])))

    def close(self) -> None:
        self.closed = True


@dataclass
class FlowReport:
    sent: int = 0
    accepted: set[int] = field(default_factory=set)
    accepted_at: dict[int, float] = field(default_factory=dict)
    failed: list[tuple[float, int]] = field(default_factory=list)
    #: Longest time without any delivery, per subscriber (seconds).
    silences: list[float] = field(default_factory=list)
    #: Accepted messages a subscriber never received, per subscriber.
    lost: list[set[int]] = field(default_factory=list)
    duplicates: int = 0
    #: Messages whose publish failed yet reached some subscriber (a partial publish).
    failed_but_delivered: int = 0
    publish_outage: float = 0.0
    max_silence: float = 0.0
    affected: int = 0
    #: When the breaker was called (time.monotonic()).
    broken_at: float = 0.0

    def tail(self, seconds: float) -> set[int]:
        """Accepted messages published in the last ``seconds`` of the flow."""
        end = max(self.accepted_at.values(), default=0.0)
        return {s for s, at in self.accepted_at.items() if at > end - seconds}

    def assert_recovered(self, seconds: float = 3.0) -> None:
        """Publishing works again and everything accepted lately reached everyone."""
        tail = self.tail(seconds)
        assert len(tail) > 10, "publishing did not recover"
        if self.failed:
            assert min(tail) > self.failed[-1][1], "publishing did not recover"
        for missing in self.lost:
            assert not (missing & tail), "messages published after the failover were lost"

    def assert_loss_confined(self, before: float = 1.0, after: float = 0.5) -> None:
        """Only what the dead master accepted just before it died may be lost.

        Redis replicates asynchronously, so a master killed with SIGKILL can take writes
        it acknowledged with it; those were accepted within a moment of the kill. A
        message accepted earlier was already delivered, and one accepted later was
        written to the new master: losing either is a bug of ours, not of Redis.
        """
        assert self.broken_at, "the breaker never ran"
        for missing in self.lost:
            outside = sorted(
                s
                for s in missing
                if not self.broken_at - before <= self.accepted_at[s] <= self.broken_at + after
            )
            assert not outside, f"lost outside the failover window: {outside[:20]}"

    def summary(self) -> str:
        lost = sum(len(x) for x in self.lost)
        return (
            f"sent={self.sent} accepted={len(self.accepted)} failed={len(self.failed)} "
            f"publish_outage={self.publish_outage:.2f}s max_silence={self.max_silence:.2f}s "
            f"subscribers_silent_over_0.5s={self.affected}/{len(self.silences)} "
            f"lost={lost} duplicates={self.duplicates} "
            f"failed_but_delivered={self.failed_but_delivered}"
        )


async def attach_timed(proxy: EngineProxy, client_id: str) -> TimedSocket:
    socket = TimedSocket()
    proxy.open_socket(client_id, socket)
    await proxy.backend.ping(client_id)
    await proxy.backend.empty_queue(client_id)
    return socket


async def run_flow(
    fleet: Fleet,
    breaker: Callable[[], Any],
    *,
    subscribers: int = 24,
    interval: float = 0.01,
    before: float = 1.0,
    after: float = 8.0,
    drain: float = 4.0,
    options: dict[str, Any] | None = None,
) -> FlowReport:
    """Flow for ``before`` s, call ``breaker`` (in a thread), flow ``after`` s more, drain."""
    opts = {"retry_delay": 0.1, "gc_interval": None, **(options or {})}
    publisher = await fleet.proxy(timeout=60, **opts)
    holder = await fleet.proxy(timeout=60, **opts)
    sockets: list[TimedSocket] = []
    for _ in range(subscribers):
        client_id = await holder.create_client()
        await holder.subscribe(client_id, FLOW_CHANNEL)
        sockets.append(await attach_timed(holder, client_id))

    report = FlowReport()
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + before + after
    broken = loop.create_task(asyncio.sleep(before))
    break_task: asyncio.Future[Any] | None = None
    seq = 0
    started = time.monotonic()
    while loop.time() < stop_at:
        if broken.done() and break_task is None:
            report.broken_at = time.monotonic()
            break_task = loop.run_in_executor(None, breaker)
        seq += 1
        report.sent += 1
        try:
            await asyncio.wait_for(publisher.publish({"channel": FLOW_CHANNEL, "data": seq}), 3)
        except Exception:
            report.failed.append((time.monotonic(), seq))
        else:
            report.accepted.add(seq)
            report.accepted_at[seq] = time.monotonic()
        await asyncio.sleep(interval)
    if break_task is not None:
        await break_task
    await asyncio.sleep(drain)
    ended = time.monotonic()

    if report.failed:
        report.publish_outage = report.failed[-1][0] - report.failed[0][0] + interval
    failed_seqs = {s for _, s in report.failed}
    delivered_failed: set[int] = set()
    for socket in sockets:
        got = [s for _, s in socket.arrivals]
        report.duplicates += len(got) - len(set(got))
        report.lost.append(report.accepted - set(got))
        delivered_failed |= set(got) & failed_seqs
        times = [started] + [t for t, _ in socket.arrivals]
        last_seq_time = ended - drain
        silence = max(b - a for a, b in zip(times, [*times[1:], last_seq_time], strict=True))
        report.silences.append(silence)
    report.failed_but_delivered = len(delivered_failed)
    report.max_silence = max(report.silences, default=0.0)
    report.affected = sum(1 for s in report.silences if s > 0.5)
    return report

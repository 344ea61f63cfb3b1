"""What one load-generator worker does: subscribe, publish, collect, churn.

Each worker is a forked process running one uvloop event loop (bench/pool.py); the
runner sends it commands (``("subscribe", spec)``, ``("publish", spec)``, ...) and reads
one reply per command. Workers share delivery counters with the publishers through
shared memory, so a flat-out publisher can keep a bounded number of messages in
flight (closed loop) without any message passing.

Message data carries ``ph`` (phase id), ``s`` (sequence number, per channel) and ``t``
(``time.time()`` at publish); publish-to-delivery latency is receive time minus ``t``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections.abc import Sequence
from typing import Any

from bench.bayeux import BayeuxClient

SharedCounter = Any  # multiprocessing RawValue('q')

#: Clients opened at once per worker: keeps listen backlogs from overflowing.
CONNECT_CONCURRENCY = 64


class Recorder:
    """What one subscriber received in the current phase."""

    __slots__ = ("counts", "worker")

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.counts = bytearray()

    def on_data(self, data: dict[str, Any], now: float) -> None:
        worker = self.worker
        if data.get("ph") != worker.phase:
            worker.stale += 1
            return
        seq = data["s"]
        counts = self.counts
        if seq >= len(counts):
            if seq > 10_000_000:
                return
            counts.extend(bytes(max(seq + 1 - len(counts), len(counts))))
        if counts[seq] < 255:
            counts[seq] += 1
        worker.latencies.append(now - data["t"])
        worker.received.value += 1
        worker.last_arrival = now


class Worker:
    def __init__(
        self, index: int, counters: Sequence[SharedCounter], publishers: Sequence[SharedCounter]
    ) -> None:
        self.index = index
        self.counters = counters
        self.publishers = publishers
        self.received = counters[index]
        self.published = publishers[index]
        self.phase = ""
        self.stale = 0
        self.latencies = array("d")
        self.last_arrival = 0.0
        self.clients: list[BayeuxClient] = []
        self.recorders: list[Recorder] = []
        self.channels: list[str] = []

    # -- subscribers -----------------------------------------------------------------

    async def subscribe(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Open, handshake, subscribe and start connecting every client of the spec.

        spec: {"clients": [[global_index, url, channel], ...], "transport": str,
        "deadline": seconds}
        """
        deadline = time.monotonic() + spec["deadline"]
        errors: list[str] = []
        deflated: list[int] = []  # clients whose compression offer was accepted
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
        started = time.monotonic()

        async def one(index: int, url: str, channel: str) -> None:
            async with sem:
                left = deadline - time.monotonic()
                if left <= 0:
                    errors.append("deadline")
                    return
                recorder = Recorder(self)
                client = BayeuxClient(url, spec.get("transport", "websocket"), recorder.on_data)
                try:
                    await client.open(timeout=min(left, 10))
                    await client.handshake(timeout=min(left, 10))
                    await client.subscribe(channel, timeout=min(left, 10))
                except Exception as exc:
                    client.close()
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                client.start_connecting()
                if client.deflate:
                    deflated.append(index)
                self.clients.append(client)
                self.recorders.append(recorder)
                self.channels.append(channel)

        await asyncio.gather(*(one(*c) for c in spec["clients"]))
        return {
            "deflate": len(deflated),
            "connected": len(spec["clients"]) - len(errors),
            "errors": len(errors),
            "first_errors": errors[:3],
            "seconds": time.monotonic() - started,
        }

    def begin(self, phase: str) -> dict[str, Any]:
        self.phase = phase
        self.stale = 0
        self.latencies = array("d")
        self.last_arrival = 0.0
        self.received.value = 0
        self.published.value = 0
        for recorder in self.recorders:
            recorder.counts = bytearray()
        return {"ok": True}

    async def collect(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Wait until every expected delivery arrived (or the deadline), then report.

        spec: {"expected": {channel: messages published to it}, "deadline": s, "settle": s}
        """
        expected: dict[str, int] = spec["expected"]
        per_client = [expected.get(channel, 0) for channel in self.channels]
        total = sum(per_client)
        deadline = time.monotonic() + spec["deadline"]
        for _ in range(1_000_000):
            if self.received.value >= total or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(spec.get("settle", 0.0))  # late duplicates
        lost = duplicated = 0
        for recorder, want in zip(self.recorders, per_client, strict=True):
            counts = recorder.counts
            have = len(counts)
            lost += want - sum(1 for c in counts[:want] if c)
            duplicated += sum(c - 1 for c in counts if c > 1)
            duplicated += sum(1 for c in counts[want:have] if c)  # never published
        return {
            "expected": total,
            "delivered": len(self.latencies),
            "lost": lost,
            "duplicated": duplicated,
            "stale": self.stale,
            "last_arrival": self.last_arrival,
            "latencies": self.latencies.tobytes(),
            "connect_failures": sum(c.failures for c in self.clients),
            "rehandshakes": sum(c.rehandshakes for c in self.clients),
        }

    async def close_all(self, spec: Any = None) -> dict[str, Any]:
        """Leave like real clients: /meta/disconnect (unless told not to), then close.

        Without the disconnect the servers would keep the clients until their GC runs,
        and that clean-up would land in the Redis counts of a later phase.
        """
        clients = self.clients
        self.clients, self.recorders, self.channels = [], [], []
        if clients and not (spec or {}).get("abrupt"):
            sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

            async def leave(client: BayeuxClient) -> None:
                async with sem:
                    with contextlib.suppress(Exception):
                        await client.disconnect_nowait()

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(leave(c) for c in clients)), 30)
            await asyncio.sleep(0.5)  # let the servers process the disconnects
        for client in clients:
            client.close()
        return {"closed": len(clients)}

    # -- publisher -------------------------------------------------------------------

    async def publish(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Publish for ``duration`` seconds, at ``rate`` per second or flat out.

        spec: {"url", "targets": [[channel, fanout], ...] (round robin), "phase",
        "duration", "rate" (0 = flat out), "window" (messages in flight when flat out),
        "batch" (publishes per frame when flat out), "payload" (bytes), "deadline"}
        Flat out is closed-loop: published*fanout - delivered (all workers) stays below
        window*fanout, so the servers' queues cannot grow without bound.
        """
        client = BayeuxClient(spec["url"])
        ack_times: dict[str, float] = {}
        client.on_ack = lambda message, _: ack_times.pop(message.get("id", ""), None)
        await client.open()
        await client.handshake()
        targets: list[tuple[str, int]] = [(c, int(f)) for c, f in spec["targets"]]
        seqs = [0] * len(targets)
        payload = "x" * spec["payload"]
        phase = spec["phase"]
        rate = float(spec["rate"])
        duration = float(spec["duration"])
        window = int(spec.get("window", 20))
        batch = max(1, int(spec.get("batch", 1)))
        counters = self.counters
        publishers = self.publishers
        published = 0
        weight = 0  # deliveries expected from what this publisher sent
        next_target = 0
        self.published.value = 0
        start = time.monotonic()
        first_t = time.time()
        end = start + duration
        max_messages = int(spec.get("max_messages", 10_000_000))

        def make(n: int) -> list[dict[str, Any]]:
            nonlocal next_target, published, weight
            out = []
            now = time.time()
            for _ in range(n):
                k = next_target
                next_target = (k + 1) % len(targets)
                channel, fanout = targets[k]
                out.append(
                    {
                        "channel": channel,
                        "data": {"ph": phase, "s": seqs[k], "t": now, "p": payload},
                    }
                )
                seqs[k] += 1
                weight += fanout
            published += n
            self.published.value = weight
            return out

        def send(messages: list[dict[str, Any]]) -> None:
            client.publish(messages)
            now = time.time()
            for m in messages:
                ack_times[m["id"]] = now

        mean_fanout = max(sum(f for _, f in targets) / len(targets), 1.0)
        for _ in range(100_000_000):
            now = time.monotonic()
            if now >= end:
                break
            if published >= max_messages:  # an idle window: publish nothing
                await asyncio.sleep(min(0.05, end - now))
                continue
            if rate > 0:
                due = min(int((now - start) * rate) + 1 - published, 1000)
                if due > 0:
                    send(make(due))
                await asyncio.sleep(max(0.0, start + (published / rate) - time.monotonic()))
                continue
            in_flight = sum(p.value for p in publishers) - sum(c.value for c in counters)
            room = int((window * mean_fanout - in_flight) / mean_fanout)
            if room <= 0 or len(ack_times) > 4 * window:
                await asyncio.sleep(0.002)  # uvloop timers have 1 ms resolution
                continue
            send(make(min(room, batch)))
            await asyncio.sleep(0)
        # Let the acknowledgements of the last publishes arrive (bounded).
        ack_deadline = time.monotonic() + spec.get("deadline", 10.0)
        for _ in range(1_000_000):
            if client.acks + client.failures >= published or time.monotonic() > ack_deadline:
                break
            await asyncio.sleep(0.005)
        client.close()
        return {
            "published": published,
            "acks": client.acks,
            "failed": client.failures,
            "first_t": first_t,
            "seqs": {c: s for (c, _), s in zip(targets, seqs, strict=True)},
        }

    # -- churn -----------------------------------------------------------------------

    async def churn(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Cycles of open, handshake, subscribe, disconnect, close for ``duration`` s.

        spec: {"urls": [...], "transport", "concurrency", "duration", "prefix"}
        """
        urls = spec["urls"]
        end = time.monotonic() + spec["duration"]
        cycles = array("d")
        errors: list[str] = []

        async def loop(k: int) -> None:
            for n in range(10_000_000):
                if time.monotonic() >= end:
                    return
                started = time.monotonic()
                client = BayeuxClient(urls[(k + n) % len(urls)], spec.get("transport", "websocket"))
                try:
                    await client.open(timeout=10)
                    await client.handshake(timeout=10)
                    await client.subscribe(f"{spec['prefix']}/{self.index}/{k}", timeout=10)
                    await client.disconnect(timeout=10)
                    cycles.append(time.monotonic() - started)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.05)
                finally:
                    client.close()

        started = time.monotonic()
        await asyncio.gather(*(loop(k) for k in range(spec["concurrency"])))
        return {
            "cycles": len(cycles),
            "errors": len(errors),
            "first_errors": errors[:3],
            "seconds": time.monotonic() - started,
            "cycle_latencies": cycles.tobytes(),
        }

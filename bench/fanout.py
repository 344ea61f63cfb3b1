"""Fan-out benchmark: S WebSocket subscribers on one channel, one publisher, one server.

    python bench/fanout.py --subscribers 200 --messages 500 --rate 200

Starts ``faye serve`` (memory engine) in a subprocess, or uses ``--url`` for a
server already running, then reports deliveries per second, publish-to-delivery
latency, lost and duplicated deliveries, and the CPU seconds the server and the
load generator each spent per 1000 deliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Publisher, Subscriber, percentile

ROOT = Path(__file__).resolve().parent.parent


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_up(port: int, deadline: float = 15.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server: subprocess.Popen[bytes] | None = None
    url = args.url
    if url is None:
        port = free_port()
        server = subprocess.Popen(
            [
                *[sys.executable, "-m", "faye", "serve", "--port", str(port)],
                *["--log-level", "warning", "--publish-rate", "0"],  # measure, not throttle
            ],
            cwd=ROOT,
        )
        await wait_until_up(port)
        url = f"ws://127.0.0.1:{port}/faye"
    try:
        subscribers = [Subscriber(url, "/bench/fanout") for _ in range(args.subscribers)]
        for start in range(0, len(subscribers), 50):
            await asyncio.gather(*(s.start() for s in subscribers[start : start + 50]))
        publisher = Publisher(url)
        await publisher.start()
        payload = "x" * args.payload
        server_cpu0 = process_cpu_seconds(server.pid) if server else 0.0
        own_cpu0 = own_cpu_seconds()
        started = time.monotonic()
        interval = 1.0 / args.rate if args.rate else 0.0
        for seq in range(args.messages):
            await publisher.publish("/bench/fanout", seq, payload)
            if interval:
                await asyncio.sleep(max(0.0, started + (seq + 1) * interval - time.monotonic()))
        expected = args.messages * args.subscribers
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            if sum(len(s.latencies) for s in subscribers) >= expected:
                break
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        server_cpu = (process_cpu_seconds(server.pid) - server_cpu0) if server else float("nan")
        own_cpu = own_cpu_seconds() - own_cpu0
        latencies = [x for s in subscribers for x in s.latencies]
        delivered = len(latencies)
        lost = sum(1 for s in subscribers for seq in range(args.messages) if seq not in s.seen)
        duplicated = sum(n - 1 for s in subscribers for n in s.seen.values() if n > 1)
        await publisher.stop()
        await asyncio.gather(*(s.stop() for s in subscribers))
        return {
            "subscribers": args.subscribers,
            "messages": args.messages,
            "offered_rate": args.rate,
            "deliveries": delivered,
            "elapsed_s": round(elapsed, 3),
            "deliveries_per_s": round(delivered / elapsed, 1),
            "publish_acks": publisher.acks,
            "latency_ms": {q: round(percentile(latencies, q) * 1000, 2) for q in (50, 90, 99, 100)},
            "lost": lost,
            "duplicated": duplicated,
            "server_cpu_s_per_1000": round(server_cpu / max(delivered, 1) * 1000, 4),
            "loadgen_cpu_s_per_1000": round(own_cpu / max(delivered, 1) * 1000, 4),
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", help="ws:// URL of a running server (default: start one)")
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument(
        "--rate", type=float, default=200.0, help="publishes per second; 0 = flat out"
    )
    parser.add_argument("--payload", type=int, default=64, help="bytes of filler per message")
    parser.add_argument("--drain", type=float, default=20.0, help="seconds to wait for stragglers")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()

"""``python -m bench memory``: where an idle WebSocket client's memory goes.

    python -m bench memory --clients 2000          # tracemalloc inside faye serve
    python -m bench memory --clients 5000 --floor  # uvicorn with a do-nothing app

Runs ``faye serve`` (memory engine, or ``--redis URL``) in a child process with
tracemalloc on, connects N idle clients (handshake, subscribe, held /meta/connect)
from a load-generator worker, then prints the Python allocations that grew, per
source line, divided by N, next to the RSS growth per client. RSS minus traced
Python memory is C-level memory: uvloop/libuv handles and buffers, the allocator's
overhead and fragmentation. ``--floor`` measures the same RSS growth under uvicorn
(websockets-sansio, as ``faye serve`` runs it) with an ASGI app that does nothing: the
floor under any ASGI Bayeux server's memory per idle connection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.measure import rss_bytes
from bench.pool import WorkerPool
from bench.setups import ROOT, wait_port
from tests.support.redis_server import free_port


def serve_with_tracemalloc(argv: list[str], out: Path) -> None:
    """The child: faye serve, with SIGUSR2 = baseline snapshot, SIGUSR1 = report."""
    tracemalloc.start(10)
    state: dict[str, tracemalloc.Snapshot] = {}

    def baseline(*_: object) -> None:
        state["base"] = tracemalloc.take_snapshot()
        out.with_suffix(".base").write_text("ok")

    def owner_of(traceback: tracemalloc.Traceback) -> str:
        """The innermost frame in faye, uvicorn or websockets: who asked for the object
        (an asyncio.Queue made by uvicorn counts as uvicorn's)."""
        for frame in reversed(traceback):  # most recent call first
            name = frame.filename
            if "/faye/" in name or "uvicorn" in name or "/websockets/" in name:
                return f"{name.split('site-packages/')[-1].split('/src/')[-1]}:{frame.lineno}"
        return "other (interpreter, asyncio internals)"

    def by_owner(snapshot: tracemalloc.Snapshot) -> dict[str, list[int]]:
        owners: dict[str, list[int]] = {}
        for trace in snapshot.traces:
            entry = owners.setdefault(owner_of(trace.traceback), [0, 0])
            entry[0] += trace.size
            entry[1] += 1
        return owners

    def report(*_: object) -> None:
        snapshot, base = tracemalloc.take_snapshot(), state["base"]
        stats = snapshot.compare_to(base, "lineno")
        lines = [f"== by line: total {sum(s.size_diff for s in stats)}"]
        lines += [f"{s.size_diff}\t{s.count_diff}\t{s.traceback[0]}" for s in stats[:30]]
        now, before = by_owner(snapshot), by_owner(base)
        grown = {
            k: (v[0] - before.get(k, [0, 0])[0], v[1] - before.get(k, [0, 0])[1])
            for k, v in now.items()
        }
        lines.append(f"== by owner: total {sum(v[0] for v in grown.values())}")
        for owner, (size, count) in sorted(grown.items(), key=lambda kv: -kv[1][0])[:25]:
            lines.append(f"{size}\t{count}\t{owner}")
        out.write_text("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR2, baseline)
    signal.signal(signal.SIGUSR1, report)
    from faye.cli import main

    main(argv)


async def idle_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that accepts a WebSocket and then only waits for its end."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


def serve_floor(port: int) -> None:
    import uvicorn

    uvicorn.run(
        idle_app,
        port=port,
        ws="websockets-sansio",
        log_level="warning",
        ws_ping_interval=None,
        lifespan="off",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--redis", default=None, help="redis:// URL (default: memory engine)")
    parser.add_argument("--floor", action="store_true", help="uvicorn, do-nothing app")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def connect(pool: WorkerPool, url: str, first: int, last: int) -> None:
    """Idle clients ``first`` to ``last`` (handshake, subscribe, held connect)."""
    shares: list[list[tuple[int, str, str]]] = [[] for _ in pool.workers]
    for i in range(first, last):
        shares[i % len(shares)].append((i, url, f"/idle/{i}"))
    for worker, share in zip(pool.workers, shares, strict=True):
        worker.send("subscribe", {"clients": share, "deadline": 300})
    for worker in pool.workers:
        reply = worker.reply(330)
        if reply["errors"]:
            print("connect errors:", reply["first_errors"], file=sys.stderr)


async def floor(port: int, pid: int, clients: int) -> float:
    from websockets.asyncio.client import connect as ws_connect

    url = f"ws://127.0.0.1:{port}/"
    for socket in [await ws_connect(url, compression=None) for _ in range(50)]:
        await socket.close()
    await asyncio.sleep(1)
    before = rss_bytes(pid)
    sockets = [await ws_connect(url, compression=None) for _ in range(clients)]
    await asyncio.sleep(2)
    after = rss_bytes(pid)
    for socket in sockets:
        await socket.close()
    return (after - before) / clients / 1024


def main(args: argparse.Namespace) -> None:
    if args.child:
        if args.child[0] == "floor":
            serve_floor(int(args.child[1]))
        else:
            serve_with_tracemalloc(args.child[1:], Path(args.child[0]))
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = free_port()
    out = Path(f"/tmp/faye-memprofile-{os.getpid()}.txt")
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--mount", "/faye"]
    serve += ["--timeout", "25", "--log-level", "warning"]
    if args.redis:
        serve += ["--redis", args.redis, "--namespace", "memprofile"]
    child_args = ["floor", str(port)] if args.floor else [str(out), *serve]
    child = subprocess.Popen(
        [sys.executable, "-m", "bench", "memory", "--child", *child_args], cwd=ROOT
    )
    pool = WorkerPool(2, [None])
    try:
        wait_port(port, child)
        if args.floor:
            per_client = asyncio.run(floor(port, child.pid, args.clients))
            print(
                f"uvicorn websockets-sansio, do-nothing app: {per_client:.1f} KB RSS per idle "
                f"connection ({args.clients} connections)"
            )
            return
        url = f"ws://127.0.0.1:{port}/faye"
        connect(pool, url, 0, 50)
        for worker in pool.workers:
            worker.call("close_all")
        time.sleep(1.5)
        child.send_signal(signal.SIGUSR2)
        for _ in range(200):
            if out.with_suffix(".base").exists():
                break
            time.sleep(0.05)
        rss0 = rss_bytes(child.pid)
        connect(pool, url, 0, args.clients)
        time.sleep(2.0)
        rss1 = rss_bytes(child.pid)
        child.send_signal(signal.SIGUSR1)
        for _ in range(3000):  # comparing deep tracebacks takes a while
            if out.exists() and out.stat().st_size:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        print_report(out, rss1 - rss0, args.clients)
    finally:
        pool.stop()
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
        for path in (out, out.with_suffix(".base")):
            path.unlink(missing_ok=True)


def print_report(out: Path, grown: int, n: int) -> None:
    print(f"RSS growth per client: {grown / n / 1024:.2f} KB ({n} clients)")
    for line in out.read_text().splitlines():
        if line.startswith("=="):
            total = int(line.rsplit(" ", 1)[1])
            print(
                f"\n{line.split(':')[0]}: traced Python growth {total / n / 1024:.2f} KB"
                " per client; per line, bytes per client and objects per client:"
            )
            continue
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].lstrip("-").isdigit():
            size, count, where = parts
            print(f"{int(size) / n:9.0f} B {int(count) / n:6.1f}  {where}")
        else:
            print(line)

"""Where the memory of an idle WebSocket client goes (tracemalloc inside ``faye serve``).

    python bench/memprofile.py --clients 2000

Runs ``faye serve`` (memory engine, or ``--redis URL``) in a child process with
tracemalloc on, connects N idle clients (handshake, subscribe, held /meta/connect)
from a load-generator worker, then prints the Python allocations that grew, per
source line, divided by N, next to the RSS growth per client. RSS minus traced
Python memory is C-level memory: uvloop/libuv handles and buffers, the allocator's
overhead and fragmentation.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


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
        snapshot = tracemalloc.take_snapshot()
        base = state["base"]
        lines = []
        for key in ("filename", "lineno"):
            stats = snapshot.compare_to(base, key)
            lines.append(f"== by {key}: total {sum(s.size_diff for s in stats)}")
            for stat in stats[: {"filename": 15, "lineno": 30}[key]]:
                where = str(stat.traceback[0])
                lines.append(f"{stat.size_diff}\t{stat.count_diff}\t{where}")
        now, before = by_owner(snapshot), by_owner(base)
        owners = {
            k: (v[0] - before.get(k, [0, 0])[0], v[1] - before.get(k, [0, 0])[1])
            for k, v in now.items()
        }
        packages: dict[str, list[int]] = {}
        for owner, (size, count) in owners.items():
            head = owner.split("/", 1)[0] if "/" in owner else owner
            if head == "faye":
                head = "faye/" + owner.split("/")[1].split(".")[0].split(":")[0]
            entry = packages.setdefault(head, [0, 0])
            entry[0] += size
            entry[1] += count
        lines.append(f"== by owning package: total {sum(v[0] for v in packages.values())}")
        for name, (size, count) in sorted(packages.items(), key=lambda kv: -kv[1][0]):
            lines.append(f"{size}\t{count}\t{name}")
        lines.append(f"== by owner: total {sum(v[0] for v in owners.values())}")
        for owner, (size, count) in sorted(owners.items(), key=lambda kv: -kv[1][0])[:25]:
            lines.append(f"{size}\t{count}\t{owner}")
        out.write_text("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR2, baseline)
    signal.signal(signal.SIGUSR1, report)
    from faye.cli import main

    main(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--redis", default=None, help="redis:// URL (default: memory engine)")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out = Path(args.child[0])
        serve_with_tracemalloc(args.child[1:], out)
        return

    import resource

    import servers
    from generator import WorkerPool

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = servers.free_port()
    out = Path(f"/tmp/faye-memprofile-{os.getpid()}.txt")
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--mount", "/faye"]
    serve += ["--timeout", "25", "--log-level", "warning"]
    if args.redis:
        serve += ["--redis", args.redis, "--namespace", "memprofile"]
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--child", str(out), *serve], cwd=BENCH.parent
    )
    pool = WorkerPool(2, [None])
    try:
        servers.wait_port(port, child)
        url = f"ws://127.0.0.1:{port}/faye"

        def connect(first: int, last: int) -> None:
            shares: list[list[tuple[int, str, str]]] = [[], []]
            for i in range(first, last):
                shares[i % 2].append((i, url, f"/idle/{i}"))
            for worker, share in zip(pool.workers, shares, strict=True):
                worker.send("subscribe", {"clients": share, "deadline": 300})
            for worker in pool.workers:
                reply = worker.reply(330)
                if reply["errors"]:
                    print("connect errors:", reply["first_errors"], file=sys.stderr)

        connect(0, 50)
        for worker in pool.workers:
            worker.call("close_all")
        time.sleep(1.5)
        child.send_signal(signal.SIGUSR2)
        for _ in range(200):
            if out.with_suffix(".base").exists():
                break
            time.sleep(0.05)
        rss0 = servers.rss_bytes(child.pid)
        connect(0, args.clients)
        time.sleep(2.0)
        rss1 = servers.rss_bytes(child.pid)
        child.send_signal(signal.SIGUSR1)
        for _ in range(3000):  # comparing deep tracebacks takes a while
            if out.exists() and out.stat().st_size:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        n = args.clients
        print(f"RSS growth per client: {(rss1 - rss0) / n / 1024:.2f} KB ({n} clients)")
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


if __name__ == "__main__":
    main()

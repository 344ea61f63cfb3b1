"""Soak: minutes of churning clients on two Redis-backed servers; does memory come back?

Two ``faye serve`` processes share one private redis-server. Steady WebSocket subscribers
stay connected throughout; meanwhile churning clients, in turn WebSocket and long-polling,
each handshake with a server, subscribe to a channel of their own and to a shared one,
publish, take their deliveries and disconnect, over and over; a publisher sends to the
steady subscribers' channels. Every minute the servers' RSS and Redis's DBSIZE and
used_memory are sampled. Then the load stops (the steady subscribers stay) and, after a
quiet period long enough for the servers to collect any client that did not say goodbye
(twice ``--timeout`` plus a collection interval), a last sample is compared with the
baseline taken before the load.

    python -m bench soak                        # 10 minutes
    python -m bench soak --minutes 1 --quiet 30 # a short look
    python -m bench soak --out docs/benchmarks/soak.json

The servers run with ``--publish-rate 0``; everything listens on free 127.0.0.1 ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis
from websockets.asyncio.client import ClientConnection, connect

from bench import setups
from tests.support.redis_server import RedisServer, free_port

MOUNT = "/faye"
HANDSHAKE = {"channel": "/meta/handshake", "version": "1.0"}


def rss_kib(pid: int) -> int:
    """A process's resident set (KiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Counts:
    def __init__(self) -> None:
        self.cycles = 0
        self.publishes = 0
        self.steady_deliveries = 0
        self.churn_deliveries = 0
        self.errors = 0


async def steady_subscriber(url: str, channel: str, counts: Counts, stop: asyncio.Event) -> None:
    """A WebSocket client that stays, answering each connect reply with the next connect."""
    async with connect(url) as ws:
        client_id = await _ws_handshake(ws)
        await ws.send(
            json.dumps(
                [
                    {"channel": "/meta/subscribe", "clientId": client_id, "subscription": channel},
                    _connect(client_id, "websocket", 0),
                ]
            )
        )
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(ws.recv(), 1)
            except TimeoutError:
                continue
            for message in json.loads(frame):
                if message.get("channel") == "/meta/connect":
                    await ws.send(json.dumps([_connect(client_id, "websocket")]))
                elif "data" in message:
                    counts.steady_deliveries += 1


def _connect(client_id: str, kind: str, timeout_ms: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": kind,
    }
    if timeout_ms is not None:
        message["advice"] = {"timeout": timeout_ms}
    return message


async def _ws_handshake(ws: ClientConnection) -> str:
    await ws.send(json.dumps([{**HANDSHAKE, "supportedConnectionTypes": ["websocket"]}]))
    (reply,) = json.loads(await asyncio.wait_for(ws.recv(), 10))
    if not reply.get("successful"):
        raise RuntimeError(f"handshake failed: {reply}")
    client_id: str = reply["clientId"]
    return client_id


async def _ws_exchange(ws: ClientConnection, messages: list[dict[str, Any]]) -> list[Any]:
    """Send a batch; gather replies until each message with an id has its own."""
    await ws.send(json.dumps(messages))
    wanted = {m["id"] for m in messages if "id" in m}
    replies: list[Any] = []
    while wanted:
        for reply in json.loads(await asyncio.wait_for(ws.recv(), 10)):
            replies.append(reply)
            wanted.discard(reply.get("id"))
    return replies


def _churn_batch(client_id: str, own: str, shared: str, n: int) -> list[dict[str, Any]]:
    ids = itertools.count()
    batch: list[dict[str, Any]] = [
        {
            "channel": "/meta/subscribe",
            "clientId": client_id,
            "subscription": s,
            "id": str(next(ids)),
        }
        for s in (own, shared)
    ]
    batch += [
        {"channel": own, "clientId": client_id, "data": {"n": i}, "id": str(next(ids))}
        for i in range(n)
    ]
    return batch


async def churn_ws(url: str, shared: str, publishes: int, counts: Counts) -> None:
    async with connect(url) as ws:
        client_id = await _ws_handshake(ws)
        own = f"/soak/churn/{uuid.uuid4().hex}"
        await _ws_exchange(ws, _churn_batch(client_id, own, shared, publishes))
        counts.publishes += publishes
        got = 0
        deadline = time.monotonic() + 5
        await ws.send(json.dumps([_connect(client_id, "websocket", 0)]))
        while got < publishes and time.monotonic() < deadline:
            for message in json.loads(await asyncio.wait_for(ws.recv(), 5)):
                if message.get("channel") == own:
                    got += 1
        counts.churn_deliveries += got
        await _ws_exchange(ws, [{"channel": "/meta/disconnect", "clientId": client_id, "id": "x"}])


async def churn_polling(
    http: httpx.AsyncClient, url: str, shared: str, publishes: int, counts: Counts
) -> None:
    (reply,) = (
        await http.post(url, json=[{**HANDSHAKE, "supportedConnectionTypes": ["long-polling"]}])
    ).json()
    client_id = reply["clientId"]
    own = f"/soak/churn/{uuid.uuid4().hex}"
    (await http.post(url, json=_churn_batch(client_id, own, shared, publishes))).raise_for_status()
    counts.publishes += publishes
    got = 0
    for _ in range(3):
        replies = (await http.post(url, json=[_connect(client_id, "long-polling", 0)])).json()
        got += sum(1 for m in replies if m.get("channel") == own)
        if got >= publishes:
            break
    counts.churn_deliveries += got
    await http.post(url, json=[{"channel": "/meta/disconnect", "clientId": client_id}])


async def churner(
    index: int, urls: list[str], channels: list[str], counts: Counts, stop: asyncio.Event
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for cycle in itertools.count(index):
            if stop.is_set():
                return
            url = urls[(cycle // 2) % len(urls)]  # both transports on every server
            shared = channels[cycle % len(channels)]
            try:
                if cycle % 2:
                    await churn_ws(url.replace("http://", "ws://"), shared, 3, counts)
                else:
                    await churn_polling(http, url, shared, 3, counts)
                counts.cycles += 1
            except Exception:
                counts.errors += 1
                await asyncio.sleep(0.5)


async def publisher(
    urls: list[str], channels: list[str], rate: float, counts: Counts, stop: asyncio.Event
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for n in itertools.count():
            if stop.is_set():
                return
            message = {"channel": channels[n % len(channels)], "data": {"n": n}}
            try:
                (await http.post(urls[n % len(urls)], json=message)).raise_for_status()
                counts.publishes += 1
            except httpx.HTTPError:
                counts.errors += 1
            await asyncio.sleep(1 / rate)


def sample(pids: list[int], client: redis.Redis, started: float, label: str) -> dict[str, Any]:
    memory = client.info("memory")
    return {
        "label": label,
        "t": round(time.monotonic() - started, 1),
        "rss_kib": [rss_kib(pid) for pid in pids],
        "redis_keys": int(client.dbsize()),  # type: ignore[arg-type]
        # Publish tokens expire on their own (stall_timeout + 30 s); counted apart.
        "redis_publish_tokens": sum(
            1
            for pattern in ("*:published:*", "*:token:*")  # layout 1's and layout 2's
            for _ in client.scan_iter(match=pattern, count=1000)
        ),
        "redis_used_memory": int(memory["used_memory"]),
    }


def _print_sample(s: dict[str, Any], counts: Counts) -> None:
    rss = " ".join(f"{r / 1024:.1f}" for r in s["rss_kib"])
    print(
        f"{s['label']:>10} t={s['t']:>6.0f}s rss MiB [{rss}] keys {s['redis_keys']} "
        f"(tokens {s['redis_publish_tokens']}) "
        f"used_memory {s['redis_used_memory'] / 1024:.0f} KiB | cycles {counts.cycles} "
        f"publishes {counts.publishes} errors {counts.errors}",
        flush=True,
    )


async def run(
    args: argparse.Namespace, pids: list[int], urls: list[str], client: redis.Redis
) -> dict[str, Any]:
    counts = Counts()
    started = time.monotonic()
    channels = [f"/soak/steady/{k}" for k in range(args.channels)]
    stay, stop = asyncio.Event(), asyncio.Event()
    steady = [
        asyncio.ensure_future(
            steady_subscriber(
                urls[k % len(urls)].replace("http://", "ws://"),
                channels[k % len(channels)],
                counts,
                stay,
            )
        )
        for k in range(args.subscribers)
    ]
    await asyncio.sleep(args.warmup / 2)
    # One message to every steady subscriber first: its queue key then exists (and stays,
    # emptied, while it lives), so it is part of the baseline.
    async with httpx.AsyncClient(timeout=30) as http:
        for channel in channels:
            (
                await http.post(urls[0], json={"channel": channel, "data": "hello"})
            ).raise_for_status()
    await asyncio.sleep(args.warmup / 2)
    samples = [sample(pids, client, started, "baseline")]
    _print_sample(samples[-1], counts)
    load = [
        asyncio.ensure_future(churner(i, urls, channels, counts, stop))
        for i in range(args.churners)
    ]
    load.append(asyncio.ensure_future(publisher(urls, channels, args.rate, counts, stop)))
    total = args.minutes * 60
    every = min(60.0, total)
    for n in range(1, max(1, round(total / every)) + 1):
        await asyncio.sleep(every)
        samples.append(sample(pids, client, started, f"load {n * every / 60:g}m"))
        _print_sample(samples[-1], counts)
    under_load = dict(vars(counts))
    stop.set()
    await asyncio.gather(*load, return_exceptions=True)
    await asyncio.sleep(args.quiet)
    samples.append(sample(pids, client, started, "quiet"))
    _print_sample(samples[-1], counts)
    stay.set()
    await asyncio.gather(*steady, return_exceptions=True)
    base, end, peak = samples[0], samples[-1], samples[1:-1] or samples
    return {
        "samples": samples,
        "counts": under_load,
        "growth": {
            "rss_kib": [e - b for e, b in zip(end["rss_kib"], base["rss_kib"], strict=True)],
            "rss_kib_peak": [
                max(s["rss_kib"][i] for s in peak) - b for i, b in enumerate(base["rss_kib"])
            ],
            "redis_keys": end["redis_keys"] - base["redis_keys"],
            "redis_keys_but_tokens": (end["redis_keys"] - end["redis_publish_tokens"])
            - (base["redis_keys"] - base["redis_publish_tokens"]),
            "redis_used_memory": end["redis_used_memory"] - base["redis_used_memory"],
        },
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10, help="minutes of load (default 10)")
    parser.add_argument("--subscribers", type=int, default=40, help="steady WebSocket subscribers")
    parser.add_argument("--channels", type=int, default=8, help="their channels")
    parser.add_argument("--churners", type=int, default=8, help="clients churning at once")
    parser.add_argument("--rate", type=float, default=20.0, help="publishes/s to steady channels")
    parser.add_argument("--timeout", type=int, default=10, help="the servers' --timeout")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before the baseline")
    parser.add_argument(
        "--quiet",
        type=float,
        default=90.0,
        help="seconds after the load (publish tokens live stall_timeout + 30 s = 40 s)",
    )
    parser.add_argument("--out", type=Path, help="write the result here as JSON")


def main(args: argparse.Namespace) -> None:
    redis_server = RedisServer().start()
    processes = []
    logs = Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        ports = [free_port() for _ in range(2)]
        for i, port in enumerate(ports):
            line = [sys.executable, "-m", "faye", "serve", "--port", str(port), "--mount", MOUNT]
            line += ["--timeout", str(args.timeout), "--redis", redis_server.url]
            line += ["--namespace", "soak", "--publish-rate", "0", "--log-level", "warning"]
            with (logs / f"server-{i}.log").open("wb") as out:
                processes.append(
                    setups.subprocess.Popen(line, cwd=setups.ROOT, stdout=out, stderr=out)
                )
            setups.wait_port(port, processes[-1])
        urls = [f"http://127.0.0.1:{port}{MOUNT}" for port in ports]
        client = redis.Redis(port=redis_server.port)
        print(f"soak: {args.minutes:g} min, logs in {logs}", flush=True)
        result = asyncio.run(run(args, [p.pid for p in processes], urls, client))
        if any(p.poll() is not None for p in processes):
            raise RuntimeError(f"a server died; see {logs}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            with contextlib.suppress(Exception):
                process.wait(15)
        redis_server.cleanup()
    result["command"] = "python -m bench " + " ".join(sys.argv[1:])
    result["options"] = {k: str(v) for k, v in vars(args).items()}
    result["versions"] = setups.versions()
    growth = result["growth"]
    print(
        f"growth after the quiet period: rss KiB {growth['rss_kib']} "
        f"(peak under load {growth['rss_kib_peak']}), redis keys {growth['redis_keys']} "
        f"({growth['redis_keys_but_tokens']} but publish tokens), "
        f"redis used_memory {growth['redis_used_memory']} B"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")

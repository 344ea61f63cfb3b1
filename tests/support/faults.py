"""A fault scenario with real processes: Redis, ``faye serve`` servers, npm ``faye`` clients.

Two or more servers share one redis-server behind the test balancer; stock npm ``faye``
clients subscribe through it on one transport; a publisher sends numbered messages at a
steady rate to the servers in turn, and a fault strikes mid-stream. The figures are what
an operator cares about: acknowledged publishes some subscriber never got, the time until
every subscriber receives again, and duplicates.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.balancer import Balancer
from tests.support.processes import (
    ROOT,
    FayeServer,
    ServerProcess,
    start_client,
    wait_for_port,
    wait_ready,
)
from tests.support.redis_server import RedisServer, free_port

CHANNEL = "/fault"


@dataclass
class Subscriber:
    process: subprocess.Popen[str]
    #: (monotonic time of arrival, seq) per message, in arrival order.
    received: list[tuple[float, int]] = field(default_factory=list)
    reader: threading.Thread | None = None
    error_reader: threading.Thread | None = None
    #: How often the client gave up on a request (``transport:down``): on WebSocket
    #: the npm client then closes its socket, losing what was on its way.
    gave_up: int = 0

    def read_errors(self, path: Path) -> None:
        """Keep the client's stderr (its transport changes) for a look after a failure.

        With ``FAYE_CLIENT_LOG=1`` in the environment it holds the client's own debug
        log too: every message sent and received.
        """
        assert self.process.stderr is not None
        with path.open("w") as out:
            for line in self.process.stderr:
                out.write(f"{time.monotonic():.3f} {line}")
                if "transport:down" in line:
                    self.gave_up += 1

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                seq = json.loads(line)["data"]["seq"]
                self.received.append((time.monotonic(), seq))


@dataclass
class Publish:
    seq: int
    sent: float
    answered: float = 0.0
    accepted: bool = False


@dataclass
class Figures:
    """One scenario's outcome (times in seconds)."""

    accepted: int
    failed: int
    lost: int
    recovery: float
    duplicates: int
    #: Per subscriber, the acknowledged seqs it never received (outside its excused gap).
    missing: list[list[int]]
    #: Publishes acknowledged before Redis crashed without persistence that some
    #: subscriber missed: they were queued in Redis and went with its data.
    crashed: int = 0
    #: Times a subscriber gave up on a request (see :attr:`Subscriber.gave_up`).
    gave_up: int = 0

    def row(self) -> str:
        return (
            f"accepted={self.accepted} failed={self.failed} lost={self.lost} "
            f"recovery={self.recovery:.2f}s duplicates={self.duplicates} crashed={self.crashed} "
            f"gave_up={self.gave_up}"
        )


class Fault:
    """What happens to the system mid-stream; ``back`` is when it is over."""

    #: Whether clients lose their records (and must re-handshake and re-subscribe).
    forgets_clients = False

    def __init__(self) -> None:
        self.began = 0.0
        self.back = 0.0

    def strike(self, scenario: Scenario) -> None:
        raise NotImplementedError


class RestartRedis(Fault):
    """Stop Redis, keep it down for ``down`` seconds, start it again on the same port."""

    def __init__(self, down: float, *, persistent: bool) -> None:
        super().__init__()
        self.down = down
        self.persistent = persistent
        self.forgets_clients = not persistent

    def strike(self, scenario: Scenario) -> None:
        self.began = time.monotonic()
        scenario.redis.stop(kill=not self.persistent)
        time.sleep(self.down)
        scenario.redis.start()
        self.back = time.monotonic()


class StallRedis(Fault):
    """SIGSTOP Redis for ``stall`` seconds, then SIGCONT: sockets stay open, nothing answers."""

    def __init__(self, stall: float) -> None:
        super().__init__()
        self.stall = stall

    def strike(self, scenario: Scenario) -> None:
        process = scenario.redis.process
        assert process is not None
        self.began = time.monotonic()
        process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(self.stall)
        finally:
            process.send_signal(signal.SIGCONT)
        self.back = time.monotonic()


class KillServer(Fault):
    """SIGKILL the first server; its clients reconnect through the balancer to another."""

    def strike(self, scenario: Scenario) -> None:
        self.began = time.monotonic()
        scenario.servers[0].kill()
        self.back = time.monotonic()


class NodeServer(ServerProcess):
    """Node Faye 1.4.3 + faye-redis 0.2.0 (``bench/node/server.js``; ``bash
    bench/install.sh`` installs it), with the interface of :class:`FayeServer` the
    scenario uses: to run the same faults against it."""

    def __init__(self, redis_port: int, namespace: str, timeout: float, log: Path) -> None:
        self.port = free_port()
        self.command = [
            shutil.which("node") or "node",
            str(ROOT / "bench" / "node" / "server.js"),
            "--port", str(self.port),
            "--timeout", str(timeout),
            "--redis-host", "127.0.0.1",
            "--redis-port", str(redis_port),
            "--namespace", namespace,
        ]  # fmt: skip
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/faye"

    def start(self) -> NodeServer:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(self.command, stdout=output, stderr=output)
        wait_for_port(self.port, self.process)
        return self


@dataclass
class Scenario:
    redis: RedisServer
    transport: str
    log_dir: Path
    subscribers: int = 5
    servers_count: int = 2
    rate: float = 50.0
    before: float = 1.5
    after: float = 3.0
    settle: float = 2.0
    timeout: float = 5.0
    engine_options: dict[str, Any] = field(default_factory=dict)
    #: ``python`` (``faye serve --redis``) or ``node`` (:class:`NodeServer`).
    runtime: str = "python"
    servers: list[FayeServer | NodeServer] = field(default_factory=list)
    publishes: list[Publish] = field(default_factory=list)

    def logs(self) -> list[str]:
        """Each server's log (stderr), as text."""
        return [
            (self.log_dir / f"server-{i}.log").read_text(errors="replace")
            for i in range(len(self.servers))
        ]

    def _start_servers(self) -> None:
        namespace = f"fault-{uuid.uuid4().hex[:8]}"
        args = [
            "--redis",
            self.redis.url,
            "--namespace",
            namespace,
            "--timeout",
            str(self.timeout),
            "--log-level",
            "info",
        ]
        for name, value in self.engine_options.items():
            args += ["--engine-option", f"{name}={json.dumps(value)}"]
        for i in range(self.servers_count):
            log = self.log_dir / f"server-{i}.log"
            server: FayeServer | NodeServer
            if self.runtime == "node":
                server = NodeServer(self.redis.port, namespace, self.timeout, log)
            else:
                server = FayeServer(*args, env={"PYTHONUNBUFFERED": "1"}, log=log)
            self.servers.append(server)
            server.start()

    async def _publish(self, http: httpx.AsyncClient, record: Publish, url: str) -> None:
        try:
            response = await http.post(
                url, json={"channel": CHANNEL, "data": {"seq": record.seq}, "id": str(record.seq)}
            )
            replies = response.json() if response.status_code == 200 else []
            record.accepted = bool(replies) and replies[0].get("successful") is True
        except (httpx.HTTPError, ValueError):
            record.accepted = False
        record.answered = time.monotonic()

    async def _publisher(self, stop: threading.Event) -> None:
        gap = 1 / self.rate
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=50)
        tasks: list[asyncio.Task[None]] = []
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            seq = 0
            start = time.monotonic()
            while not stop.is_set():
                record = Publish(seq, time.monotonic())
                self.publishes.append(record)
                url = self.servers[seq % len(self.servers)].url
                if self.servers[seq % len(self.servers)].process.poll() is not None:  # type: ignore[union-attr]
                    url = next(s.url for s in self.servers if s.process.poll() is None)  # type: ignore[union-attr]
                tasks.append(asyncio.ensure_future(self._publish(http, record, url)))
                seq += 1
                await asyncio.sleep(max(0.0, start + seq * gap - time.monotonic()))
            await asyncio.gather(*tasks)

    def run(self, fault: Fault) -> Figures:
        self._start_servers()
        balancer = Balancer([s.port for s in self.servers]).start()
        subs: list[Subscriber] = []
        stop = threading.Event()
        total = self.before + self.after + 30
        try:
            url = f"http://127.0.0.1:{balancer.port}/faye"
            for _ in range(self.subscribers):
                process = start_client(
                    "faye-node", url, "subscribe", CHANNEL, self.transport, 10**9, timeout=total
                )
                subs.append(Subscriber(process))
            for index, sub in enumerate(subs):
                path = self.log_dir / f"subscriber-{index}.stderr"
                sub.error_reader = threading.Thread(
                    target=sub.read_errors, args=(path,), daemon=True
                )
                sub.error_reader.start()
                wait_ready(sub.process)
                sub.reader = threading.Thread(target=sub.read, daemon=True)
                sub.reader.start()
            publisher = threading.Thread(target=asyncio.run, args=(self._publisher(stop),))
            publisher.start()
            time.sleep(self.before)
            fault.strike(self)
            time.sleep(self.after)
            stop.set()
            publisher.join(90)
            time.sleep(self.settle)
        finally:
            stop.set()
            for sub in subs:
                if sub.process.poll() is None:
                    sub.process.terminate()
            for sub in subs:
                try:
                    sub.process.wait(10)
                except subprocess.TimeoutExpired:
                    sub.process.kill()
                for reader in (sub.reader, sub.error_reader):
                    if reader is not None:
                        reader.join(5)
            balancer.stop()
            for server in self.servers:
                server.stop()
        return self.figures(fault, subs)

    def figures(self, fault: Fault, subs: list[Subscriber]) -> Figures:
        (self.log_dir / "fault.txt").write_text(f"began={fault.began:.3f} back={fault.back:.3f}\n")
        accepted = [p for p in self.publishes if p.accepted]
        missing: list[list[int]] = []
        recovery = 0.0
        duplicates = 0
        crashed: set[int] = set()
        for index, sub in enumerate(subs):
            # For a look after a failure: arrival and send times relative to the fault's end.
            (self.log_dir / f"subscriber-{index}.txt").write_text(
                "".join(
                    f"{seq} sent={self.publishes[seq].sent - fault.back:+.3f} "
                    f"arrived={t - fault.back:+.3f}\n"
                    for t, seq in sub.received
                )
            )
            seqs = [seq for _, seq in sub.received]
            duplicates += len(seqs) - len(set(seqs))
            got = set(seqs)
            # The first message of the fault or after it to reach this subscriber once
            # the fault was over.
            later = [
                (t, seq)
                for t, seq in sub.received
                if t >= fault.back and self.publishes[seq].sent >= fault.began
            ]
            if later:
                arrived = min(t for t, _ in later)
                recovery = max(recovery, arrived - fault.back)
                # Publishes sent once one it received had been answered reached Redis
                # after it, so after the subscription: from then on nothing may be missing.
                # (One sent a little later to the other server may have come first.)
                resumed = min(self.publishes[seq].answered for _, seq in later)
            else:
                recovery = float("inf")
                resumed = fault.back  # never again: all it missed after the fault counts
            gone = []
            for p in accepted:
                if p.seq in got:
                    continue
                if fault.forgets_clients:
                    if p.sent < fault.began:
                        crashed.add(p.seq)  # queued in Redis, gone with its data
                        continue
                    if p.sent < resumed:
                        continue  # not subscribed: its record was gone until it re-subscribed
                gone.append(p.seq)
            missing.append(gone)
        return Figures(
            accepted=len(accepted),
            failed=len(self.publishes) - len(accepted),
            lost=sum(len(m) for m in missing),
            recovery=max(recovery, 0.0),
            duplicates=duplicates,
            missing=missing,
            crashed=len(crashed),
            gave_up=sum(sub.gave_up for sub in subs),
        )

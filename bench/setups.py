"""The servers under test, defined here and nowhere else, each started fresh.

* ``py-memory``   this project, memory engine, 1 process (``faye serve``)
* ``py-redis``    this project, Redis engine, 2 processes sharing one private redis-server
* ``py-redis-sentinel``  the same behind Sentinel (a master, a replica, 3 Sentinels)
* ``py-redis-cluster``  the same on a private Redis Cluster of 3 masters
* ``node-memory`` Node Faye 1.4.3, memory engine, 1 process (bench/node/server.js)
* ``node-redis``  Node Faye 1.4.3 + faye-redis 0.2.0, 2 processes, one private redis-server

Every server and every Redis listens on a free 127.0.0.1 port; the machine's own Redis
(6379) is never used. The private Redis servers are the test suite's
(tests/support/redis_server.py, tests/support/redis_cluster.py), which is why the
benchmark runs from the repository root: ``python -m bench ...``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from tests.support.redis_cluster import ClusterTopology, SentinelTopology
from tests.support.redis_server import RedisServer, free_port

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_MODULES = BENCH / "node" / "node_modules"
MOUNT = "/faye"
TIMEOUT = "25"
NAMESPACE = "bench"


@dataclass(frozen=True)
class Setup:
    name: str
    label: str
    runtime: str  # "python" | "node"
    processes: int
    redis: str = ""  # "", "single", "sentinel" or "cluster"


SETUPS = {
    s.name: s
    for s in (
        Setup("py-memory", "this project, memory engine, 1 process", "python", 1),
        Setup("node-memory", "Node Faye 1.4.3, memory engine, 1 process", "node", 1),
        Setup("py-redis", "this project, Redis engine, 2 processes", "python", 2, "single"),
        Setup("node-redis", "Node Faye 1.4.3 + faye-redis 0.2.0, 2 processes", "node", 2, "single"),
        Setup("py-redis-sentinel", "py-redis behind Sentinel (1 replica)", "python", 2, "sentinel"),
        Setup("py-redis-cluster", "py-redis on a 3-master Redis Cluster", "python", 2, "cluster"),
    )
}
DEFAULT_SETUPS = ["py-memory", "node-memory", "py-redis", "node-redis", "py-redis-cluster"]
#: Whose numbers are divided by whose: ours, then the reference it is compared with.
PEERS = {"py-memory": "node-memory", "py-redis": "node-redis"}


@dataclass
class Options:
    """How our servers are started, from the command line of ``python -m bench compare``."""

    engine_options: list[str] = field(default_factory=list)  # NAME=VALUE, to --engine-option
    serve_args: list[str] = field(default_factory=list)  # more faye serve arguments
    ws_compression: str = "off"
    cluster_replicas: int = 0
    cpus: set[int] | None = None  # pin servers and Redis to these CPUs


@dataclass
class Running:
    setup: Setup
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    redis: RedisServer | None = None
    topology: ClusterTopology | SentinelTopology | None = None
    #: The redis-servers doing the work, and the replicas feeding on them.
    masters: list[RedisServer] = field(default_factory=list)
    replicas: list[RedisServer] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{p}{MOUNT}" for p in self.ports]

    @property
    def http_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}{MOUNT}" for p in self.ports]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    @property
    def cluster(self) -> ClusterTopology | None:
        return self.topology if isinstance(self.topology, ClusterTopology) else None

    def redis_pids(self, servers: list[RedisServer]) -> list[int]:
        return [s.process.pid for s in servers if s.process is not None]

    @property
    def redis_ports(self) -> list[int]:
        return [s.port for s in self.masters]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for owner in (self.redis, self.topology):
            if owner is not None:
                owner.cleanup()


def command(setup: Setup, port: int, running: Running, options: Options) -> list[str]:
    if setup.runtime == "python":
        line = [sys.executable, "-m", "faye", "serve", "--host", "127.0.0.1", "--port", str(port)]
        line += ["--mount", MOUNT, "--timeout", TIMEOUT, "--log-level", "warning"]
        line += ["--publish-rate", "0", "--ws-compression", options.ws_compression]
        if setup.redis:
            url = running.topology.url if running.topology else running.masters[0].url
            line += ["--redis", url, "--namespace", NAMESPACE]
            for option in options.engine_options:
                line += ["--engine-option", option]
        return line + options.serve_args
    line = [shutil.which("node") or "node", str(BENCH / "node" / "server.js")]
    line += ["--host", "127.0.0.1", "--port", str(port), "--mount", MOUNT, "--timeout", TIMEOUT]
    if setup.redis:
        line += ["--redis-host", "127.0.0.1", "--redis-port", str(running.masters[0].port)]
        line += ["--namespace", NAMESPACE]
    return line


def pin(cpus: set[int] | None) -> Callable[[], None] | None:
    """A child's pre-exec hook that keeps it (and every thread it starts) on ``cpus``."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def wait_port(port: int, process: subprocess.Popen[bytes], deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start in {deadline:.0f} s")


def start_redis(setup: Setup, running: Running, options: Options) -> None:
    if setup.redis == "single":
        running.redis = RedisServer().start()
        running.masters = [running.redis]
    elif setup.redis == "sentinel":
        sentinel = SentinelTopology().start()
        running.topology = sentinel
        running.masters = [sentinel.master]
        running.replicas = [r for r in (sentinel.replica,) if r is not None]
    elif setup.redis == "cluster":
        cluster = ClusterTopology(replicas_per_master=options.cluster_replicas).start()
        running.topology = cluster
        running.masters, running.replicas = cluster.masters(), cluster.replicas()


def start(setup: Setup, log_dir: Path, options: Options) -> Running:
    """Start a setup's Redis and servers; wait until each server listens."""
    log_dir.mkdir(parents=True, exist_ok=True)
    running = Running(setup)
    try:
        start_redis(setup, running, options)
        for pid in running.redis_pids(running.masters + running.replicas):
            if options.cpus:
                os.sched_setaffinity(pid, options.cpus)
        for i in range(setup.processes):
            port = free_port()
            with (log_dir / f"{setup.name}-{i}-{port}.log").open("wb") as out:
                process = subprocess.Popen(
                    command(setup, port, running, options),
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    preexec_fn=pin(options.cpus),
                )
            running.processes.append(process)
            running.ports.append(port)
            wait_port(port, process)
    except BaseException:
        running.stop()
        raise
    time.sleep(0.3)  # engines connect to Redis, finish start-up
    return running


def versions() -> dict[str, str]:
    """What ran: interpreters, Redis, the npm and PyPI packages, and our git commit."""

    def out(*line: str) -> str:
        try:
            run = subprocess.run(line, capture_output=True, text=True, timeout=10, cwd=ROOT)
        except OSError:
            return "missing"
        return run.stdout.strip()

    result = {
        "python": platform.python_version(),
        "node": out("node", "--version"),
        "redis_server": out("redis-server", "--version").split(" sha=")[0],
        "kernel": platform.release(),
        "git": out("git", "describe", "--always", "--dirty"),
    }
    for name in ("faye", "faye-redis", "redis"):
        package = NODE_MODULES / name / "package.json"
        if package.exists():
            result[f"npm {name}"] = json.loads(package.read_text())["version"]
    for name in ("uvicorn", "websockets", "orjson", "redis", "hiredis", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            result[f"pypi {name}"] = metadata.version(name)
    return result

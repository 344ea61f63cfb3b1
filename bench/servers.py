"""The servers under test, their private Redis, and what /proc and Redis say about them.

Five setups, each started fresh by ``bench/run.py`` on free loopback ports:

* ``py-memory``   this project, memory engine, 1 process (``faye serve``)
* ``py-redis``    this project, Redis engine, 2 processes sharing one private redis-server
* ``py-redis-cluster``  the same on a private Redis Cluster (3 masters; replicas with
  ``bench/run.py --cluster-replicas N``)
* ``node-memory`` Node Faye 1.4.3, memory engine, 1 process (bench/node/server.js)
* ``node-redis``  Node Faye 1.4.3 + faye-redis 0.2.0, 2 processes, one private redis-server

The machine's own Redis (6379) is never used: every Redis here is a redis-server
started for the run (tests/support/redis_server.py) on a free port.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.support.redis_cluster import ClusterTopology  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MOUNT = "/faye"
TIMEOUT = "25"
NAMESPACE = "bench"


@dataclass(frozen=True)
class Setup:
    name: str
    label: str
    runtime: str  # "python" | "node"
    redis: bool
    processes: int
    cluster: bool = False


SETUPS = {
    s.name: s
    for s in (
        Setup("py-memory", "this project, memory engine (1 process)", "python", False, 1),
        Setup("py-redis", "this project, Redis engine (2 processes)", "python", True, 2),
        Setup("node-memory", "Node Faye 1.4.3, memory engine (1 process)", "node", False, 1),
        Setup("node-redis", "Node Faye 1.4.3 + faye-redis 0.2.0 (2 processes)", "node", True, 2),
        Setup(
            "py-redis-cluster",
            "this project, Redis engine on a 3-master Redis Cluster (2 processes)",
            "python",
            True,
            2,
            cluster=True,
        ),
    )
}

#: Whose numbers are compared with whose (ours first).
PEERS = {"py-memory": "node-memory", "py-redis": "node-redis"}


# -- /proc ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (threads included, children not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def all_process_cpu() -> dict[tuple[int, int], float]:
    """(pid, start time) -> CPU seconds used, for every process.

    Per-process times are exact (scheduler run time); /proc/stat's are tick samples,
    which miss short timer-driven bursts, so "other" CPU is summed from here.
    """
    result: dict[tuple[int, int], float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Own time only: a reaped child's whole lifetime would land in its parent's
        # cutime at once. Processes that start and end inside a window are missed.
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        result[(int(entry.name), int(fields[19]))] = cpu
    return result


def cpu_between(before: dict[tuple[int, int], float], after: dict[tuple[int, int], float]) -> float:
    """CPU seconds all processes used between two ``all_process_cpu`` snapshots."""
    return sum(cpu - before.get(key, 0.0) for key, cpu in after.items())


def top_others(
    before: dict[tuple[int, int], float],
    after: dict[tuple[int, int], float],
    ours: set[int],
    n: int = 3,
) -> list[tuple[str, float]]:
    """The processes outside the benchmark that used the most CPU in between."""
    deltas = []
    for key, cpu in after.items():
        delta = cpu - before.get(key, 0.0)
        if key[0] in ours or delta < 0.05:
            continue
        try:
            name = Path(f"/proc/{key[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            name = name.strip() or Path(f"/proc/{key[0]}/comm").read_text().strip()
        except OSError:
            name = "(exited)"
        deltas.append((name[:80], round(delta, 2)))
    return sorted(deltas, key=lambda d: -d[1])[:n]


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def machine_cpu() -> tuple[float, float]:
    """(busy seconds, total seconds) summed over all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


# -- Redis --------------------------------------------------------------------------------


def redis_info(port: int) -> dict[str, Any]:
    """INFO everything over a raw socket (one command, one read: subtracted later)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"*2\r\n$4\r\nINFO\r\n$10\r\neverything\r\n")
        data = b""
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"$"):
                head, _, rest = data.partition(b"\r\n")
                if len(rest) >= int(head[1:]) + 2:
                    break
        sock.sendall(b"*1\r\n$4\r\nQUIT\r\n")
    text = data.partition(b"\r\n")[2].decode()
    info: dict[str, Any] = {"cmd": {}, "usec": {}}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        if key.startswith("cmdstat_"):
            calls = re.search(r"calls=(\d+)", value)
            info["cmd"][key[8:]] = int(calls.group(1)) if calls else 0
            usec = re.search(r"usec=(\d+)", value)
            info["usec"][key[8:]] = int(usec.group(1)) if usec else 0
        else:
            info[key] = value
    return info


def redis_info_all(ports: list[int]) -> dict[str, Any]:
    """INFO of several nodes (a Cluster's masters), counters and commands summed."""
    merged: dict[str, Any] = {"cmd": {}, "usec": {}, "_nodes": len(ports)}
    for port in ports:
        info = redis_info(port)
        for table in ("cmd", "usec"):
            for name, count in info.pop(table).items():
                merged[table][name] = merged[table].get(name, 0) + count
        for key in SUMMED:
            merged[key] = int(merged.get(key, 0)) + int(info.get(key, 0))
    return merged


#: INFO fields redis_delta reads, summed over the nodes by redis_info_all.
SUMMED = (
    "total_commands_processed",
    "total_reads_processed",
    "total_connections_received",
    "connected_clients",
    "used_memory",
)


def redis_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What happened between two INFO snapshots, minus our own INFO and QUIT."""

    def num(info: dict[str, Any], key: str) -> int:
        return int(info.get(key, 0))

    nodes = int(after.get("_nodes", 1))  # each node counts our INFO and QUIT
    commands = {
        name: calls - before["cmd"].get(name, 0)
        for name, calls in after["cmd"].items()
        if calls - before["cmd"].get(name, 0) > 0
    }
    # Our INFO (1 counted between the snapshots) and the QUIT after the first one.
    for own in ("info", "quit"):
        if own in commands:
            commands[own] -= nodes
            if commands[own] <= 0:
                del commands[own]
    return {
        "commands": num(after, "total_commands_processed")
        - num(before, "total_commands_processed")
        - 2 * nodes,
        "reads": num(after, "total_reads_processed")
        - num(before, "total_reads_processed")
        - 2 * nodes,
        "connections_opened": num(after, "total_connections_received")
        - num(before, "total_connections_received")
        - nodes,
        "connected_clients": num(after, "connected_clients") - nodes,
        "by_command": commands,
        # Redis's own time inside each command (a script's includes its commands').
        "usec_by_command": {
            name: usec - before.get("usec", {}).get(name, 0)
            for name, usec in after.get("usec", {}).items()
            if usec - before.get("usec", {}).get(name, 0) > 0
        },
        "used_memory": num(after, "used_memory"),
    }


class Monitor:
    """Counts the commands Redis runs (MONITOR), by caller kind, name and script."""

    LINE = re.compile(rb'^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?')

    def __init__(self, port: int, scripts: dict[str, str]) -> None:
        self.port = port
        self.scripts = scripts  # sha -> name
        self.counts: Counter[tuple[str, str]] = Counter()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        time.sleep(0.05)

    def _read(self) -> None:
        buf = b""
        self._sock.settimeout(0.2)
        for _ in range(100_000_000):
            if self._stop:
                return
            try:
                chunk = self._sock.recv(1 << 18)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            lines = buf.split(b"\r\n")
            buf = lines.pop()
            for line in lines:
                match = self.LINE.match(line)
                if match is None:
                    continue
                caller = "script" if match.group(1) == b"lua" else "client"
                name = match.group(2).decode().upper()
                if name in ("INFO", "QUIT", "MONITOR"):
                    continue
                if name in ("EVALSHA", "EVALSHA_RO", "FCALL", "FCALL_RO") and match.group(3):
                    code = match.group(3).decode()
                    name = f"{name} {self.scripts.get(code, code[:8])}"
                self.counts[(caller, name)] += 1

    def stop(self) -> Counter[tuple[str, str]]:
        self._stop = True
        self._thread.join(2)
        with contextlib.suppress(OSError):
            self._sock.close()
        return self.counts


def our_script_names() -> dict[str, str]:
    """sha or function name -> script name of the Redis engine's Lua code (as the servers
    load it: a function library on Redis 7, scripts before)."""
    try:
        from faye.redis.scripts import load_all

        names = {}
        for name, script in load_all().items():
            names[script.sha] = names[script.function] = name
        return names
    except Exception:
        return {}


# -- servers ------------------------------------------------------------------------------


def _preexec(cpus: set[int] | None) -> Any:
    if not cpus:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def wait_port(port: int, process: subprocess.Popen[bytes], deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start in {deadline:.0f} s")


@dataclass
class Running:
    setup: Setup
    redis: RedisServer | None
    processes: list[subprocess.Popen[bytes]]
    ports: list[int]
    logs: list[Path] = field(default_factory=list)
    cluster: ClusterTopology | None = None
    #: Cluster: the master nodes' and the replicas' ports, as at start.
    master_ports: list[int] = field(default_factory=list)
    replica_ports: list[int] = field(default_factory=list)

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
    def redis_pid(self) -> int | None:
        if self.redis is None or self.redis.process is None:
            return None
        return self.redis.process.pid

    def redis_pids(self, which: str = "masters") -> list[int]:
        """The redis-server processes doing the work (``masters``: the single Redis or
        the Cluster's masters) or feeding on it (``replicas``)."""
        if self.cluster is None:
            pid = self.redis_pid
            return [pid] if pid is not None and which == "masters" else []
        ports = set(self.master_ports if which == "masters" else self.replica_ports)
        return [
            n.process.pid for n in self.cluster.nodes if n.process is not None and n.port in ports
        ]

    @property
    def redis_ports(self) -> list[int]:
        """Where INFO is read: the single Redis, or every master of the Cluster."""
        if self.cluster is not None:
            return self.master_ports
        return [self.redis.port] if self.redis is not None else []

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
        if self.redis is not None:
            self.redis.cleanup()
        if self.cluster is not None:
            self.cluster.cleanup()


def server_command(
    setup: Setup, port: int, redis_url: str | None, redis_port: int | None
) -> list[str]:
    if setup.runtime == "python":
        command = [sys.executable, "-m", "faye", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--mount", MOUNT, "--timeout", TIMEOUT]
        command += ["--log-level", "warning", "--publish-rate", "0"]  # as Node's: no limit
        if redis_url:
            command += ["--redis", redis_url, "--namespace", NAMESPACE]
        return command
    node = shutil.which("node") or "node"
    command = [node, str(BENCH / "node" / "server.js"), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--mount", MOUNT, "--timeout", TIMEOUT]
    if redis_port:
        command += ["--redis-host", "127.0.0.1", "--redis-port", str(redis_port)]
        command += ["--namespace", NAMESPACE]
    return command


def start(
    setup: Setup, log_dir: Path, cpus: set[int] | None = None, cluster_replicas: int = 1
) -> Running:
    log_dir.mkdir(parents=True, exist_ok=True)
    redis = None
    cluster = None
    url = None
    if setup.cluster:
        cluster = ClusterTopology(replicas_per_master=cluster_replicas).start()
        url = cluster.url
    elif setup.redis:
        redis = RedisServer().start()
        url = redis.url
    running = Running(setup, redis, [], [], cluster=cluster)
    if cluster is not None:
        running.master_ports = [n.port for n in cluster.masters()]
        running.replica_ports = [n.port for n in cluster.replicas()]
    if cpus:
        for pid in running.redis_pids("masters") + running.redis_pids("replicas"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, cpus)
    try:
        for i in range(setup.processes):
            port = free_port()
            log = log_dir / f"{setup.name}-{i}-{port}.log"
            command = server_command(setup, port, url, redis.port if redis else None)
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_preexec(cpus),
                )
            running.processes.append(process)
            running.ports.append(port)
            running.logs.append(log)
            wait_port(port, process)
    except BaseException:
        running.stop()
        raise
    time.sleep(0.3)  # engines connect to Redis / finish start-up
    return running


def source_state() -> dict[str, Any]:
    """Which code of this project ran: git HEAD, uncommitted files under src/, a digest."""
    import hashlib

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except OSError:
            return ""

    digest = hashlib.sha256()
    for path in sorted((ROOT / "src").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".lua"):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return {
        "git_head": git("rev-parse", "--short", "HEAD"),
        "uncommitted_in_src": [
            line.strip() for line in git("status", "--porcelain", "--", "src").splitlines()
        ],
        "src_digest": digest.hexdigest()[:16],
    }


def versions() -> dict[str, str]:
    def out(command: list[str]) -> str:
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except OSError:
            return "missing"

    import platform

    result = {
        "python": platform.python_version(),
        "node": out(["node", "--version"]),
        "redis_server": out(["redis-server", "--version"]),
        "kernel": platform.release(),
    }
    node_modules = BENCH / "node" / "node_modules"
    for name in ("faye", "faye-redis", "redis"):
        package = node_modules / name / "package.json"
        if package.exists():
            import json

            result[f"npm {name}"] = json.loads(package.read_text())["version"]
    from importlib import metadata

    for name in ("faye-redis-ng", "uvicorn", "websockets", "orjson", "redis", "hiredis", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            result[f"pypi {name}"] = metadata.version(name)
    return result

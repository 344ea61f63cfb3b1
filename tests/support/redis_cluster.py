"""Real Redis Cluster and Sentinel topologies for tests, on free loopback ports.

* :class:`ClusterTopology`: 6 ``redis-server --cluster-enabled yes`` (3 masters, 3
  replicas) joined with ``redis-cli --cluster create --cluster-replicas 1``.
* :class:`SentinelTopology`: a master, its replica and 3 Sentinels (``redis-server
  --sentinel``, which is what the ``redis-sentinel`` binary is) watching it.

Both keep their nodes as :class:`RedisServer` processes, so a test can SIGKILL one.
Failure detection is short (1 s) so that failover tests finish quickly. The machine's
own Redis on 6379 is never touched.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from tests.support.redis_server import RedisServer, redis_available

NODE_TIMEOUT_MS = 1000
SERVICE = "faye-master"


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free as well."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 <= 65535 and _free(port + 10000):
            return port
    # The ephemeral range may sit above 55535: pick from below it.
    for port in range(20000, 30000, 7):
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_until(check: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def tools_available() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def _info(port: int, section: str) -> dict[str, Any]:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        return dict(client.info(section))
    finally:
        client.close()


class ClusterTopology:
    """A 3-master, 3-replica Redis Cluster."""

    def __init__(self, masters: int = 3, replicas_per_master: int = 1) -> None:
        self.size = masters * (1 + replicas_per_master)
        self.replicas_per_master = replicas_per_master
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        live = [n for n in self.nodes if n.process is not None]
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in live)

    def start(self) -> ClusterTopology:
        try:
            for _ in range(self.size):
                port = cluster_port()
                node = RedisServer(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    port=port,
                )
                self.nodes.append(node.start())
            cli = shutil.which("redis-cli") or "redis-cli"
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{n.port}" for n in self.nodes),
                    "--cluster-replicas",
                    str(self.replicas_per_master),
                    "--cluster-yes",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=60,
            )
            self.wait_healthy()
            # A replica that never synced cannot take over (its data counts as too old).
            wait_until(self._replicas_synced, 30, "the replicas to sync")
        except BaseException:
            self.cleanup()
            raise
        return self

    def _replicas_synced(self) -> bool:
        infos = [_info(n.port, "replication") for n in self._live()]
        replicas = [i for i in infos if i["role"] == "slave"]
        expected = self.size - self.size // (1 + self.replicas_per_master)
        return len(replicas) == expected and all(
            i.get("master_link_status") == "up" for i in replicas
        )

    def _live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None]

    def wait_healthy(self, limit: float = 30) -> None:
        """Every live node says cluster_state:ok and sees every slot served."""

        def ok() -> bool:
            for node in self._live():
                info = _info_cluster(node.port)
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return False
            return True

        wait_until(ok, limit, "cluster_state:ok")

    def masters(self) -> list[RedisServer]:
        return [n for n in self._live() if _info(n.port, "replication")["role"] == "master"]

    def replicas(self) -> list[RedisServer]:
        return [n for n in self._live() if _info(n.port, "replication")["role"] == "slave"]

    def master_of_slot(self, slot: int) -> RedisServer:
        client = redis.Redis(host="127.0.0.1", port=self._live()[0].port, socket_timeout=1)
        try:
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    port = int(master[1])
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise LookupError(slot)

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def _info_cluster(port: int) -> dict[str, str]:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        text = client.execute_command("CLUSTER INFO")
    finally:
        client.close()
    if isinstance(text, bytes):
        text = text.decode()
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    pairs = (line.split(":", 1) for line in str(text).splitlines() if ":" in line)
    return {k: v.strip() for k, v in pairs}


class Sentinel:
    """One ``redis-server --sentinel`` process with a generated configuration."""

    def __init__(self, master_port: int, quorum: int) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.port = cluster_port()
        self.dir = Path(tempfile.mkdtemp(prefix="faye-sentinel-"))
        self.config = self.dir / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.dir}",
                    f"logfile {self.dir / 'sentinel.log'}",
                    f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} {quorum}",
                    f"sentinel down-after-milliseconds {SERVICE} {NODE_TIMEOUT_MS}",
                    f"sentinel failover-timeout {SERVICE} 3000",
                    f"sentinel parallel-syncs {SERVICE} 1",
                    "",
                ]
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Sentinel:
        self.process = subprocess.Popen(
            [self.binary, str(self.config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()

        wait_until(up, 10, "a sentinel to start")
        return self

    def master(self) -> dict[str, Any]:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            return dict(client.sentinel_master(SERVICE))
        finally:
            client.close()

    def cleanup(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelTopology:
    """A master, one replica and three Sentinels (quorum 2)."""

    def __init__(self) -> None:
        self.master = RedisServer()
        self.replica: RedisServer | None = None
        self.sentinels: list[Sentinel] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> SentinelTopology:
        try:
            self.master.start()
            self.replica = RedisServer("--replicaof", "127.0.0.1", str(self.master.port)).start()
            replica_port = self.replica.port
            wait_until(
                lambda: _info(replica_port, "replication").get("master_link_status") == "up",
                15,
                "the replica to sync",
            )
            self.sentinels = [Sentinel(self.master.port, quorum=2).start() for _ in range(3)]

            def known() -> bool:
                for sentinel in self.sentinels:
                    state = sentinel.master()
                    if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 1:
                        return False
                return True

            wait_until(known, 20, "the sentinels to find each other and the replica")
        except BaseException:
            self.cleanup()
            raise
        return self

    def current_master_port(self) -> int:
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError, OSError):
                return int(sentinel.master()["port"])
        raise RuntimeError("no sentinel answers")

    def servers(self) -> list[RedisServer]:
        return [s for s in (self.master, self.replica) if s is not None]

    def cleanup(self) -> None:
        for sentinel in self.sentinels:
            sentinel.cleanup()
        for server in self.servers():
            server.cleanup()


T = TypeVar("T", ClusterTopology, SentinelTopology)


@contextlib.contextmanager
def running(topology: T) -> Iterator[T]:
    """Start a topology for a test (skipping it when Redis tools are missing), then tear down."""
    needs_cli = isinstance(topology, ClusterTopology)
    if not redis_available() or (needs_cli and not tools_available()):
        pytest.skip("redis-server (and redis-cli for a Cluster) are not installed")
    topology.start()
    try:
        yield topology
    finally:
        topology.cleanup()

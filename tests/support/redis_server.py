"""Real ``redis-server`` processes for tests, on free loopback ports.

The machine's own Redis on 6379 is shared with other work and is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``stop()``/``start()`` keep its port for restart tests."""

    def __init__(self, *extra_args: str, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="faye-redis-"))
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def listen_args(self) -> list[str]:
        return ["--port", str(self.port)]

    def open_probe(self) -> socket.socket:
        """A connection to send PING on; a TLS server wraps it."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=0.5)

    def start(self) -> RedisServer:
        args = [
            self.binary,
            *self.listen_args(),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited: {err}")
            with contextlib.suppress(OSError), self.open_probe() as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running_redis(*extra_args: str) -> Iterator[RedisServer]:
    server = RedisServer(*extra_args).start()
    try:
        yield server
    finally:
        server.cleanup()


def redis_available() -> bool:
    return shutil.which("redis-server") is not None and os.environ.get("FAYE_NO_REDIS") != "1"

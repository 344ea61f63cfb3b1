"""``faye serve`` as real server processes, and third-party client processes, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
INTEROP = ROOT / "tests" / "interop"

CLIENTS: dict[str, list[str]] = {
    "faye-node": ["node", str(INTEROP / "faye_client.js")],
    "cometd-node": ["node", str(INTEROP / "cometd_client.js")],
    "faye-ruby": ["ruby", str(INTEROP / "faye_client.rb")],
    "aiocometd": [sys.executable, str(INTEROP / "aiocometd_client.py")],
}


def wait_for_port(
    port: int, process: subprocess.Popen[Any] | None = None, limit: float = 15
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class ServerProcess:
    """A server run as a child process: stopped politely, or killed."""

    process: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """kill -9: no cleanup, no goodbye to Redis."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class FayeServer(ServerProcess):
    """One ``python -m faye serve`` process."""

    def __init__(
        self,
        *args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ):
        self.port = port or free_port()
        self.args = list(args)
        self.env = env or {}
        #: Where the server's output (its log) goes; None: the test's own stderr.
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/faye"

    def start(self) -> FayeServer:
        output = None if self.log is None else self.log.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "faye", "serve", "--port", str(self.port), *self.args],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=output,
                stderr=output,
            )
        finally:
            if output is not None:
                output.close()
        wait_for_port(self.port, self.process)
        return self


def start_client(
    name: str,
    url: str,
    mode: str,
    channel: str,
    transport: str,
    count: int,
    timeout: float = 25,
    **extra: Any,
) -> subprocess.Popen[str]:
    """Run one of the interop client scripts (see tests/interop/README.md)."""
    args = [
        *CLIENTS[name],
        "--url",
        url,
        "--mode",
        mode,
        "--channel",
        channel,
        "--count",
        str(count),
        "--transport",
        transport,
        "--timeout",
        str(timeout),
    ]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "READY":
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"subscriber not ready: {line!r}\n{err}")

"""The built wheel installed into a fresh virtualenv, as a user would get it from the index."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.support.processes import ROOT, wait_for_port
from tests.support.redis_server import free_port

CONSTRAINTS = ROOT / "constraints.txt"


def _run(args: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def build_wheel(out: Path) -> Path:
    """``pip wheel`` of this checkout, the way the release builds it (PEP 517, isolated)."""
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, ROOT])
    (wheel,) = out.glob("faye_redis_ng-*.whl")
    return wheel


class WheelVenv:
    """A virtualenv holding the wheel; dependencies at the pinned versions (pip's cache)."""

    def __init__(self, directory: Path, wheel: Path) -> None:
        self.dir = directory
        self.wheel = wheel
        self.bin = directory / "bin"
        self.python = self.bin / "python"

    def create(self) -> WheelVenv:
        _run([sys.executable, "-m", "venv", "--without-pip", self.dir])
        # The outer pip installs into the venv: no pip bootstrap per venv.
        self.install(str(self.wheel))
        return self

    def install(self, requirement: str) -> None:
        _run(
            [
                sys.executable, "-m", "pip", "--python", self.python,
                "install", "-q", "-c", CONSTRAINTS, requirement,
            ]
        )  # fmt: skip

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command of the venv, outside the source tree (nothing imported from src/)."""
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def importable(self, module: str) -> bool:
        return self.run("python", "-c", f"import {module}").returncode == 0

    def serve(self, *args: str) -> ServedProcess:
        port = free_port()
        process = subprocess.Popen(
            [str(self.bin / "faye"), "serve", "--port", str(port), "--log-level", "warning", *args],
            cwd=self.dir,
            env={k: v for k, v in os.environ.items() if not k.startswith("FAYE_")},
        )
        try:
            wait_for_port(port, process)
        except BaseException:
            process.kill()
            process.wait(10)
            raise
        return ServedProcess(process, port)


class ServedProcess:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}/faye"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

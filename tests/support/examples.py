"""Run the programs of examples/ as their READMEs say: real processes in their folders."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

from tests.support.processes import ROOT, wait_for_port
from tests.support.redis_server import free_port

EXAMPLES = ROOT / "examples"


def example_env(redis_url: str) -> dict[str, str]:
    """The environment an example runs in: this one, with the given Redis."""
    return {**os.environ, "FAYE_REDIS_URL": redis_url}


@contextlib.contextmanager
def serving(example: str, app: str, redis_url: str) -> Iterator[str]:
    """``python -m uvicorn <app>`` in ``examples/<example>``; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"],
        cwd=EXAMPLES / example,
        env=example_env(redis_url),
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(example: str, args: Sequence[str], redis_url: str) -> subprocess.CompletedProcess[str]:
    """Run a script of the example to its end (``python <args>`` in its folder)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=EXAMPLES / example,
        env=example_env(redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start(example: str, args: Sequence[str], redis_url: str) -> subprocess.Popen[str]:
    """Start a long-running script of the example, its output piped."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=EXAMPLES / example,
        env=example_env(redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

"""``faye`` on the command line: its version, and a memory server that never loads redis-py."""

from __future__ import annotations

import subprocess
import sys

import faye
from tests.support.processes import ROOT


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_version_is_the_package_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faye", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"faye-redis-ng {faye.__version__}"


def test_version_matches_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert version("faye-redis-ng") == faye.__version__


def test_memory_server_does_not_import_redis() -> None:
    # What `faye serve` loads for the memory engine: redis-py must stay optional.
    result = run_python(
        "import sys, faye.cli\n"
        "from faye.transport.uvicorn_websocket import FayeWebSocketProtocol\n"
        "args = faye.cli.build_parser().parse_args(['serve'])\n"
        "faye.cli.make_adapter(args)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'hiredis')))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

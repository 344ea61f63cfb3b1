"""examples/chat: two real servers sharing a private Redis, a browser page on each.

Headless Chromium (driven by playwright-core, as in tests/interop/test_browser.py) shows
both pages side by side; a message typed on one appears on the other, each once and in
order. The screenshot goes to the test's temporary folder; with
``FAYE_UPDATE_SCREENSHOTS=1`` it also replaces docs/images/chat.png, which the README shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, wait_for_port
from tests.support.redis_server import free_port, redis_available, running_redis

EXAMPLE = ROOT / "examples" / "chat"
INTEROP = ROOT / "tests" / "interop"
CLIENT_JS = INTEROP / "node_modules" / "faye" / "client" / "faye-browser-min.js"
DRIVER = Path(__file__).resolve().parent / "chat_browser.js"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.skipif(
        not (INTEROP / "node_modules" / "playwright-core").is_dir() or not CLIENT_JS.is_file(),
        reason="run tests/interop/install.sh",
    ),
]


@pytest.fixture
def chat_servers() -> Iterator[list[str]]:
    with running_redis() as redis_server:
        processes: list[subprocess.Popen[bytes]] = []
        urls = []
        try:
            for _ in range(2):
                port = free_port()
                process = subprocess.Popen(
                    [
                        sys.executable, str(EXAMPLE / "app.py"),
                        "--port", str(port),
                        "--redis", redis_server.url,
                        "--client-js", str(CLIENT_JS),
                    ]
                )  # fmt: skip
                processes.append(process)
                wait_for_port(port, process)
                urls.append(f"http://127.0.0.1:{port}")
            yield urls
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)


def test_a_message_typed_on_one_server_appears_on_the_other(
    chat_servers: list[str], tmp_path: Path
) -> None:
    shot = tmp_path / "chat.png"
    result = subprocess.run(
        ["node", str(DRIVER), *chat_servers, str(shot), "--chromium", CHROMIUM],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    conversation = [
        "alice: Hello from server A!",
        "bob: Hi alice, bob here on server B.",
        "alice: Both rooms are one room through Redis.",
    ]
    assert shown == {"a": conversation, "b": conversation}
    image = shot.read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 10_000
    if os.environ.get("FAYE_UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "images" / "chat.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image)

"""Real third-party Bayeux clients against our server (``faye serve`` in a subprocess).

Clients: the npm ``faye`` client (Node), the npm ``cometd`` client, the Ruby Faye client
from Debian's ``ruby-faye``, and the Python ``aiocometd`` client. Each subscriber must
receive exactly the payloads another client published, on exact, ``*`` and ``**``
subscriptions, over long-polling and WebSocket. ``tests/interop/install.sh`` (run by
``scripts/test``) installs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

pytestmark = pytest.mark.interop

CLIENTS: dict[str, list[str]] = {
    "faye-node": ["node", str(HERE / "faye_client.js")],
    "cometd-node": ["node", str(HERE / "cometd_client.js")],
    "faye-ruby": ["ruby", str(HERE / "faye_client.rb")],
    "aiocometd": [sys.executable, str(HERE / "aiocometd_client.py")],
}

COUNT = 3


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("faye serve exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("faye serve did not start")


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faye",
            "serve",
            "--port",
            str(port),
            "--timeout",
            "10",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/faye"
    finally:
        process.terminate()
        process.wait(10)


def start_client(
    name: str, url: str, mode: str, channel: str, transport: str, **extra: Any
) -> subprocess.Popen[str]:
    args = [
        *CLIENTS[name],
        "--url",
        url,
        "--mode",
        mode,
        "--channel",
        channel,
        "--count",
        str(COUNT),
        "--transport",
        transport,
        "--timeout",
        "25",
    ]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NODE_PATH": str(HERE / "node_modules")},
    )


def wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "READY":
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"subscriber not ready: {line!r}\n{err}")


# Each client subscribes once per transport, fed by a different publisher each time,
# with the subscription shapes rotated so every client meets `*` and `**`.
CASES = [
    ("faye-node", "long-polling", "faye-ruby", "websocket", "/x/*"),
    ("faye-node", "websocket", "cometd-node", "long-polling", "/x/**"),
    ("cometd-node", "long-polling", "faye-node", "websocket", "/x/y"),
    ("cometd-node", "websocket", "aiocometd", "long-polling", "/x/*"),
    ("faye-ruby", "long-polling", "aiocometd", "websocket", "/x/**"),
    ("faye-ruby", "websocket", "faye-node", "long-polling", "/x/*"),
    ("aiocometd", "long-polling", "cometd-node", "websocket", "/x/**"),
    ("aiocometd", "websocket", "faye-ruby", "long-polling", "/x/y"),
]


@pytest.mark.parametrize(
    ("subscriber", "sub_transport", "publisher", "pub_transport", "subscription"),
    CASES,
    ids=[f"{s}-{st}<-{p}-{pt}:{c}" for s, st, p, pt, c in CASES],
)
def test_subscriber_gets_exactly_what_was_published(
    server_url: str,
    subscriber: str,
    sub_transport: str,
    publisher: str,
    pub_transport: str,
    subscription: str,
) -> None:
    payload = {"text": "héllo wörld ✓", "n": 1.5, "nested": {"list": [1, None, True]}}
    sub = start_client(subscriber, server_url, "subscribe", subscription, sub_transport, linger=1)
    try:
        wait_ready(sub)
        pub = start_client(
            publisher, server_url, "publish", "/x/y", pub_transport, data=json.dumps(payload)
        )
        pub_out, pub_err = pub.communicate(timeout=60)
        assert pub.returncode == 0, f"publisher failed: {pub_out}\n{pub_err}"
        assert "PUBLISHED" in pub_out
        out, err = sub.communicate(timeout=60)
        assert sub.returncode == 0, f"subscriber failed ({sub.returncode}): {out}\n{err}"
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.communicate()
    received = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [m["channel"] for m in received] == ["/x/y"] * COUNT
    assert [m["data"] for m in received] == [{**payload, "seq": i} for i in range(COUNT)]

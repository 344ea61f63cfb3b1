"""Real third-party Bayeux clients against our server (``faye serve`` in a subprocess).

Clients: the npm ``faye`` client (Node), the npm ``cometd`` client, the Ruby Faye client
from Debian's ``ruby-faye``, and the Python ``aiocometd`` client. Each subscriber must
receive exactly the payloads another client published, on exact, ``*`` and ``**``
subscriptions, over long-polling and WebSocket. ``tests/interop/install.sh`` (run by
``scripts/test``) installs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import FayeServer, start_client, wait_ready

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

pytestmark = pytest.mark.interop

COUNT = 3


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    server = FayeServer("--timeout", "10", "--log-level", "warning").start()
    try:
        yield server.url
    finally:
        server.stop()


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
    sub = start_client(
        subscriber, server_url, "subscribe", subscription, sub_transport, COUNT, linger=1
    )
    try:
        wait_ready(sub)
        pub = start_client(
            publisher, server_url, "publish", "/x/y", pub_transport, COUNT, data=json.dumps(payload)
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

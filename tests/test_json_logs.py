"""``faye serve --log-format json``: every line on stderr is one JSON object."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

import httpx

from tests.support.processes import ROOT, wait_for_port
from tests.support.redis_server import free_port


class Served:
    url = ""
    #: Everything the server wrote on stderr, once it has stopped.
    stderr = ""


@contextlib.contextmanager
def serving(*args: str) -> Iterator[Served]:
    """``faye serve --log-format json ARGS`` while the block runs."""
    port = free_port()
    served = Served()
    served.url = f"http://127.0.0.1:{port}/faye"
    command = [sys.executable, "-m", "faye", "serve", "--port", str(port), "--log-format"]
    process = subprocess.Popen(
        [*command, "json", *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        yield served
    finally:
        process.terminate()
        _, served.stderr = process.communicate(timeout=15)


def test_every_log_line_is_json() -> None:
    with serving() as served:
        url = served.url
        assert (
            httpx.post(
                url, content=b"{nope", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
        assert httpx.get(f"{url}/healthz").status_code == 200
    lines = [line for line in served.stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in entries)
    loggers = {entry["logger"] for entry in entries}
    assert "faye.transport" in loggers  # our own: the bad request
    assert "uvicorn.error" in loggers  # uvicorn's, through the same formatter
    assert any(e["logger"] == "uvicorn.access" and "healthz" in e["message"] for e in entries)


def test_debug_logs_carry_the_monitors_events_without_data() -> None:
    with serving("--log-level", "debug") as served:
        url = served.url
        handshake = {
            "channel": "/meta/handshake",
            "version": "1.0",
            "supportedConnectionTypes": ["long-polling"],
        }
        client_id = httpx.post(url, json=handshake).json()[0]["clientId"]
        subscribe = {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/a"}
        assert httpx.post(url, json=subscribe).json()[0]["successful"]
        published = {"channel": "/a", "clientId": client_id, "data": "secret-payload"}
        assert httpx.post(url, json=published).json()[0]["successful"]
    events = [
        entry["message"]
        for entry in map(json.loads, filter(str.strip, served.stderr.splitlines()))
        if entry["logger"] == "faye.events"
    ]
    assert f"handshake {client_id}" in events
    assert f"subscribe {client_id} /a" in events
    assert f"publish {client_id} /a" in events
    assert "secret-payload" not in served.stderr

"""``faye serve --log-format json``: every line on stderr is one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.support.processes import ROOT, wait_for_port
from tests.support.redis_server import free_port


def test_every_log_line_is_json() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "faye", "serve", "--port", str(port), "--log-format", "json"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}/faye"
        assert (
            httpx.post(
                url, content=b"{nope", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
    lines = [line for line in err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in entries)
    loggers = {entry["logger"] for entry in entries}
    assert "faye.transport" in loggers  # our own: the bad request
    assert "uvicorn.error" in loggers  # uvicorn's, through the same formatter
    assert any(e["logger"] == "uvicorn.access" and "healthz" in e["message"] for e in entries)


def test_debug_logs_carry_the_monitors_events_without_data() -> None:
    port = free_port()
    command = [sys.executable, "-m", "faye", "serve", "--port", str(port), "--log-format"]
    process = subprocess.Popen(
        [*command, "json", "--log-level", "debug"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}/faye"
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
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
    events = [
        entry["message"]
        for entry in map(json.loads, filter(str.strip, err.splitlines()))
        if entry["logger"] == "faye.events"
    ]
    assert f"handshake {client_id}" in events
    assert f"subscribe {client_id} /a" in events
    assert f"publish {client_id} /a" in events
    assert "secret-payload" not in err

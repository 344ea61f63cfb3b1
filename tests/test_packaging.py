"""The wheel as users install it: no extras serves from memory, ``[redis]`` runs a fleet.

Builds the wheel once (or takes the one named by ``FAYE_TEST_WHEEL``, as the release
workflow does for the wheel it publishes) and installs it into one fresh virtualenv for
the module, first without extras, then adds ``[redis]``: the tests run in file order.
Run them alone with ``pytest -m packaging``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import faye
from tests.support.redis_server import RedisServer
from tests.support.wheel_venv import WheelVenv, build_wheel

pytestmark = pytest.mark.packaging


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    root: Path = tmp_path_factory.mktemp("wheel")
    given = os.environ.get("FAYE_TEST_WHEEL")
    wheel = Path(given).resolve() if given else build_wheel(root / "dist")
    return WheelVenv(root / "venv", wheel).create()


@pytest.fixture(scope="module")
def redis_venv(venv: WheelVenv) -> WheelVenv:
    venv.install(f"{venv.wheel}[redis]")
    return venv


def bayeux(http: httpx.Client, url: str, *messages: dict[str, Any]) -> list[dict[str, Any]]:
    response = http.post(url, json=list(messages))
    assert response.status_code == 200, response.text
    replies: list[dict[str, Any]] = response.json()
    return replies


def handshake(http: httpx.Client, url: str) -> str:
    (reply,) = bayeux(
        http,
        url,
        {
            "channel": "/meta/handshake",
            "version": "1.0",
            "supportedConnectionTypes": ["long-polling"],
        },
    )
    assert reply["successful"], reply
    client_id: str = reply["clientId"]
    return client_id


def test_wheel_without_extras_serves_from_memory(venv: WheelVenv) -> None:
    assert not venv.importable("redis")
    assert not venv.importable("hiredis")
    assert not venv.importable("httpx")
    version = venv.run("faye", "--version")
    assert version.stdout.strip() == f"faye-redis-ng {faye.__version__}", version.stderr
    server = venv.serve()
    try:
        with httpx.Client(timeout=10) as http:
            client_id = handshake(http, server.url)
            (connected,) = bayeux(
                http,
                server.url,
                {
                    "channel": "/meta/connect",
                    "clientId": client_id,
                    "connectionType": "long-polling",
                    "advice": {"timeout": 0},
                },
            )
            assert connected["successful"], connected
    finally:
        server.stop()


def test_wheel_without_extras_names_the_missing_extra(venv: WheelVenv) -> None:
    refused = venv.run("faye", "serve", "--redis", "redis://127.0.0.1:1/0")
    assert refused.returncode == 1
    assert "pip install 'faye-redis-ng[redis]'" in refused.stderr
    client = venv.run("python", "-c", "import faye; faye.LongPollingTransport('http://x/faye')")
    assert client.returncode != 0
    assert "pip install 'faye-redis-ng[client]'" in client.stderr


@pytest.fixture
def two_servers(redis_venv: WheelVenv, redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    namespace = f"wheel-{uuid.uuid4().hex[:8]}"
    options = ("--redis", redis_server.url, "--namespace", namespace, "--timeout", "5")
    first = redis_venv.serve(*options)
    try:
        second = redis_venv.serve(*options)
        try:
            yield first.url, second.url
        finally:
            second.stop()
    finally:
        first.stop()


def test_wheel_with_redis_extra_runs_a_two_server_fleet(two_servers: tuple[str, str]) -> None:
    first, second = two_servers
    with httpx.Client(timeout=10) as http:
        subscriber = handshake(http, first)
        (subscribed,) = bayeux(
            http,
            second,  # the client is known to every server of the fleet
            {"channel": "/meta/subscribe", "clientId": subscriber, "subscription": "/wheel"},
        )
        assert subscribed["successful"], subscribed
        publisher = handshake(http, second)
        (published,) = bayeux(
            http,
            second,
            {"channel": "/wheel", "clientId": publisher, "data": {"text": "across servers"}},
        )
        assert published["successful"], published
        replies = bayeux(
            http,
            first,
            {"channel": "/meta/connect", "clientId": subscriber, "connectionType": "long-polling"},
        )
    deliveries = [r["data"] for r in replies if r.get("channel") == "/wheel"]
    assert deliveries == [{"text": "across servers"}]

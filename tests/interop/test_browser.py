"""The real Faye browser client (npm faye 1.4.3) in headless Chromium, over every transport.

Server A (a LiveServer) is our ``ASGIAdapter`` wrapping a tiny page app; server B serves
only the page, so a page loaded from B is on another origin. Each page loads
``<A>/faye/client.js`` from our server, creates ``new Faye.Client("<A>/faye")``, disables
what would otherwise win over the transport under test, subscribes to ``<base>/*``,
publishes two messages itself while the test publishes two more over plain HTTP, and
reports what it received. ``browser.js`` drives Chromium (``playwright-core`` with
Debian's ``/usr/bin/chromium``; ``tests/interop/install.sh`` installs both).

The transport is checked on the server, by an extension that records the
``connectionType`` of every ``/meta/connect`` and the request each delivery left on:
a WebSocket, an EventSource stream, a JSON POST from the same origin, a form POST from
origin B, or a JSON-P ``GET ...&jsonp=...``.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

import faye
from tests.support.live_server import LiveServer

HERE = Path(__file__).resolve().parent
CLIENT_JS = HERE / "node_modules" / "faye" / "client" / "faye-browser-min.js"
BROWSER_JS = HERE / "browser.js"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.skipif(
        not (HERE / "node_modules" / "playwright-core").is_dir() or not CLIENT_JS.is_file(),
        reason="run tests/interop/install.sh",
    ),
]

PAGE_PUBLISHES = 2
TEST_PUBLISHES = 2
PAYLOAD = {"text": "héllo wörld ✓ \u2028 </script>", "n": 1.5, "nested": {"list": [1, None, True]}}

#: Runs before client.js, which takes ``window.WebSocket`` as it loads: records the
#: extensions each socket negotiated (``"permessage-deflate; ..."`` when Chromium
#: compresses its frames).
SOCKET_WATCH = """
(function () {
  var Native = window.WebSocket;
  window.__wsExtensions = [];
  window.WebSocket = function (url, protocols) {
    var socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    socket.addEventListener("open", function () { window.__wsExtensions.push(socket.extensions); });
    return socket;
  };
})();
"""

PAGE_SCRIPT = """
(function () {
  var cfg = JSON.parse(document.getElementById("cfg").textContent);
  function done(result) { if (window.__result === undefined) window.__result = result; }
  window.addEventListener("error", function (e) { done({error: "page error: " + e.message}); });
  if (!window.Faye) return done({error: "Faye client did not load from " + cfg.script});
  var client = new Faye.Client(cfg.endpoint, {timeout: 10, retry: 1});
  cfg.disable.forEach(function (feature) { client.disable(feature); });
  var received = [];
  window.__progress = received;
  function finish() {
    var dispatcher = client._dispatcher;
    done({received: received, clientId: dispatcher.clientId,
          connectionType: dispatcher.connectionType, wsExtensions: window.__wsExtensions});
  }
  var subscription = client.subscribe(cfg.channel + "/*").withChannel(function (channel, data) {
    received.push({channel: channel, data: data});
    if (received.length === cfg.expect) setTimeout(finish, cfg.linger);
  });
  subscription.callback(function () {
    for (var i = 0; i < cfg.publish; i++) {
      var data = JSON.parse(JSON.stringify(cfg.payload));
      data.from = "page"; data.seq = i;
      client.publish(cfg.channel + "/page", data).errback(function (error) {
        done({error: "publish failed: " + error.message});
      });
    }
  });
  subscription.errback(function (error) { done({error: "subscribe failed: " + error.message}); });
})();
"""


async def page_app(scope: Any, receive: Any, send: Any) -> None:
    """``GET /page.html?server=...&channel=...&disable=...``: the test page, else 404."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1008})
        return
    status, body = 404, b"not found"
    if scope["path"] == "/favicon.ico":
        status, body = 204, b""
    elif scope["path"] == "/page.html":
        query = parse_qs(scope["query_string"].decode())
        server = query["server"][0]
        cfg = {
            "endpoint": f"{server}/faye",
            "script": f"{server}/faye/client.js",
            "channel": query["channel"][0],
            "disable": query.get("disable", []),
            "publish": PAGE_PUBLISHES,
            "expect": PAGE_PUBLISHES + TEST_PUBLISHES,
            "linger": 500,
            "payload": PAYLOAD,
        }
        text = (
            "<!doctype html><meta charset=utf-8><title>faye browser test</title>"
            f"<script>{SOCKET_WATCH}</script>"
            f'<script src="{html.escape(cfg["script"])}"></script>'
            '<script type="application/json" id="cfg">'
            + json.dumps(cfg).replace("<", "\\u003c")
            + "</script><script>"
            + PAGE_SCRIPT
            + "</script>"
        )
        status, body = 200, text.encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Recorder:
    """A server extension that notes how each client connects and how deliveries leave."""

    connects: list[tuple[str, str | None]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    subscribed: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expect_subscription(self, pattern: str) -> threading.Event:
        with self.lock:
            return self.subscribed.setdefault(pattern, threading.Event())

    def incoming(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        if message.get("channel") == "/meta/connect":
            with self.lock:
                self.connects.append((message.get("clientId", ""), message.get("connectionType")))
        return message

    def outgoing(self, message: dict[str, Any], request: Any) -> dict[str, Any]:
        channel = str(message.get("channel", ""))
        if channel == "/meta/subscribe" and message.get("successful"):
            self.expect_subscription(str(message.get("subscription"))).set()
        elif not channel.startswith("/meta/") and "data" in message and request is not None:
            wire = {
                "channel": channel,
                "scope": request.scope["type"],
                "method": request.method if request.scope["type"] == "http" else None,
                "accept": request.headers.get("accept", ""),
                "content_type": request.headers.get("content-type", ""),
                "origin": request.headers.get("origin"),
                "jsonp": request.params.get("jsonp"),
            }
            with self.lock:
                self.deliveries.append(wire)
        return message

    def connection_types(self, client_id: str) -> list[str | None]:
        with self.lock:
            return [kind for cid, kind in self.connects if cid == client_id]

    def wires(self, base: str) -> list[dict[str, Any]]:
        with self.lock:
            return [w for w in self.deliveries if w["channel"].startswith(base + "/")]


@dataclass
class Servers:
    faye: LiveServer  # origin A: the Bayeux endpoint, client.js and the page
    other: LiveServer  # origin B: the page only
    recorder: Recorder


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    recorder = Recorder()
    adapter = faye.ASGIAdapter(
        mount="/faye",
        timeout=10,
        client_script=CLIENT_JS,
        app=page_app,
        extensions=[recorder],
    )
    a = LiveServer(adapter).start()
    b = LiveServer(page_app).start()
    try:
        yield Servers(a, b, recorder)
    finally:
        b.stop()
        a.stop()


def publish_over_http(base_url: str, channel: str) -> None:
    """Handshake and publish TEST_PUBLISHES messages with plain JSON POSTs."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        reply = http.post(
            "/faye",
            json=[
                {
                    "channel": "/meta/handshake",
                    "version": "1.0",
                    "supportedConnectionTypes": ["long-polling"],
                }
            ],
        ).json()
        assert reply[0]["successful"], reply
        client_id = reply[0]["clientId"]
        batch = [
            {
                "channel": channel,
                "clientId": client_id,
                "data": {**PAYLOAD, "from": "test", "seq": i},
            }
            for i in range(TEST_PUBLISHES)
        ]
        replies = http.post("/faye", json=batch).json()
        assert [r["successful"] for r in replies] == [True] * TEST_PUBLISHES, replies
        http.post("/faye", json=[{"channel": "/meta/disconnect", "clientId": client_id}])


@dataclass(frozen=True)
class Case:
    transport: str
    cross_origin: bool
    disable: tuple[str, ...]
    ws_compression: str = "off"

    @property
    def name(self) -> str:
        if self.ws_compression == "off":
            return self.transport
        return f"{self.transport}-deflate-{self.ws_compression}"

    def wire_ok(self, wire: dict[str, Any], origin_a: str, origin_b: str) -> bool:
        if self.transport == "websocket":
            return bool(wire["scope"] == "websocket")
        if wire["scope"] != "http":
            return False
        if self.transport == "eventsource":
            return wire["method"] == "GET" and "text/event-stream" in wire["accept"]
        if self.transport == "long-polling":
            return bool(
                wire["method"] == "POST"
                and wire["content_type"].startswith("application/json")
                and wire["origin"] in (None, origin_a)
            )
        if self.transport == "cross-origin-long-polling":
            return bool(
                wire["method"] == "POST"
                and not wire["content_type"].startswith("application/json")
                and wire["origin"] == origin_b
            )
        return bool(wire["method"] == "GET" and wire["jsonp"])  # callback-polling


CASES = [
    Case("websocket", False, ()),
    # Chromium offers permessage-deflate; once accepted it sends every frame compressed.
    Case("websocket", False, (), ws_compression="on"),
    Case("websocket", False, (), ws_compression="no-context-takeover"),
    Case("eventsource", False, ("websocket",)),
    Case("long-polling", False, ("websocket", "eventsource")),
    Case("cross-origin-long-polling", True, ("websocket",)),
    Case("callback-polling", True, ("websocket", "cross-origin-long-polling")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_browser_client_over(servers: Servers, case: Case) -> None:
    base = f"/browser/{case.name}"
    page_server = servers.other if case.cross_origin else servers.faye
    query = urlencode(
        {
            "server": servers.faye.base,
            "channel": base,
            "disable": [*case.disable, "autodisconnect"],
        },
        doseq=True,
    )
    url = f"{page_server.base}/page.html?{query}"
    subscribed = servers.recorder.expect_subscription(base + "/*")
    adapter = servers.faye.app
    adapter.ws_compression = case.ws_compression  # read by each new WebSocket
    browser = subprocess.Popen(
        ["node", str(BROWSER_JS), url, "--timeout", "20", "--chromium", CHROMIUM],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not subscribed.wait(0.1):
            if browser.poll() is not None or time.monotonic() > deadline:
                out, err = browser.communicate(timeout=10)
                pytest.fail(f"the page never subscribed ({browser.returncode}):\n{out}\n{err}")
        publish_over_http(servers.faye.base, base + "/test")
        out, err = browser.communicate(timeout=40)
    finally:
        adapter.ws_compression = "off"
        if browser.poll() is None:
            browser.kill()
            browser.communicate()
    assert browser.returncode == 0, f"browser.js failed ({browser.returncode}):\n{out}\n{err}"
    result = json.loads(out)

    # Exactly the four payloads, each once (the page's and the test's may interleave).
    expected = [
        {"channel": f"{base}/{source}", "data": {**PAYLOAD, "from": source, "seq": i}}
        for source, count in (("page", PAGE_PUBLISHES), ("test", TEST_PUBLISHES))
        for i in range(count)
    ]

    def key(message: dict[str, Any]) -> str:
        return json.dumps(message, sort_keys=True)

    assert sorted(result["received"], key=key) == sorted(expected, key=key), err

    # The client's own view, and the server's: every connect and every delivery.
    assert result["connectionType"] == case.transport
    if case.transport == "websocket":
        deflate = case.ws_compression != "off"
        extensions = result["wsExtensions"]
        assert extensions, "the page opened no WebSocket"
        assert all(e.startswith("permessage-deflate") is deflate for e in extensions), extensions
    kinds = servers.recorder.connection_types(result["clientId"])
    # Same-origin, the handshake goes over long-polling and the client may send its
    # first connect there before the WebSocket or EventSource has opened.
    switched = kinds
    if not case.cross_origin and case.transport != "long-polling":
        while switched[:1] == ["long-polling"]:
            switched = switched[1:]
    assert switched, f"the server saw no {case.transport} /meta/connect: {kinds}"
    assert set(switched) == {case.transport}, kinds
    wires = servers.recorder.wires(base)
    assert len(wires) == len(expected), wires
    bad = [w for w in wires if not case.wire_ok(w, servers.faye.base, servers.other.base)]
    assert not bad, f"deliveries left on the wrong transport: {bad}"

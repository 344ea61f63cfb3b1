"""The admin page: ``<mount>/admin``, a live view of one server, behind a token.

Off unless ``admin_token`` (``faye serve --admin-token``) is set; then ``<mount>/admin``
is a static page and ``<mount>/admin/stats`` the JSON it polls, both answered only with
the token: as the password of HTTP Basic authentication (a browser asks for it once and
sends it with the page's own requests; the user name is ignored) or as
``Authorization: Bearer <token>``. Anything else gets 401, and with the page off, 404.

Everything shown comes from the server's :class:`faye.events.Monitor`: its counters
(the page turns them into rates), the adapter's open connections, and subscriber counts
per channel kept from the monitor's ``subscribe``/``unsubscribe``/``close`` events.
Those counts cover subscriptions made through this process and cost one set entry per
subscription, kept only while the page is on; the JSON lists the :data:`TOP_CHANNELS`
busiest channels, each name cut to :data:`NAME_CHARS` characters.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from faye.transport.responses import Scope, Send, header, respond

if TYPE_CHECKING:
    from faye.adapter import ASGIAdapter

#: Channels listed, busiest first.
TOP_CHANNELS = 20
#: Characters of a channel name shown (names may be up to --max-channel-length).
NAME_CHARS = 120

_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
]
_PAGE_POLICY = (
    b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    b"connect-src 'self'; img-src 'self'"
)


class ChannelCounts:
    """Subscribers per channel through this process, from the monitor's events."""

    def __init__(self) -> None:
        self.subscribers: Counter[str] = Counter()
        self._by_client: dict[str, set[str]] = {}

    def subscribe(self, client_id: str, channel: str) -> None:
        channels = self._by_client.setdefault(client_id, set())
        if channel not in channels:
            channels.add(channel)
            self.subscribers[channel] += 1

    def unsubscribe(self, client_id: str, channel: str) -> None:
        channels = self._by_client.get(client_id)
        if channels is None or channel not in channels:
            return
        channels.discard(channel)
        if not channels:
            del self._by_client[client_id]
        self._drop(channel)

    def close(self, client_id: str) -> None:
        for channel in self._by_client.pop(client_id, ()):
            self._drop(channel)

    def _drop(self, channel: str) -> None:
        self.subscribers[channel] -= 1
        if self.subscribers[channel] <= 0:
            del self.subscribers[channel]

    def top(self, n: int) -> list[tuple[str, int]]:
        return self.subscribers.most_common(n)


class Admin:
    def __init__(self, adapter: ASGIAdapter, token: str) -> None:
        if not token:
            raise ValueError("admin_token must not be empty")
        self.adapter = adapter
        self._token = token.encode()
        prefix = adapter.mount.rstrip("/")
        self.page_path = f"{prefix}/admin"
        self.stats_path = f"{prefix}/admin/stats"
        self.channels = ChannelCounts()
        monitor = adapter.proxy
        monitor.bind("subscribe", self.channels.subscribe)
        monitor.bind("unsubscribe", self.channels.unsubscribe)
        monitor.bind("close", self.channels.close)
        self._started = time.time()

    def handles(self, path: str) -> bool:
        return path in (self.page_path, self.stats_path)

    def authorized(self, scope: Scope) -> bool:
        given = header(scope, b"authorization") or ""
        scheme, _, value = given.partition(" ")
        secret = b""
        if scheme.lower() == "bearer":
            secret = value.strip().encode()
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            secret = decoded.partition(b":")[2]
        return hmac.compare_digest(secret, self._token)

    async def serve(self, scope: Scope, send: Send, path: str) -> None:
        if not self.authorized(scope):
            await respond(
                send,
                401,
                [(b"www-authenticate", b'Basic realm="faye admin", charset="UTF-8"')],
                b"Unauthorized\n",
            )
            return
        if path == self.stats_path:
            body = json.dumps(self.snapshot(), separators=(",", ":")).encode()
            await respond(send, 200, [(b"content-type", b"application/json"), *_HEADERS], body)
            return
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-security-policy", _PAGE_POLICY),
            *_HEADERS,
        ]
        await respond(send, 200, headers, PAGE.encode())

    def snapshot(self) -> dict[str, Any]:
        """What the page shows, now."""
        adapter = self.adapter
        monitor = adapter.proxy
        counts = monitor.counts
        return {
            "time": time.time(),
            "up": time.time() - self._started,
            "engine": type(monitor.backend).__name__,
            "clients": monitor.connections_held(),
            "subscriptions": monitor.subscriptions_held(),
            "connections": {k: v for k, v in sorted(adapter.open_connections.items())},
            "counts": {
                name: counts[name]
                for name in (
                    "handshake",
                    "subscribe",
                    "unsubscribe",
                    "publish",
                    "deliveries",
                    "disconnect",
                    "close",
                    "redis_round_trips",
                    "redis_errors",
                    "gc_runs",
                    "gc_clients_collected",
                )
            },
            "limit_hits": dict(sorted(monitor.limit_hits.items())),
            "channels": [
                {"channel": name[:NAME_CHARS], "subscribers": n}
                for name, n in self.channels.top(TOP_CHANNELS)
            ],
            "channel_count": len(self.channels.subscribers),
        }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Faye server</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f3f4f6; color: #111; }
header { background: #1f2937; color: #fff; padding: 10px 20px; display: flex; gap: 20px;
         align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
header span { color: #cbd5e1; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr));
       gap: 14px; padding: 14px 20px; }
section { background: #fff; border-radius: 6px; padding: 10px 14px;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { font-size: 13px; text-transform: uppercase; color: #6b7280; margin: 0 0 8px; }
.big { font-size: 30px; font-weight: 600; }
table { width: 100%; border-collapse: collapse; }
td { padding: 3px 0; border-bottom: 1px solid #eef0f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.c { font-family: ui-monospace, monospace; word-break: break-all; }
canvas { width: 100%; height: 60px; }
#error { color: #fca5a5; }
.legend { color: #6b7280; font-size: 12px; }
</style></head>
<body>
<header><h1>Faye server</h1><span id="engine"></span><span id="up"></span>
<span id="error"></span></header>
<main>
<section><h2>Live clients</h2><div class="big" id="clients">-</div>
<div><span id="subscriptions">-</span> subscriptions</div></section>
<section><h2>Connections by transport</h2><table id="connections"></table></section>
<section><h2>Rates (per second)</h2><table id="rates"></table>
<canvas id="spark" width="600" height="120"></canvas>
<div class="legend"><span style="color:#2563eb">&#9632; publishes</span>
<span style="color:#16a34a">&#9632; deliveries</span>, last minute</div></section>
<section><h2>Channels (top by subscribers)</h2><table id="channels"></table>
<div id="channel-count"></div></section>
<section><h2>Totals</h2><table id="totals"></table></section>
<section><h2>Limit hits</h2><table id="limits"></table></section>
</main>
<script>
(function () {
  "use strict";
  var previous = null, history = [], updates = 0;
  function rows(id, pairs, cls) {
    var table = document.getElementById(id);
    while (table.firstChild) table.removeChild(table.firstChild);
    pairs.forEach(function (pair) {
      var tr = document.createElement("tr");
      var a = document.createElement("td"), b = document.createElement("td");
      a.textContent = pair[0]; if (cls) a.className = cls;
      b.textContent = pair[1]; b.className = "n";
      tr.appendChild(a); tr.appendChild(b); table.appendChild(tr);
    });
  }
  function text(id, value) { document.getElementById(id).textContent = value; }
  function spark(points) {
    var canvas = document.getElementById("spark"), ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, max = 1;
    points.forEach(function (p) { max = Math.max(max, p[0], p[1]); });
    ctx.clearRect(0, 0, w, h);
    [[0, "#2563eb"], [1, "#16a34a"]].forEach(function (line) {
      ctx.strokeStyle = line[1]; ctx.lineWidth = 2; ctx.beginPath();
      points.forEach(function (p, i) {
        var x = i * w / Math.max(points.length - 1, 1), y = h - 4 - (h - 8) * p[line[0]] / max;
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
  }
  function show(s) {
    text("engine", s.engine);
    text("up", "up " + Math.round(s.up) + " s");
    text("clients", s.clients);
    text("subscriptions", s.subscriptions);
    rows("connections", ["websocket", "eventsource", "long-polling"].map(function (t) {
      return [t, s.connections[t] || 0];
    }));
    if (previous) {
      var dt = Math.max(s.time - previous.time, 0.001);
      var rate = function (k) { return (s.counts[k] - previous.counts[k]) / dt; };
      var point = [rate("publish"), rate("deliveries")];
      history.push(point); if (history.length > 60) history.shift();
      rows("rates", [["publishes", point[0].toFixed(1)], ["deliveries", point[1].toFixed(1)],
                     ["handshakes", rate("handshake").toFixed(1)],
                     ["Redis round trips", rate("redis_round_trips").toFixed(1)]]);
      spark(history);
    }
    rows("channels", s.channels.map(function (c) { return [c.channel, c.subscribers]; }), "c");
    text("channel-count", s.channel_count + " channel(s) with subscribers here");
    rows("totals", Object.keys(s.counts).map(function (k) { return [k, s.counts[k]]; }));
    var hits = Object.keys(s.limit_hits);
    rows("limits", hits.length ? hits.map(function (k) { return [k, s.limit_hits[k]]; })
                               : [["none", 0]]);
    previous = s; updates += 1;
    document.body.setAttribute("data-updates", String(updates));
  }
  function poll() {
    fetch(location.pathname.replace(/\\/?$/, "/stats"),
          {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (s) { text("error", ""); show(s); })
      .catch(function (e) { text("error", String(e)); })
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
</script>
</body></html>
"""

"""Redis CPU per delivery of the current Redis layout and of three candidate layouts.

    .venv/bin/python bench/designs/run.py --repeat 3           # every design and shape
    .venv/bin/python bench/designs/run.py --designs logroute --shapes fanout1000 --mode ws

Only the Redis side is run: the current engine's own function library
(``faye.redis.scripts``, design ``current``), faye-redis-node 0.2.0's commands replayed
(``node``), and the prototypes beside this file: ``inbox.lua`` (candidate A: one stream
per server), ``log.lua`` (B: one stream per channel or pattern, servers subscribed per
name), ``logroute.lua`` (C: B's logs with A's routes to servers) and ``loglist.lua``
(C': C with lists for logs, the layout recommended for the next engine;
``loglist-trim`` also cuts single-subscriber logs on cursor writes).
Each design gets a fresh ``redis-server`` on a free loopback port. Two "servers", A and B,
hold the subscribers; a third, C, publishes. Each of A and B has a real pub/sub listener
(a thread) that, for the candidates, fans the published message out in memory to its
clients, once per client and publish, and keeps each client's cursor. Redis CPU is the
``INFO cpu`` delta (user + sys) of the redis-server over the timed part, less its idle
rate; command counts are ``INFO commandstats`` deltas, commands inside functions
included. Every client's delivery count is checked against the expected one.

Modes (how clients connect; what each delivery costs besides the publish):
  ws      a held socket: the current engine drains and acknowledges per message (W op with
          the previous acknowledgement); the candidates write all changed cursors in one
          call every ``--flush`` publish calls (1 s at 10 publishes/s)
  lp      long-polling on the same server: per delivery one connect cycle (client_exists,
          ping, the drain or the candidates' warm claim, and their cursor write)
  bounce  long-polling through a round-robin balancer: every connect lands on the other
          server, which takes the client over (ack on the old server for the current
          engine; a cold claim reading the log for the candidates)
  kill    (candidates) ws, and server A dies 5 publishes after a cursor flush; 2 more
          publishes happen while it is dead, then its clients connect to B: lost/dup
          shows what the replay from the last flushed cursor gives
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import redis  # noqa: E402

from faye.protocol.channels import expand, matches  # noqa: E402
from faye.redis.scripts import library  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

TTL = 3_600_000
MAX_QUEUE = 1000
SERVERS = ("A", "B")
MESSAGE = '{"channel":"%s","data":{"text":"hello world, a message of about 100 bytes"},"id":"%d"}'


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Shape:
    name: str
    #: client id -> (server, subscriptions)
    clients: dict[str, tuple[str, list[str]]]
    channels: list[str]  # published, in turn
    publishes: int
    batch: int = 1  # messages per publish call


def shapes(scale: float, batch: int = 10) -> dict[str, Shape]:
    def n(x: int) -> int:
        return max(1, int(x * scale))

    out: dict[str, Shape] = {}
    for size, count in ((1000, 60), (100, 300)):
        clients = {f"f{size}-{i}": (SERVERS[i % 2], ["/bench/x"]) for i in range(size)}
        out[f"fanout{size}"] = Shape(f"fanout{size}", clients, ["/bench/x"], n(count))
    p2p = {f"p-{i}": (SERVERS[i % 2], [f"/p/{i}"]) for i in range(200)}
    out["p2p"] = Shape("p2p", p2p, [f"/p/{i}" for i in range(200)], n(2000), batch=batch)
    groups = [["/bench/x"], ["/bench/*"], ["/**"], ["/bench/**"], ["/bench/x", "/bench/*"]]
    wild = {f"w-{i}": (SERVERS[i % 2], groups[i % 5]) for i in range(1000)}
    out["wildcard"] = Shape("wildcard", wild, ["/bench/x"], n(60))
    return out


class Redis:
    """A fresh redis-server and a command connection per server."""

    def __init__(self) -> None:
        self.server = RedisServer().start()
        self.conn = {s: self.connect() for s in (*SERVERS, "C")}
        self.admin = self.connect()

    def connect(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.server.port)

    def cpu(self) -> float:
        info = self.admin.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def stats(self) -> dict[str, int]:
        return {k: v[0] for k, v in self.detail().items()}

    def detail(self) -> dict[str, tuple[int, float]]:
        """command -> (calls, usec per call)."""
        return {
            k.removeprefix("cmdstat_"): (int(v["calls"]), float(v["usec_per_call"]))
            for k, v in self.admin.info("commandstats").items()
        }

    def usec(self, command: str) -> int:
        stat = self.admin.info("commandstats").get(f"cmdstat_{command}")
        return int(stat["usec"]) if stat else 0

    def close(self) -> None:
        for c in (*self.conn.values(), self.admin):
            c.close()
        self.server.cleanup()


class Listener(threading.Thread):
    """A server's pub/sub connection; for the candidates it fans out in memory."""

    def __init__(self, r: Redis, server: str, on_message: Callable[[str, str, bytes], None]):
        super().__init__(daemon=True)
        self.pubsub = r.connect().pubsub(ignore_subscribe_messages=True)
        self.server, self.on_message = server, on_message
        self.received = 0
        self.stop = False
        self.requests: queue.Queue[tuple[str, str, threading.Event]] = queue.Queue()

    def subscribe(self, *channels: str) -> None:
        if not self.is_alive():
            self.pubsub.subscribe(*channels)
            return
        for channel in channels:  # the connection belongs to the thread once it runs
            done = threading.Event()
            self.requests.put(("subscribe", channel, done))
            done.wait()

    def unsubscribe(self, channel: str) -> None:
        done = threading.Event()
        self.requests.put(("unsubscribe", channel, done))
        done.wait()

    def run(self) -> None:
        while not self.stop:
            while not self.requests.empty():
                action, channel, done = self.requests.get()
                getattr(self.pubsub, action)(channel)
                done.set()
            msg = self.pubsub.get_message(timeout=0.001)
            if msg and msg["type"] == "message":
                self.received += 1
                self.on_message(self.server, msg["channel"].decode(), msg["data"])

    def close(self) -> None:
        self.stop = True
        self.join()
        self.pubsub.close()


@dataclass
class Tally:
    got: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, cid: str, n: int = 1) -> None:
        with self.lock:
            self.got[cid] += n

    def total(self) -> int:
        return sum(self.got.values())


def proxy(conn: redis.Redis, prefix: str, cids: Sequence[str]) -> None:
    """What EngineProxy asks before a connect: client_exists, then ping (pipelined)."""
    pipe = conn.pipeline(transaction=False)
    for cid in cids:
        pipe.zscore(prefix + "clients", cid)
        pipe.zadd(prefix + "clients", {cid: now_ms()}, xx=True)
    pipe.execute()


class Design:
    name = ""
    prefix = "bench:{0}:"

    def __init__(self, r: Redis) -> None:
        self.r = r
        self.tally = Tally()
        self.holder: dict[str, str] = {}
        self.listeners = {s: Listener(r, s, self.on_message) for s in SERVERS}

    def start(self) -> None:
        for listener in self.listeners.values():
            listener.start()

    def on_message(self, server: str, channel: str, data: bytes) -> None:
        pass

    def fcall(self, server: str, function: str, key: str, *args: Any) -> Any:
        return self.r.conn[server].fcall(function, 1, self.prefix + key, self.prefix, *args)

    # What each design implements.
    def add_client(self, cid: str, server: str, names: list[str]) -> None: ...
    def publish(self, channels: Sequence[str], step: int) -> None: ...
    def after_publish(self, recipients: dict[str, list[str]], mode: str, step: int) -> None: ...
    def churn(self, cid: str, server: str, other: str) -> None: ...
    def prepare(self, mode: str) -> None: ...


class Current(Design):
    """The engine's own library: queue per client per message, W/C/A operations."""

    name = "current"

    def __init__(self, r: Redis) -> None:
        super().__init__(r)
        lib = library(sharded=False)
        r.admin.function_load(lib.source, replace=True)
        self.fn = {name: s.function for name, s in lib.scripts.items()}
        for s, listener in self.listeners.items():
            listener.subscribe(f"{self.prefix}notify:{s}")
        self.acks: dict[str, int] = {}

    def call(self, server: str, name: str, *args: Any) -> Any:
        return self.fcall(server, self.fn[name], "clients", *args)

    def add_client(self, cid: str, server: str, names: list[str]) -> None:
        self.r.conn[server].zadd(self.prefix + "clients", {cid: now_ms()})
        for name in names:
            self.call(server, "subscribe", cid, name, TTL, "1", "1", "")
        self.drain(server, [("C", cid)])
        self.holder[cid] = server

    def drain(self, server: str, ops: list[tuple[str, str]]) -> None:
        lines = []
        for code, cid in ops:
            lines.append(f"{code}0+{self.acks.pop(cid, 0)}:{cid}")
        t = now_ms()
        results, _bad = self.call(
            server, "deliveries", server, t, 0, TTL, TTL, "#" + "\n".join(lines)
        )
        for (_, cid), result in zip(ops, results, strict=True):
            n = len(result) - 2
            if n > 0:
                self.tally.add(cid, n)
                self.acks[cid] = n

    def publish(self, channels: Sequence[str], step: int) -> None:
        args: list[Any] = ["C", 0, 0, MAX_QUEUE, TTL, "1"]
        for k, channel in enumerate(channels):
            names = expand(channel)
            args += ["M", MESSAGE % (channel, step * 100 + k), len(names), *names]
        self.call("C", "publish", *args)

    def after_publish(self, recipients: dict[str, list[str]], mode: str, step: int) -> None:
        for server, cids in recipients.items():
            if mode == "ws":
                self.drain(server, [("W", cid) for cid in cids])
            elif mode == "lp":
                proxy(self.r.conn[server], self.prefix, cids)
                self.drain(server, [("C", cid) for cid in cids])
            else:  # bounce: the old server's ack, the new server's claim
                other = "B" if server == "A" else "A"
                lines = [f"A{self.acks.pop(cid, 0)}:{cid}" for cid in cids]
                self.call(
                    server, "deliveries", server, now_ms(), 0, TTL, TTL, "#" + "\n".join(lines)
                )
                proxy(self.r.conn[other], self.prefix, cids)
                self.drain(other, [("C", cid) for cid in cids])
                for cid in cids:
                    self.holder[cid] = other

    def churn(self, cid: str, server: str, other: str) -> None:
        self.r.conn[server].zadd(self.prefix + "clients", {cid: now_ms()}, nx=True)
        self.drain(server, [("C", cid)])
        self.call(other, "subscribe", cid, f"/churn/{cid}", TTL, "1", "1", "")
        self.call(other, "destroy", other, cid, "", "1", "0")


class Node(Design):
    """faye-redis-node 0.2.0's Redis commands (no scripts; node_redis pipelines what one
    tick sends): SUNION, then per recipient RPUSH + PUBLISH + ZSCORE; every server hears
    every notification on one channel; a drain is MULTI LRANGE DEL EXEC."""

    name = "node"
    prefix = "bench"

    def __init__(self, r: Redis) -> None:
        super().__init__(r)
        for listener in self.listeners.values():
            listener.subscribe(f"{self.prefix}/notifications/messages")

    def add_client(self, cid: str, server: str, names: list[str]) -> None:
        conn = self.r.conn[server]
        conn.zadd(self.prefix + "/clients", {cid: now_ms()})
        for name in names:
            conn.sadd(f"{self.prefix}/clients/{cid}/channels", name)
            conn.sadd(f"{self.prefix}/channels{name}", cid)
        self.holder[cid] = server

    def publish(self, channels: Sequence[str], step: int) -> None:
        # node_redis sends what one tick issues together: the SUNIONs of a batch, then
        # (in their callbacks) every recipient's RPUSH, PUBLISH and ZSCORE.
        conn = self.r.conn["C"]
        pipe = conn.pipeline(transaction=False)
        for channel in channels:
            pipe.sunion([f"{self.prefix}/channels{name}" for name in expand(channel)])
        sets = pipe.execute()
        pipe = conn.pipeline(transaction=False)
        for k, (channel, cids) in enumerate(zip(channels, sets, strict=True)):
            message = MESSAGE % (channel, step * 100 + k)
            for cid in cids:
                pipe.rpush(f"{self.prefix}/clients/{cid.decode()}/messages", message)
                pipe.publish(f"{self.prefix}/notifications/messages", cid)
                pipe.zscore(self.prefix + "/clients", cid)
        pipe.execute()

    def drain(self, server: str, cids: Sequence[str]) -> None:
        pipe = self.r.conn[server].pipeline(transaction=False)
        for cid in cids:
            pipe.execute_command("MULTI")
            pipe.execute_command("LRANGE", f"{self.prefix}/clients/{cid}/messages", 0, -1)
            pipe.execute_command("DEL", f"{self.prefix}/clients/{cid}/messages")
            pipe.execute_command("EXEC")
        replies = pipe.execute()
        for cid, reply in zip(cids, replies[3::4], strict=True):
            if reply and reply[0]:
                self.tally.add(cid, len(reply[0]))

    def after_publish(self, recipients: dict[str, list[str]], mode: str, step: int) -> None:
        for server, cids in recipients.items():
            if mode == "bounce":
                server = "B" if server == "A" else "A"
            if mode != "ws":
                pipe = self.r.conn[server].pipeline(transaction=False)
                for cid in cids:  # clientExists, ping
                    pipe.zscore(self.prefix + "/clients", cid)
                    pipe.zadd(self.prefix + "/clients", {cid: now_ms()}, xx=True)
                pipe.execute()
            self.drain(server, cids)

    def churn(self, cid: str, server: str, other: str) -> None:
        conn = self.r.conn[server]
        conn.zadd(self.prefix + "/clients", {cid: 0}, nx=True)
        conn.zadd(self.prefix + "/clients", {cid: now_ms()})
        self.drain(server, [cid])
        name = f"/churn/{cid}"
        o = self.r.conn[other]
        o.zscore(self.prefix + "/clients", cid)
        o.sadd(f"{self.prefix}/clients/{cid}/channels", name)
        o.sadd(f"{self.prefix}/channels{name}", cid)
        o.zscore(self.prefix + "/clients", cid)
        channels = o.smembers(f"{self.prefix}/clients/{cid}/channels")
        pipe = o.pipeline(transaction=True)
        pipe.zadd(self.prefix + "/clients", {cid: 0})
        for ch in channels:
            pipe.srem(f"{self.prefix}/clients/{cid}/channels", ch)
            pipe.srem(f"{self.prefix}/channels{ch.decode()}", cid)
        pipe.delete(f"{self.prefix}/clients/{cid}/messages")
        pipe.zrem(self.prefix + "/clients", cid)
        pipe.publish(f"{self.prefix}/notifications/close", cid)
        pipe.execute()


class Candidate(Design):
    """Shared by the two prototypes: in-memory fan-out and per-client cursors."""

    lib = ""

    def __init__(self, r: Redis, flush: int) -> None:
        super().__init__(r)
        r.admin.function_load((HERE / self.lib).read_text(), replace=True)
        self.flush_every = flush
        # Per server: subscription name -> its local clients; per client its cursor.
        self.local: dict[str, dict[str, set[str]]] = {s: defaultdict(set) for s in SERVERS}
        self.subs: dict[str, list[str]] = {}
        self.cursor: dict[str, int] = {}
        self.flushed: dict[str, int] = {}
        self.subscribed: dict[str, set[str]] = {s: set() for s in SERVERS}
        self.dead: set[str] = set()
        # bounce: clients are between polls when messages arrive, so only the claims on
        # their next connect (elsewhere) write them, from the record's cursor.
        self.between_polls = False

    def deliver(self, server: str, cid: str, seq: int, live: bool = True) -> None:
        if server in self.dead or (live and self.between_polls):
            return  # dead; or long-polling between polls: nothing is written live
        if self.holder.get(cid) != server or self.cursor.get(cid, 0) >= seq:
            return  # not held here, or already written (an overlapping subscription)
        self.cursor[cid] = seq
        self.tally.add(cid)

    def flush(self, server: str, cids: Sequence[str] | None = None) -> None:
        pairs: list[Any] = []
        for cid in cids if cids is not None else list(self.cursor):
            if self.holder.get(cid) != server:
                continue
            seq = self.cursor.get(cid, 0)
            if cids is None and self.flushed.get(cid) == seq:
                continue
            self.flushed[cid] = seq
            pairs += [cid, self.record(server, seq)]
        if pairs:
            self.fcall(server, f"{self.kind}_cursors", "seq", *pairs)

    kind = ""

    def record(self, server: str, seq: int) -> str:
        raise NotImplementedError

    def claim(self, server: str, cids: Sequence[str], warm: bool) -> None:
        """A batch of connects: the proxy's client_exists and ping, then one claim call."""
        proxy(self.r.conn[server], self.prefix, cids)
        args: list[Any] = [server, now_ms(), MAX_QUEUE, now_ms() - TTL]
        for cid in cids:
            args += [cid, "w" if warm else "c"]
        results = self.fcall(server, f"{self.kind}_claim", "seq", *args)
        for cid, result in zip(cids, results, strict=True):
            self.move(cid, self.holder.get(cid), server)
            if self.between_polls and self.backlog_at == 3:
                # The new server knows only what the record says was handed out.
                self.cursor[cid] = int(result[2])
            backlog = result[self.backlog_at :]
            for k in range(0, len(backlog), 2):
                self.deliver(server, cid, int(backlog[k]), live=False)

    backlog_at = 0

    def move(self, cid: str, old: str | None, new: str) -> None:
        if old == new:
            return
        for name in self.subs[cid]:
            if old:
                self.local[old][name].discard(cid)
            self.interest(new, name)
            self.local[new][name].add(cid)
        self.holder[cid] = new

    def interest(self, server: str, name: str) -> None:
        pass

    def after_publish(self, recipients: dict[str, list[str]], mode: str, step: int) -> None:
        self.settle(recipients)
        if mode == "kill":
            # ws, and server A is killed 5 publishes after a cursor flush: 2 more publishes
            # reach only Redis, then A's clients connect to B, which replays from their
            # last flushed cursor (at-least-once: 5 duplicates each, nothing lost).
            if step == 2 * self.flush_every + 5:
                self.dead.add("A")
            if step == 2 * self.flush_every + 7:
                gone = [c for c, s in self.holder.items() if s == "A"]
                proxy(self.r.conn["B"], self.prefix, gone)
                args: list[Any] = ["B", now_ms(), MAX_QUEUE, now_ms() - TTL]
                for cid in gone:
                    args += [cid, "d"]
                results = self.fcall("B", f"{self.kind}_claim", "seq", *args)
                for cid, result in zip(gone, results, strict=True):
                    self.move(cid, "A", "B")
                    backlog = result[self.backlog_at :]
                    self.cursor[cid] = 0  # B has no memory of what A wrote
                    for k in range(0, len(backlog), 2):
                        self.deliver("B", cid, int(backlog[k]), live=False)
            mode = "ws"
        for server, cids in recipients.items():
            if server in self.dead:
                continue
            if mode == "ws":
                if (step + 1) % self.flush_every == 0:
                    self.flush(server)
            elif mode == "lp":
                self.claim(server, cids, warm=True)
                self.flush(server, cids)  # the hand-out mark of the connect cycle
            else:  # the claim itself marks what it hands out
                self.claim("B" if server == "A" else "A", cids, warm=False)

    def prepare(self, mode: str) -> None:
        self.between_polls = mode == "bounce"

    def settle(self, recipients: dict[str, list[str]]) -> None:
        """Wait for the listeners to have handed the publish out (a real server would
        write cursors only for what it handed out)."""
        if self.between_polls:
            return
        if self.dead:
            time.sleep(0.02)
            return
        want = self.expected_live
        deadline = time.monotonic() + 5
        while self.tally.total() < want and time.monotonic() < deadline:
            time.sleep(0.0002)

    expected_live = 0


class Log(Candidate):
    """Candidate B: a log per channel/pattern; servers subscribe per name."""

    name, lib, kind, backlog_at = "log", "log.lua", "log", 3

    def record(self, server: str, seq: int) -> str:
        return f"{seq}/{seq}/{server}"

    def interest(self, server: str, name: str) -> None:
        # A server keeps a name subscribed for a grace period after its last local client
        # leaves (here: for the run), so clients bouncing between servers do not make it
        # SUBSCRIBE and UNSUBSCRIBE on every connect.
        if name not in self.subscribed[server]:
            self.subscribed[server].add(name)
            self.listeners[server].subscribe(f"{self.prefix}n:{name}")

    def on_message(self, server: str, channel: str, data: bytes) -> None:
        name = channel[len(self.prefix) + 2 :]
        seq = int(data[: data.index(b"-")])
        for cid in list(self.local[server][name]):
            self.deliver(server, cid, seq)

    def add_client(self, cid: str, server: str, names: list[str]) -> None:
        self.r.conn[server].zadd(self.prefix + "clients", {cid: now_ms()})
        self.subs[cid] = names
        for name in names:
            self.fcall(server, "log_subscribe", "seq", server, cid, name, TTL)
        self.claim(server, [cid], warm=False)

    def publish(self, channels: Sequence[str], step: int) -> None:
        args: list[Any] = [now_ms(), TTL, MAX_QUEUE]
        for k, channel in enumerate(channels):
            names = expand(channel)
            args += [len(names), MESSAGE % (channel, step * 100 + k), *names]
        self.fcall("C", "log_publish", "seq", *args)

    def churn(self, cid: str, server: str, other: str) -> None:
        self.r.conn[server].zadd(self.prefix + "clients", {cid: now_ms()}, nx=True)
        self.subs[cid] = []
        self.claim(server, [cid], warm=False)
        name = f"/churn/{cid}"
        self.fcall(other, "log_subscribe", "seq", other, cid, name, TTL)
        self.subs[cid].append(name)
        self.listeners[server].subscribe(f"{self.prefix}n:{name}")  # first local client
        self.fcall(other, "log_destroy", "seq", other, cid)
        self.listeners[server].unsubscribe(f"{self.prefix}n:{name}")


class LogRoute(Log):
    """Candidate C: B's logs, A's routes; each server listens on its own channel only."""

    name, lib, kind, backlog_at = "logroute", "logroute.lua", "logroute", 3

    def __init__(self, r: Redis, flush: int) -> None:
        super().__init__(r, flush)
        for s, listener in self.listeners.items():
            listener.subscribe(f"{self.prefix}w:{s}")

    def interest(self, server: str, name: str) -> None:
        pass

    def on_message(self, server: str, channel: str, data: bytes) -> None:
        for line in data.split(b"\n"):
            head, published, _ = line.split(b" ", 2)
            seq, name = int(head), published.decode()
            done: set[str] = set()
            for sub in expand(name):
                for cid in list(self.local[server].get(sub, ())):
                    if cid not in done:
                        done.add(cid)
                        self.deliver(server, cid, seq)

    def add_client(self, cid: str, server: str, names: list[str]) -> None:
        self.r.conn[server].zadd(self.prefix + "clients", {cid: now_ms()})
        self.subs[cid] = names
        self.claim(server, [cid], warm=False)
        for name in names:
            self.fcall(server, f"{self.kind}_subscribe", "seq", server, cid, name, TTL)
        self.move(cid, None, server)

    def publish(self, channels: Sequence[str], step: int) -> None:
        args: list[Any] = [MAX_QUEUE]
        for k, channel in enumerate(channels):
            args += [MESSAGE % (channel, step * 100 + k), channel]
        self.fcall("C", "logroute_publish", "seq", *args)

    def churn(self, cid: str, server: str, other: str) -> None:
        self.r.conn[server].zadd(self.prefix + "clients", {cid: now_ms()}, nx=True)
        self.subs[cid] = []
        self.claim(server, [cid], warm=False)
        name = f"/churn/{cid}"
        self.fcall(other, "logroute_subscribe", "seq", other, cid, name, TTL)
        self.fcall(other, "logroute_destroy", "seq", other, cid)


class LogList(LogRoute):
    """Candidate C': C with lists instead of streams for the logs; with ``trim``, cursor
    writes cut single-subscriber logs back to what is unacknowledged."""

    name, lib, kind = "loglist", "loglist.lua", "loglist"

    def __init__(self, r: Redis, flush: int, trim: bool = False) -> None:
        super().__init__(r, flush)
        self.trim = trim

    def flush(self, server: str, cids: Sequence[str] | None = None) -> None:
        if not self.trim:
            super().flush(server, cids)
            return
        args: list[Any] = [server]
        for cid in cids if cids is not None else list(self.cursor):
            seq = self.cursor.get(cid, 0)
            if self.holder.get(cid) != server or (cids is None and self.flushed.get(cid) == seq):
                continue
            self.flushed[cid] = seq
            # The driver's clients of one subscription are the single-subscriber case.
            names = ",".join(self.subs[cid]) if len(self.subs[cid]) == 1 else ""
            args += [cid, self.record(server, seq), seq, names]
        if len(args) > 1:
            self.fcall(server, "loglist_cursors_trim", "seq", *args)

    def publish(self, channels: Sequence[str], step: int) -> None:
        args: list[Any] = [MAX_QUEUE]
        for k, channel in enumerate(channels):
            args += [MESSAGE % (channel, step * 100 + k), channel]
        self.fcall("C", "loglist_publish", "seq", *args)

    def churn(self, cid: str, server: str, other: str) -> None:
        self.r.conn[server].zadd(self.prefix + "clients", {cid: now_ms()}, nx=True)
        self.subs[cid] = []
        self.claim(server, [cid], warm=False)
        name = f"/churn/{cid}"
        self.fcall(other, "loglist_subscribe", "seq", other, cid, name, TTL)
        self.fcall(other, "loglist_destroy", "seq", other, cid)


class Inbox(Candidate):
    """Candidate A: an inbox stream per server; routes name -> servers."""

    name, lib, kind, backlog_at = "inbox", "inbox.lua", "inbox", 2

    def __init__(self, r: Redis, flush: int) -> None:
        super().__init__(r, flush)
        for s, listener in self.listeners.items():
            listener.subscribe(f"{self.prefix}w:{s}")

    def record(self, server: str, seq: int) -> str:
        return f"{server}|{seq}/{seq}"

    def on_message(self, server: str, channel: str, data: bytes) -> None:
        head, published, _ = data.split(b" ", 2)
        seq, name = int(head[: head.index(b"-")]), published.decode()
        done: set[str] = set()
        for sub in expand(name):
            for cid in list(self.local[server].get(sub, ())):
                if cid not in done:
                    done.add(cid)
                    self.deliver(server, cid, seq)

    def add_client(self, cid: str, server: str, names: list[str]) -> None:
        self.fcall(server, "inbox_create", "seq", server, cid, now_ms())
        self.subs[cid] = names
        self.move(cid, None, server)
        for name in names:
            self.fcall(server, "inbox_subscribe", "seq", server, cid, name, TTL)

    def publish(self, channels: Sequence[str], step: int) -> None:
        args: list[Any] = [now_ms(), 100_000]
        for k, channel in enumerate(channels):
            names = expand(channel)
            args += [len(names), MESSAGE % (channel, step * 100 + k), channel, *names]
        self.fcall("C", "inbox_publish", "seq", *args)

    def churn(self, cid: str, server: str, other: str) -> None:
        self.fcall(server, "inbox_create", "seq", server, cid, now_ms())
        self.subs[cid] = []
        self.move(cid, None, server)
        self.claim(server, [cid], warm=True)
        self.fcall(other, "inbox_subscribe", "seq", other, cid, f"/churn/{cid}", TTL)
        self.fcall(other, "inbox_destroy", "seq", other, cid)


def recipients_of(
    shape: Shape, holder: dict[str, str], channels: Sequence[str]
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for cid, (_, names) in shape.clients.items():
        if any(matches(n, ch) for n in names for ch in channels):
            out[holder[cid]].append(cid)
    return out


def key_memory(r: Redis) -> tuple[int, int, int]:
    """(bytes of every key but the logs/inboxes, bytes of the logs/inboxes, entries in
    them), by MEMORY USAGE of each key (SCAN is fine in a benchmark, never in the engine)."""
    other = logs = entries = 0
    for key in r.admin.scan_iter(count=1000):
        size = int(r.admin.memory_usage(key, samples=0) or 0)
        if b":log:" in key or b":inbox:" in key:
            logs += size
            is_list = r.admin.type(key) == b"list"
            entries += int(r.admin.llen(key) if is_list else r.admin.xlen(key))
        else:
            other += size
    return other, logs, entries


def idle_rate(r: Redis) -> float:
    before, t0 = r.cpu(), time.monotonic()
    time.sleep(1.0)
    return (r.cpu() - before) / (time.monotonic() - t0)


def measure(make: Callable[[Redis], Design], shape: Shape, mode: str) -> dict[str, Any]:
    r = Redis()
    design = make(r)
    try:
        for cid, (server, names) in shape.clients.items():
            design.add_client(cid, server, names)
        mem_setup = key_memory(r)[0]
        design.start()
        time.sleep(0.2)
        idle = idle_rate(r)
        steps = shape.publishes // shape.batch
        design.prepare(mode)
        expected_total = 0
        r.admin.config_resetstat()
        cpu0, t0 = r.cpu(), time.monotonic()
        for step in range(steps):
            start = step * shape.batch
            channels = [
                shape.channels[(start + k) % len(shape.channels)] for k in range(shape.batch)
            ]
            recipients = recipients_of(shape, design.holder, channels)
            expected_total += sum(len(v) for v in recipients.values())
            if isinstance(design, Candidate):
                design.expected_live = expected_total
            design.publish(channels, step)
            design.after_publish(recipients, mode, step)
        stats = r.stats()
        detail = r.detail()
        usec = r.usec("fcall")
        cpu = r.cpu() - cpu0 - idle * (time.monotonic() - t0)
        deadline = time.monotonic() + 10
        while design.tally.total() < expected_total and time.monotonic() < deadline:
            time.sleep(0.01)
        per_client = max(1, steps * shape.batch // len(shape.channels))
        got = [design.tally.got.get(c, 0) for c in shape.clients]
        lost = sum(max(0, per_client - g) for g in got)
        dup = sum(max(0, g - per_client) for g in got)
        _, log_bytes, log_entries = key_memory(r)
        skip = ("fcall", "info", "config|resetstat", "multi", "exec")
        inner = sum(v for k, v in stats.items() if k not in skip)
        return {
            "deliveries": expected_total,
            "got": design.tally.total(),
            "lost": lost,
            "dup": dup,
            "cpu_us": cpu * 1e6 / expected_total,
            "fcall_us": usec / expected_total,
            "commands": inner / expected_total,
            "per_publish": inner / (steps * shape.batch),
            "stats": detail,
            "mem_client": mem_setup / len(shape.clients),
            "mem_message": log_bytes / log_entries if log_entries else 0,
            "logs": f"logs after the run: {log_bytes} B in {log_entries} entries",
        }
    finally:
        for listener in design.listeners.values():
            listener.close()
        r.close()


def run_churn(make: Callable[[Redis], Design], cycles: int) -> dict[str, Any]:
    r = Redis()
    design = make(r)
    try:
        design.start()
        idle = idle_rate(r)
        r.admin.config_resetstat()
        cpu0, t0 = r.cpu(), time.monotonic()
        for i in range(cycles):
            design.churn(f"churn-{i}", "A", "B")
        cpu = r.cpu() - cpu0 - idle * (time.monotonic() - t0)
        stats = r.stats()
        inner = sum(v for k, v in stats.items() if k not in ("info", "config|resetstat"))
        return {"cpu_us": cpu * 1e6 / cycles, "commands": inner / cycles, "stats": stats}
    finally:
        for listener in design.listeners.values():
            listener.close()
        r.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--designs", default="current,node,inbox,log,logroute,loglist")
    parser.add_argument("--shapes", default="fanout1000,fanout100,p2p,wildcard,churn")
    parser.add_argument("--mode", default="ws,lp,bounce,kill")
    parser.add_argument(
        "--flush", type=int, default=10, help="candidates: publish calls per cursor flush (ws)"
    )
    parser.add_argument("--batch", type=int, default=10, help="p2p: messages per publish call")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the publishes")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (median shown)")
    parser.add_argument("--verbose", action="store_true", help="print every command's count")
    args = parser.parse_args()
    makers: dict[str, Callable[[Redis], Design]] = {
        "current": Current,
        "node": Node,
        "inbox": lambda r: Inbox(r, args.flush),
        "log": lambda r: Log(r, args.flush),
        "logroute": lambda r: LogRoute(r, args.flush),
        "loglist": lambda r: LogList(r, args.flush),
        "loglist-trim": lambda r: LogList(r, args.flush, trim=True),
    }
    all_shapes = shapes(args.scale, args.batch)
    print(
        f"{'design':8s} {'shape':11s} {'mode':7s} {'deliveries':>10s} {'lost/dup':>9s} "
        f"{'CPU us/deliv':>12s} {'FCALL us/deliv':>14s} {'cmds/deliv':>10s} "
        f"{'cmds/publish':>12s} {'B/client':>8s} {'B/entry':>7s}"
    )
    for shape_name in args.shapes.split(","):
        for design in args.designs.split(","):
            if shape_name == "churn":
                churns = sorted(
                    (run_churn(makers[design], int(300 * args.scale)) for _ in range(args.repeat)),
                    key=lambda x: x["cpu_us"],
                )
                res = churns[len(churns) // 2]
                print(f"{design:8s} {'churn':11s} {'-':7s} {'(cycles)':>10s} {'':>9s} "
                      f"{res['cpu_us']:12.1f} {'':>14s} {res['commands']:10.1f}")  # fmt: skip
                if args.verbose:
                    print("   ", {k: v for k, v in res["stats"].items() if v})
                continue
            for mode in args.mode.split(","):
                if mode == "kill" and design in ("current", "node"):
                    continue  # its recovery (GC, recover script) is covered by the fault tests
                runs = [
                    measure(makers[design], all_shapes[shape_name], mode)
                    for _ in range(args.repeat)
                ]
                runs.sort(key=lambda x: x["cpu_us"])
                res = runs[len(runs) // 2]
                spread = (
                    f" ({runs[0]['cpu_us']:.2f}-{runs[-1]['cpu_us']:.2f})" if len(runs) > 1 else ""
                )
                lost_dup = f"{res['lost']}/{res['dup']}"
                print(
                    f"{design:8s} {shape_name:11s} {mode:7s} {res['deliveries']:10d} "
                    f"{lost_dup:>9s} {res['cpu_us']:12.2f} {res['fcall_us']:14.2f} "
                    f"{res['commands']:10.2f} {res['per_publish']:12.1f} "
                    f"{res['mem_client']:8.0f} {res['mem_message']:7.0f}{spread}",
                    flush=True,
                )
                if args.verbose:
                    print("   ", res["logs"])
                    print("   ", res["stats"])


if __name__ == "__main__":
    main()

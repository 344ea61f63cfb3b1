"""Side-by-side benchmark: this project against Node Faye 1.4.3, memory and Redis engines.

    bash bench/install.sh          # once: npm faye 1.4.3, faye-redis 0.2.0, redis 3.1.2
    python bench/run.py            # the full comparison (about 8-9 minutes on 2 cores)
    python bench/run.py --quick    # the same scenarios, smaller (about 2 minutes)

Starts every server under test itself, each setup fresh, on free 127.0.0.1 ports, each
Redis setup with a private redis-server (never the machine's 6379):

    py-memory    faye serve, memory engine, 1 process
    py-redis     faye serve --redis, 2 processes
    node-memory  Node Faye 1.4.3 NodeAdapter, memory engine, 1 process
    node-redis   Node Faye 1.4.3 + faye-redis 0.2.0, 2 processes
    py-redis-cluster  faye serve --redis redis+cluster://, 2 processes, on a private
                 Cluster of 3 masters (--cluster-replicas N adds replicas; compared
                 with py-redis, whose one Redis has no replica)

Scenarios (WebSocket unless stated; subscribers spread over the setup's processes, the
publisher on the first):
    smoke         a publish through process 1 reaches a subscriber on the last process
    fanout-rate   S subscribers on one channel, one publisher at a fixed offered rate
                  (fanout-rate-low: the same at a fifth of that rate)
    fanout-flat   the same, flat out (closed loop: at most W messages in flight)
    fanout-lp     long-polling subscribers, fixed rate
    redis-cost-N  N = 1, 10, S subscribers, slow publishes; Redis INFO and MONITOR
    p2p-rate      C clients each on its own channel, publishers round robin, fixed rate
    p2p-flat      the same, flat out
    p2p-one-master-flat  (py-redis, py-redis-cluster) the same on channels that the
                  Cluster homes on one master: a master against one Redis, same load
    churn         open, handshake, subscribe, disconnect, close cycles, flat out
    idle-N        N idle WebSocket clients on one process (handshake offering
                  permessage-deflate like a browser, one subscribe, a held connect):
                  RSS per connection, connect rate, and the publish-to-delivery latency
                  of 20 other clients on that process while the N connect

Results: a table on stdout, bench/results/<timestamp>.json (and .md), PNG plots in
docs/benchmarks/ (full run) or bench/results/raw/<timestamp>/plots/ (--quick; not kept).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import signal
import sys
import time
import traceback
from array import array
from pathlib import Path
from typing import Any

from redis.crc import key_slot

from faye.redis.keys import Keys

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import report  # noqa: E402
import rounds  # noqa: E402
import servers  # noqa: E402
from generator import WorkerHandle, WorkerPool  # noqa: E402

PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "fanout_subscribers": 1000,
        "fanout_low_rate": 1.0,
        "fanout_rate": 5.0,
        "fanout_duration": 8.0,
        "fanout_flat_duration": 10.0,
        "fanout_window": 16,
        "lp_subscribers": 100,
        "lp_rate": 10.0,
        "lp_duration": 5.0,
        "cost_sizes": [1, 10],  # plus fanout_subscribers
        "cost_rate": 5.0,
        "cost_duration": 3.0,
        "p2p_clients": 1000,
        "p2p_rate": 500.0,
        "p2p_duration": 8.0,
        "p2p_flat_duration": 8.0,
        "p2p_window": 200,
        "churn_concurrency": 16,
        "churn_duration": 8.0,
        "idle_counts": [1000, 10000],
        "drain": 20.0,
    },
    "quick": {
        "fanout_subscribers": 200,
        "fanout_low_rate": 2.0,
        "fanout_rate": 10.0,
        "fanout_duration": 2.5,
        "fanout_flat_duration": 2.5,
        "fanout_window": 16,
        "lp_subscribers": 50,
        "lp_rate": 10.0,
        "lp_duration": 2.0,
        "cost_sizes": [1, 10],
        "cost_rate": 5.0,
        "cost_duration": 1.5,
        "p2p_clients": 200,
        "p2p_rate": 500.0,
        "p2p_duration": 2.0,
        "p2p_flat_duration": 2.0,
        "p2p_window": 100,
        "churn_concurrency": 8,
        "churn_duration": 2.0,
        "idle_counts": [1000],
        "drain": 8.0,
    },
}

PAYLOAD = 64
#: idle-N: other clients on the same process, and the publishes they get meanwhile.
PROBES = 20
PROBE_RATE = 20.0
PROBE_CHANNEL = "/bench/probe"
NPROC = os.cpu_count() or 1
PUB_WORKERS = 2


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def raise_fd_limit() -> dict[str, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft2, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"before": soft, "after": soft2, "hard": hard}


def percentiles(values: array[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    try:
        import numpy as np

        data = np.frombuffer(values, dtype=np.float64)
        p50, p90, p99 = np.percentile(data, [50, 90, 99])
        top = float(data.max())
    except ImportError:
        ordered = sorted(values)
        n = len(ordered)

        def pick(q: float) -> float:
            return ordered[min(n - 1, max(0, round(q * (n - 1))))]

        p50, p90, p99, top = pick(0.5), pick(0.9), pick(0.99), ordered[-1]
    return {
        "p50": round(float(p50) * 1000, 2),
        "p90": round(float(p90) * 1000, 2),
        "p99": round(float(p99) * 1000, 2),
        "max": round(top * 1000, 2),
    }


class _Skip(Exception):
    pass


STEPS = ["smoke", "fanout", "cost", "long_polling", "p2p", "churn", "idle"]

#: The key layout of py-redis-cluster's servers (a Cluster: 16 balanced partitions).
CLUSTER_KEYS = Keys(servers.NAMESPACE, 16, balanced=True)


def one_master_channels(count: int) -> list[str]:
    """Channel names that the Cluster of ``py-redis-cluster`` (3 masters made by
    ``redis-cli --cluster create``, the engine's 16 partitions) homes on its first
    master, slots 0-5460."""
    names: list[str] = []
    n = 0
    while len(names) < count:
        name = f"/bench/p2p1/{n}"
        n += 1
        if key_slot(CLUSTER_KEYS.clients(CLUSTER_KEYS.home(name)).encode()) <= 5460:
            names.append(name)
    return names


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.profile = dict(PROFILES["quick" if args.quick else "full"])
        self.stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.log_dir = BENCH / "results" / "raw" / self.stamp
        self.pin = args.pin and (os.cpu_count() or 1) >= 2
        server_cpus = {0} if self.pin else None
        worker_cpus: list[int | None] = [1] if self.pin else [None]
        self.server_cpus = server_cpus
        self.worker_cpus = worker_cpus
        self.sub_workers = args.sub_workers
        self.pool = WorkerPool(self.sub_workers + PUB_WORKERS, worker_cpus)
        self.subs = self.pool.workers[: self.sub_workers]
        self.pubs = self.pool.workers[self.sub_workers :]
        self.rows: list[dict[str, Any]] = []
        #: The round of an interleaved run (--rounds) the phases now belong to.
        self.round: int | None = None
        self.source_by_start: list[dict[str, str]] = []
        self.phase_no = 0
        self.started = time.monotonic()
        self.deadline = self.started + args.budget

    # -- measurement ------------------------------------------------------------------

    def snapshot(self, running: servers.Running) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "t": time.time(),
            "servers": [servers.cpu_seconds(p) for p in running.pids],
            "workers": [servers.cpu_seconds(p) for p in self.pool.pids()],
            "runner": sum(os.times()[:2]),
            "machine": servers.machine_cpu(),
            "all": servers.all_process_cpu(),
            "pids": [
                *running.pids,
                *running.redis_pids("masters"),
                *running.redis_pids("replicas"),
            ],
            "rss": [servers.rss_bytes(p) for p in running.pids],
        }
        if running.redis_ports:
            snap["redis_cpu_each"] = [
                servers.cpu_seconds(pid) for pid in running.redis_pids("masters")
            ]
            snap["redis_cpu"] = sum(snap["redis_cpu_each"])
            snap["replica_cpu"] = sum(map(servers.cpu_seconds, running.redis_pids("replicas")))
            snap["redis"] = servers.redis_info_all(running.redis_ports)
            snap["cluster"] = running.cluster is not None
        return snap

    def usage(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        wall = after["t"] - before["t"]
        server_cpu = [a - b for a, b in zip(after["servers"], before["servers"], strict=True)]
        worker_cpu = [a - b for a, b in zip(after["workers"], before["workers"], strict=True)]
        ticks_busy = after["machine"][0] - before["machine"][0]
        ticks_total = after["machine"][1] - before["machine"][1]
        busy = servers.cpu_between(before["all"], after["all"])
        ours = sum(server_cpu) + sum(worker_cpu) + (after["runner"] - before["runner"])
        result: dict[str, Any] = {
            "wall_s": round(wall, 3),
            "server_cpu_s": [round(c, 3) for c in server_cpu],
            "generator_cpu_s": [round(c, 3) for c in worker_cpu],
            "generator_max_core": round(max(worker_cpu) / wall, 3) if wall > 0 else None,
            "runner_cpu_s": round(after["runner"] - before["runner"], 3),
            "machine_busy": round(busy / (wall * NPROC), 3) if wall > 0 else None,
            "machine_busy_ticks": round(ticks_busy / ticks_total, 3) if ticks_total else None,
        }
        if "redis" in after:
            redis_cpu = after["redis_cpu"] - before["redis_cpu"]
            replica_cpu = after["replica_cpu"] - before["replica_cpu"]
            ours += redis_cpu + replica_cpu
            result["redis_cpu_s"] = round(redis_cpu, 3)  # the master(s)
            result["redis_cpu_each_s"] = [
                round(a - b, 4)
                for a, b in zip(after["redis_cpu_each"], before["redis_cpu_each"], strict=True)
            ]
            if after["cluster"]:
                result["replica_cpu_s"] = round(replica_cpu, 3)
                result["masters"] = after["redis"]["_nodes"]
            result["redis"] = servers.redis_delta(before["redis"], after["redis"])
        result["other_cpu_s"] = round(busy - ours, 3)
        mine = {os.getpid(), *self.pool.pids(), *after["pids"]}
        result["other_top"] = servers.top_others(before["all"], after["all"], mine)
        return result

    # -- profiling ----------------------------------------------------------------------

    def start_profilers(self, running: servers.Running, scenario: str) -> list[Any]:
        """py-spy on every Python server process for one phase (``--py-spy DIR``)."""
        if self.args.py_spy is None or running.setup.runtime != "python":
            return []
        import subprocess

        spy = Path(sys.executable).with_name("py-spy")
        directory = self.args.py_spy
        directory.mkdir(parents=True, exist_ok=True)
        procs = []
        for i, pid in enumerate(running.pids):
            stem = directory / f"{running.setup.name}-{scenario}-{i}"
            # Collapsed stacks for bench/profiles.py and a flame graph for people.
            for fmt, out in (
                ("raw", stem.with_suffix(".txt")),
                ("flamegraph", stem.with_suffix(".svg")),
            ):
                command = [str(spy), "record", "--pid", str(pid), "--format", fmt]
                command += ["--rate", str(self.args.py_spy_rate), "--nonblocking"]
                command += ["--output", str(out)]
                procs.append(
                    (
                        subprocess.Popen(
                            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                        ),
                        out,
                    )
                )
        time.sleep(0.5)  # py-spy attaches
        return procs

    def stop_profilers(self, procs: list[Any]) -> list[str]:
        import subprocess

        for proc, _ in procs:
            proc.send_signal(signal.SIGINT)
        paths = []
        for proc, out in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            paths.append(str(out))
        return paths

    # -- worker helpers -------------------------------------------------------------------

    def all_workers(self) -> list[WorkerHandle]:
        return self.pool.workers

    def broadcast(
        self, workers: list[WorkerHandle], name: str, specs: list[Any], timeout: float
    ) -> list[Any]:
        for worker, spec in zip(workers, specs, strict=True):
            worker.send(name, spec)
        return [worker.reply(timeout) for worker in workers]

    def subscribe(
        self,
        clients: list[tuple[int, str, str]],
        transport: str = "websocket",
        deadline: float = 120.0,
    ) -> dict[str, Any]:
        """Spread clients over the subscriber workers; wait until all are connected."""
        shares: list[list[tuple[int, str, str]]] = [[] for _ in self.subs]
        for k, client in enumerate(clients):
            shares[k % len(self.subs)].append(client)
        specs = [{"clients": s, "transport": transport, "deadline": deadline} for s in shares]
        replies = self.broadcast(self.subs, "subscribe", specs, deadline + 30)
        result = {
            "deflate": sum(r["deflate"] for r in replies),
            "connected": sum(r["connected"] for r in replies),
            "errors": sum(r["errors"] for r in replies),
            "first_errors": [e for r in replies for e in r["first_errors"]][:3],
            "seconds": max(r["seconds"] for r in replies),
        }
        if result["errors"]:
            log(f"  {result['errors']} client(s) failed to connect: {result['first_errors']}")
        return result

    def close_subscribers(self, abrupt: bool = False) -> None:
        """Disconnect and close every subscriber (``abrupt``: just drop the sockets)."""
        spec = {"abrupt": abrupt}
        self.broadcast(self.subs, "close_all", [spec] * len(self.subs), 90)

    # -- one measured phase -------------------------------------------------------------

    def phase(
        self,
        running: servers.Running,
        scenario: str,
        publishes: list[dict[str, Any]],
        fanout: int,
        extra: dict[str, Any] | None = None,
        monitor: bool = False,
    ) -> dict[str, Any]:
        """Publish (one spec per publisher worker), collect, measure; returns a row."""
        self.phase_no += 1
        phase = f"{scenario}-{self.phase_no}"
        self.broadcast(self.all_workers(), "begin", [phase] * len(self.all_workers()), 30)
        mon = None
        if monitor and running.redis is not None and running.cluster is None:
            mon = servers.Monitor(running.redis.port, servers.our_script_names())
        profilers = self.start_profilers(running, scenario)
        before = self.snapshot(running)
        pubs = self.pubs[: len(publishes)]
        duration = max(p["duration"] for p in publishes)
        drain = self.profile["drain"]
        specs = [dict(p, phase=phase, deadline=drain) for p in publishes]
        pub_replies = self.broadcast(pubs, "publish", specs, duration + drain + 60)
        published = sum(r["published"] for r in pub_replies)
        expected: dict[str, int] = {}
        for r in pub_replies:
            for channel, n in r["seqs"].items():
                expected[channel] = expected.get(channel, 0) + n
        collect = {"expected": expected, "deadline": drain, "settle": 0.2}
        sub_replies = self.broadcast(self.subs, "collect", [collect] * len(self.subs), drain + 60)
        after = self.snapshot(running)
        profiles = self.stop_profilers(profilers)
        counts = mon.stop() if mon is not None else None
        latencies: array[float] = array("d")
        for r in sub_replies:
            latencies.frombytes(r["latencies"])
        ack_latencies: array[float] = array("d")
        for r in pub_replies:
            ack_latencies.frombytes(r["ack_latencies"])
        delivered = len(latencies)
        first = min(r["first_t"] for r in pub_replies)
        last_arrival = max([r["last_arrival"] for r in sub_replies] + [first])
        last_ack = max([r["last_ack"] for r in pub_replies] + [first])
        span = max(last_arrival - first, 1e-9)
        usage = self.usage(before, after)
        server_cpu = sum(usage["server_cpu_s"])
        row: dict[str, Any] = {
            "setup": running.setup.name,
            "scenario": scenario,
            "subscribers": fanout,
            "published": published,
            "publish_acks": sum(r["acks"] for r in pub_replies),
            "publish_failures": sum(r["failed"] for r in pub_replies),
            "expected": sum(r["expected"] for r in sub_replies),
            "delivered": delivered,
            "lost": sum(r["lost"] for r in sub_replies),
            "duplicated": sum(r["duplicated"] for r in sub_replies),
            "stale": sum(r["stale"] for r in sub_replies),
            "connect_failures": sum(r["connect_failures"] for r in sub_replies),
            "rehandshakes": sum(r["rehandshakes"] for r in sub_replies),
            "span_s": round(span, 3),
            "deliveries_per_s": round(delivered / span, 1),
            "acks_per_s": round(
                sum(r["acks"] for r in pub_replies) / max(last_ack - first, 1e-9), 1
            ),
            "latency_ms": percentiles(latencies),
            "ack_latency_ms": percentiles(ack_latencies),
            "server_cpu_s_per_1000": round(server_cpu / delivered * 1000, 4) if delivered else None,
            "deliveries_per_server_cpu_s": round(delivered / server_cpu, 1)
            if server_cpu > 0
            else None,
            "generator_cpu_s_per_1000": round(sum(usage["generator_cpu_s"]) / delivered * 1000, 4)
            if delivered
            else None,
            "usage": usage,
        }
        if "redis" in usage and published:
            redis = usage["redis"]
            row["redis_commands_per_publish"] = round(redis["commands"] / published, 2)
            row["redis_round_trips_per_publish"] = round(redis["reads"] / published, 2)
            if "replica_cpu_s" in usage:
                row["replica_cpu_s_per_1000"] = (
                    round(usage["replica_cpu_s"] / delivered * 1000, 4) if delivered else None
                )
            row["redis_cpu_s_per_1000"] = (
                round(usage["redis_cpu_s"] / delivered * 1000, 4) if delivered else None
            )
        if profiles:
            row["profiles"] = profiles
        if counts is not None:
            row["monitor"] = {f"{k[0]} {k[1]}": v for k, v in sorted(counts.items())}
        if extra:
            row.update(extra)
        return row

    def add(self, row: dict[str, Any]) -> None:
        if self.round is not None:
            row["round"] = self.round
        self.rows.append(row)
        log("  " + report.one_line(row))

    # -- scenarios ----------------------------------------------------------------------

    def smoke(self, running: servers.Running) -> None:
        """A publish through the first process reaches a subscriber on the last one."""
        self.subscribe([(0, running.urls[-1], "/bench/smoke")])
        row = self.phase(
            running,
            "smoke",
            [
                {
                    "url": running.urls[0],
                    "targets": [["/bench/smoke", 1]],
                    "duration": 0.5,
                    "rate": 10.0,
                    "payload": PAYLOAD,
                }
            ],
            1,
        )
        self.close_subscribers()
        ok = row["delivered"] == row["published"] > 0 and row["lost"] == 0
        row["ok"] = ok
        self.add(row)
        if not ok:
            raise RuntimeError(f"{running.setup.name}: smoke test failed: {row}")

    def redis_idle(self, running: servers.Running) -> list[float] | None:
        """Each master's CPU-seconds per second with the clients connected and no
        traffic: heartbeats, GC, connect renewals and a Cluster's own upkeep, costs that
        do not grow with the load (a master's capacity is what it spends above them)."""
        if not running.redis_ports:
            return None
        row = self.idle_phase(running, "redis-idle")
        wall = max(row["usage"]["wall_s"], 1e-3)
        return [cpu / wall for cpu in row["usage"]["redis_cpu_each_s"]]

    def idle_phase(
        self, running: servers.Running, scenario: str, monitor: bool = False
    ) -> dict[str, Any]:
        """A window with the clients connected and nothing delivered (a publisher that
        sends nothing): the background a measured phase stands on."""
        spec = {
            "url": running.urls[0],
            "targets": [["/bench/none", 0]],
            "duration": self.profile["cost_duration"],
            "rate": 1.0,
            "payload": PAYLOAD,
            "max_messages": 0,
        }
        return self.phase(running, scenario, [spec], 0, monitor=monitor)

    @staticmethod
    def above_idle(row: dict[str, Any], idle: list[float] | None) -> dict[str, Any]:
        """Add the Redis CPU per delivery above the idle rate: all masters, and the
        busiest one (which, for one channel's fan-out, carries the whole load)."""
        delivered = row["delivered"]
        if idle is None or not delivered or "redis_cpu_each_s" not in row["usage"]:
            return row
        wall = row["usage"]["wall_s"]
        each = [
            cpu - rate * wall
            for cpu, rate in zip(row["usage"]["redis_cpu_each_s"], idle, strict=True)
        ]
        row["redis_idle_cpu_per_s"] = round(sum(idle), 4)
        row["redis_cpu_above_idle_s_per_1000"] = round(sum(each) / delivered * 1000, 4)
        row["redis_busiest_master_above_idle_s_per_1000"] = round(max(each) / delivered * 1000, 4)
        return row

    def fanout(self, running: servers.Running) -> None:
        p = self.profile
        urls = running.urls
        size = p["fanout_subscribers"]
        clients = [(i, urls[i % len(urls)], "/bench/fanout") for i in range(size)]
        joined = self.subscribe(clients)
        fan = joined["connected"]
        idle = self.redis_idle(running)
        common = {"url": urls[0], "targets": [["/bench/fanout", fan]], "payload": PAYLOAD}
        for scenario, rate in (
            ("fanout-rate-low", p["fanout_low_rate"]),
            ("fanout-rate", p["fanout_rate"]),
        ):
            self.add(
                self.above_idle(
                    self.phase(
                        running,
                        scenario,
                        [dict(common, duration=p["fanout_duration"], rate=rate)],
                        fan,
                        {"offered_publishes_per_s": rate, "offered_deliveries_per_s": rate * fan},
                    ),
                    idle,
                )
            )
        flat = self.phase(
            running,
            "fanout-flat",
            [
                dict(
                    common,
                    duration=p["fanout_flat_duration"],
                    rate=0,
                    window=p["fanout_window"],
                )
            ],
            fan,
            {"window_messages": p["fanout_window"]},
        )
        self.add(self.above_idle(flat, idle))
        self.close_subscribers()

    def cost(self, running: servers.Running) -> None:
        """Redis work per publish for 1, 10 and S subscribers (Redis setups only).

        Each size gets fresh subscribers and is measured within seconds of their
        /meta/connect, so no connect renewal (every --timeout 25 s) or GC lands in
        the windows; an idle window just before is subtracted all the same.
        """
        if not running.setup.redis:
            return
        p = self.profile
        urls = running.urls
        for n in [*p["cost_sizes"], p["fanout_subscribers"]]:
            if self.over_budget(reserve=45):
                log(f"  skipping redis-cost-{n}: time budget")
                break
            channel = f"/bench/cost/{n}"
            # A lone subscriber sits on the last process: its delivery crosses Redis.
            clients = [(k, urls[-1] if n == 1 else urls[k % len(urls)], channel) for k in range(n)]
            joined = self.subscribe(clients)
            self.redis_cost(running, channel, joined["connected"])
            self.close_subscribers()

    def redis_cost(self, running: servers.Running, channel: str, n: int) -> None:
        """Redis work per publish: an idle baseline window, then slow publishes."""
        p = self.profile
        baseline = self.idle_phase(running, f"redis-idle-{n}", monitor=True)
        row = self.phase(
            running,
            f"redis-cost-{n}",
            [
                {
                    "url": running.urls[0],
                    "targets": [[channel, n]],
                    "duration": p["cost_duration"],
                    "rate": p["cost_rate"],
                    "payload": PAYLOAD,
                }
            ],
            n,
            monitor=True,
        )
        # Background Redis traffic (heartbeats, GC, connects) at the idle rate, subtracted.
        redis = row["usage"]["redis"]
        published = max(row["published"], 1)
        idle = baseline["usage"]["redis"]
        idle_wall = max(baseline["usage"]["wall_s"], 1e-3)
        scale = row["usage"]["wall_s"] / idle_wall
        row["redis_net"] = {
            "commands_per_publish": round(
                (redis["commands"] - idle["commands"] * scale) / published, 2
            ),
            "round_trips_per_publish": round(
                (redis["reads"] - idle["reads"] * scale) / published, 2
            ),
            "idle_commands_per_s": round(idle["commands"] / idle_wall, 1),
            "idle_round_trips_per_s": round(idle["reads"] / idle_wall, 1),
        }
        mon = row.get("monitor", {})
        idle_mon = baseline.get("monitor", {})
        per = {k: (v - idle_mon.get(k, 0) * scale) / published for k, v in mon.items()}
        row["monitor_per_publish"] = {k: round(v, 2) for k, v in per.items() if v >= 0.05}
        self.add(row)

    def long_polling(self, running: servers.Running) -> None:
        p = self.profile
        urls = running.http_urls
        size = p["lp_subscribers"]
        clients = [(i, urls[i % len(urls)], "/bench/lp") for i in range(size)]
        joined = self.subscribe(clients, transport="long-polling")
        fan = joined["connected"]
        self.add(
            self.phase(
                running,
                "fanout-lp",
                [
                    {
                        "url": running.urls[0],
                        "targets": [["/bench/lp", fan]],
                        "duration": p["lp_duration"],
                        "rate": p["lp_rate"],
                        "payload": PAYLOAD,
                    }
                ],
                fan,
                {
                    "offered_publishes_per_s": p["lp_rate"],
                    "offered_deliveries_per_s": p["lp_rate"] * fan,
                },
            )
        )
        self.close_subscribers()

    def p2p(self, running: servers.Running) -> None:
        size = self.profile["p2p_clients"]
        self.point_to_point(running, [f"/bench/p2p/{i}" for i in range(size)], "p2p")
        if running.setup.redis and running.setup.runtime == "python":
            # The same traffic on channels that a Cluster homes on one master: each
            # setup then carries all of it on one Redis server (one Redis: the same
            # names), which compares a master with one Redis at the same load.
            channels = one_master_channels(size)
            if running.cluster is not None:
                keys = CLUSTER_KEYS
                homes = {
                    running.cluster.master_of_slot(key_slot(keys.clients(p).encode())).port
                    for p in {keys.home(c) for c in channels}
                }
                if len(homes) != 1:
                    log(f"  warning: p2p-one-master channels are homed on {len(homes)} masters")
            self.point_to_point(running, channels, "p2p-one-master", ("flat",))

    def point_to_point(
        self,
        running: servers.Running,
        channels: list[str],
        name: str,
        modes: tuple[str, ...] = ("rate", "flat"),
    ) -> None:
        """One subscriber per channel; the publishers pick channels at random."""
        p = self.profile
        urls = running.urls
        self.subscribe([(i, urls[i % len(urls)], c) for i, c in enumerate(channels)])
        idle = self.redis_idle(running)
        halves = [
            [[c, 1] for i, c in enumerate(channels) if i % len(self.pubs) == k]
            for k in range(len(self.pubs))
        ]
        for mode in modes:
            publishes = []
            for targets in halves:
                spec: dict[str, Any] = {"url": urls[0], "targets": targets, "payload": PAYLOAD}
                if mode == "rate":
                    spec.update(duration=p["p2p_duration"], rate=p["p2p_rate"] / len(halves))
                else:
                    spec.update(
                        duration=p["p2p_flat_duration"],
                        rate=0,
                        window=p["p2p_window"],
                        batch=10,
                    )
                publishes.append(spec)
            extra: dict[str, Any] = (
                {
                    "offered_publishes_per_s": p["p2p_rate"],
                    "offered_deliveries_per_s": p["p2p_rate"],
                }
                if mode == "rate"
                else {"window_messages": p["p2p_window"]}
            )
            row = self.phase(running, f"{name}-{mode}", publishes, 1, extra)
            self.add(self.above_idle(row, idle))
        self.close_subscribers()

    def churn(self, running: servers.Running) -> None:
        p = self.profile
        profilers = self.start_profilers(running, "churn")
        before = self.snapshot(running)
        spec = {
            "urls": running.urls,
            "concurrency": p["churn_concurrency"],
            "duration": p["churn_duration"],
            "prefix": "/bench/churn",
        }
        replies = self.broadcast(
            self.subs, "churn", [spec] * len(self.subs), p["churn_duration"] + 60
        )
        after = self.snapshot(running)
        profiles = self.stop_profilers(profilers)
        usage = self.usage(before, after)
        cycles = sum(r["cycles"] for r in replies)
        latencies: array[float] = array("d")
        for r in replies:
            latencies.frombytes(r["cycle_latencies"])
        seconds = max(r["seconds"] for r in replies)
        server_cpu = sum(usage["server_cpu_s"])
        row: dict[str, Any] = {
            "setup": running.setup.name,
            "scenario": "churn",
            "concurrency": p["churn_concurrency"] * len(self.subs),
            "cycles": cycles,
            "errors": sum(r["errors"] for r in replies),
            "first_errors": [e for r in replies for e in r["first_errors"]][:3],
            "cycles_per_s": round(cycles / seconds, 1),
            "cycle_latency_ms": percentiles(latencies),
            "server_cpu_s_per_1000": round(server_cpu / cycles * 1000, 4) if cycles else None,
            "generator_cpu_s_per_1000": round(sum(usage["generator_cpu_s"]) / cycles * 1000, 4)
            if cycles
            else None,
            "usage": usage,
        }
        if profiles:
            row["profiles"] = profiles
        if "redis" in usage and cycles:
            row["redis_commands_per_cycle"] = round(usage["redis"]["commands"] / cycles, 2)
            row["redis_round_trips_per_cycle"] = round(usage["redis"]["reads"] / cycles, 2)
        self.add(row)

    def probe(self, url: str, seconds: float) -> tuple[WorkerHandle, dict[str, Any]]:
        """Start publishing to the probe clients for ``seconds``; collect with probed()."""
        self.phase_no += 1
        phase = f"probe-{self.phase_no}"
        publisher, watcher = self.pubs
        for worker in (publisher, watcher):
            worker.call("begin", phase)
        spec = {"url": url, "targets": [[PROBE_CHANNEL, PROBES]], "phase": phase}
        spec |= {"duration": seconds, "rate": PROBE_RATE, "payload": PAYLOAD, "deadline": 10}
        publisher.send("publish", spec)
        return publisher, spec

    def probed(self, publisher: WorkerHandle, spec: dict[str, Any]) -> dict[str, Any]:
        """The probe clients' delivery latencies (ms) while ``probe()`` published."""
        published = publisher.reply(spec["duration"] + 60)
        expected = {"expected": published["seqs"], "deadline": 10, "settle": 0.1}
        got = self.pubs[1].call("collect", expected, timeout=60)
        latencies: array[float] = array("d")
        latencies.frombytes(got["latencies"])
        result = {"window_s": round(spec["duration"], 1), "delivered": len(latencies)}
        return result | {"lost": got["lost"], "latency_ms": percentiles(latencies)}

    def idle(self, setup: servers.Setup) -> None:
        """Idle WebSocket clients, all on the first process of a fresh setup.

        Meanwhile PROBES other clients on that process (subscribed from a publisher
        worker, which opens no connections) get PROBE_RATE publishes a second: their
        latency is measured once quiet and during each ramp, over a window set to 80 %
        of the ramp's expected length (from the previous ramp's connect rate)."""
        running = self.start(setup)
        try:
            url = running.urls[0]
            pid = running.pids[0]
            # Warm up: code paths, caches and pools exist before the baseline.
            self.subscribe([(i, url, f"/bench/idle/{i}") for i in range(50)])
            self.close_subscribers()
            probes = [(i, url, PROBE_CHANNEL) for i in range(PROBES)]
            spec = {"clients": probes, "transport": "websocket", "deadline": 60}
            self.pubs[1].call("subscribe", spec, timeout=90)
            quiet = self.probed(*self.probe(url, 3.0))
            time.sleep(1.5)
            rss0 = servers.rss_bytes(pid)
            before = self.snapshot(running)
            count = deflated = 0
            rate = 2000.0  # connects/s expected of the first ramp
            for target in self.profile["idle_counts"]:
                if self.over_budget(reserve=30):
                    log(f"  skipping idle-{target}: time budget")
                    break
                t0 = time.monotonic()
                probing = self.probe(url, max(0.5, 0.8 * (target - count) / rate))
                joined = self.subscribe(
                    [(i, url, f"/bench/idle/{i}") for i in range(count, target)], deadline=240
                )
                connect_s = time.monotonic() - t0
                ramp = self.probed(*probing)
                rate = joined["connected"] / max(connect_s, 1e-9)
                mid = self.snapshot(running)
                count += joined["connected"]
                deflated += joined["deflate"]
                time.sleep(2.0)
                rss = servers.rss_bytes(pid)
                usage = self.usage(before, mid)
                row: dict[str, Any] = {
                    "setup": setup.name,
                    "scenario": f"idle-{target}",
                    "clients": count,
                    "connect_errors": joined["errors"],
                    "rss_before_mb": round(rss0 / 2**20, 1),
                    "rss_after_mb": round(rss / 2**20, 1),
                    "rss_per_client_kb": round((rss - rss0) / max(count, 1) / 1024, 2),
                    "deflate_accepted": deflated,
                    "ws_compression": self.args.ws_compression
                    if setup.runtime == "python"
                    else "node default",
                    "probe_quiet": quiet,
                    "probe_during_ramp": ramp,
                    "connect_s": round(connect_s, 2),
                    "connects_per_s": round(joined["connected"] / max(connect_s, 1e-9), 1),
                    "server_cpu_s_per_1000_connects": round(
                        sum(usage["server_cpu_s"]) / max(count, 1) * 1000, 4
                    ),
                    "usage": usage,
                }
                if "redis" in usage:
                    row["redis_used_memory_mb"] = round(usage["redis"]["used_memory"] / 2**20, 1)
                    grown = usage["redis"]["used_memory"] - int(before["redis"]["used_memory"])
                    row["redis_bytes_per_client"] = round(grown / max(count, 1))
                self.add(row)
                if not running.alive():
                    raise RuntimeError(f"{setup.name} died with {count} idle clients")
            self.close_subscribers(abrupt=True)  # the setup is stopped next anyway
            self.pubs[1].call("close_all", {"abrupt": True}, timeout=60)
        finally:
            running.stop()

    # -- driver -------------------------------------------------------------------------

    def start(self, setup: servers.Setup) -> servers.Running:
        """Start a setup; note which code of ours its processes loaded."""
        running = servers.start(
            setup, self.log_dir, self.server_cpus, cluster_replicas=self.args.cluster_replicas
        )
        if setup.runtime == "python":
            digest = servers.source_state()["src_digest"]
            self.source_by_start.append({"setup": setup.name, "src_digest": digest})
        return running

    def over_budget(self, reserve: float = 0.0) -> bool:
        return time.monotonic() + reserve > self.deadline

    def steps(self) -> list[Any]:
        steps = [self.smoke, self.fanout, self.cost, self.long_polling, self.p2p, self.churn]
        return [s for s in steps if s.__name__ in self.args.only]

    def run_interleaved(self, setups: list[servers.Setup]) -> None:
        """Every setup running at once; each step run for each in turn, in the order
        A B, then B A, ... (``--rounds``); the rows are pooled afterwards (rounds.py).
        The setups not being measured sit idle meanwhile (heartbeats, a Cluster's own
        upkeep: a few ms of CPU per second, outside their Redis's measured CPU)."""
        for setup in setups:
            log(f"{setup.name}: {setup.label}")
        running = [self.start(setup) for setup in setups]
        try:
            for step in self.steps():
                for n in range(self.args.rounds):
                    if self.over_budget(reserve=60):
                        log(f"  skipping {step.__name__} round {n}: time budget")
                        break
                    self.round = n
                    for run in running if n % 2 == 0 else running[::-1]:
                        log(f"{run.setup.name}, round {n}:")
                        step(run)
                        if not run.alive():
                            raise RuntimeError(f"{run.setup.name}: a server process died")
        finally:
            self.round = None
            for run in running:
                run.stop()

    def run_setup(self, setup: servers.Setup) -> None:
        log(f"{setup.name}: {setup.label}")
        steps_wanted = bool(set(self.args.only) - {"idle"})
        running = self.start(setup) if steps_wanted else None
        try:
            if running is None:
                raise _Skip
            for step in self.steps():
                if self.over_budget(reserve=60):
                    log(f"  skipping {step.__name__}: time budget")
                    continue
                step(running)
                if not running.alive():
                    raise RuntimeError(f"{setup.name}: a server process died")
        except _Skip:
            pass
        finally:
            if running is not None:
                running.stop()
        if "idle" in self.args.only and not self.over_budget(reserve=30):
            self.idle(setup)

    def run(self) -> dict[str, Any]:
        fd = raise_fd_limit()
        busy0, total0 = servers.machine_cpu()
        time.sleep(2.0)
        busy1, total1 = servers.machine_cpu()
        quiet = round((busy1 - busy0) / max(total1 - total0, 1e-9), 3)
        if quiet > 0.15:
            log(f"warning: the machine was {quiet:.0%} busy before the run (other work)")
        meta: dict[str, Any] = {
            "command": " ".join(["python", "bench/run.py", *sys.argv[1:]]),
            "profile": "quick" if self.args.quick else "full",
            "settings": self.profile,
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": {
                "nproc": os.cpu_count(),
                "cpu_model": servers.cpu_model(),
                "loadavg_before": servers.loadavg(),
                "busy_before": quiet,
                "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * servers.PAGE / 2**30, 1),
            },
            "versions": servers.versions(),
            "source": servers.source_state(),
            "fd_limit": fd,
            "pinning": (
                "servers and redis-server on CPU 0, generator workers on CPU 1"
                if self.pin
                else "none (the kernel schedules servers, redis-server and generator "
                "on all CPUs; see usage.* for who used what)"
            ),
            "generator": {
                "subscriber_workers": self.sub_workers,
                "publisher_workers": PUB_WORKERS,
            },
            "payload_bytes": PAYLOAD,
            "ws_compression": self.args.ws_compression,
            "cluster": {"masters": 3, "replicas_per_master": self.args.cluster_replicas},
        }
        errors: list[str] = []
        if self.args.rounds > 1:
            meta["rounds"] = self.args.rounds
            try:
                self.run_interleaved([servers.SETUPS[name] for name in self.args.setups])
            except Exception as exc:
                errors.append(f"interleaved run: {exc}")
                log(f"interleaved run FAILED: {exc}\n{traceback.format_exc()}")
            self.rows = rounds.pool_rounds(self.rows)
        for name in self.args.setups if self.args.rounds == 1 else []:
            try:
                self.run_setup(servers.SETUPS[name])
            except Exception as exc:
                errors.append(f"{name}: {exc}")
                log(f"{name} FAILED: {exc}\n{traceback.format_exc()}")
                self.reset_pool()
        meta["loadavg_after"] = servers.loadavg()
        end = servers.source_state()
        meta["source"]["python_servers"] = self.source_by_start
        if any(s["src_digest"] != meta["source"]["src_digest"] for s in self.source_by_start):
            meta["source"]["changed_during_run"] = end
            log("warning: src/ changed during the run: some of our servers ran newer code")
        elif end["src_digest"] != meta["source"]["src_digest"]:
            meta["source"]["changed_after_last_start"] = end
            log("note: src/ changed after our last server started (no effect on this run)")
        meta["seconds"] = round(time.monotonic() - self.started, 1)
        meta["errors"] = errors
        return {"meta": meta, "rows": self.rows}

    def reset_pool(self) -> None:
        """Fresh workers after a failure (a worker may still be busy or hold clients)."""
        self.pool.stop()
        self.pool = WorkerPool(self.sub_workers + PUB_WORKERS, self.worker_cpus)
        self.subs = self.pool.workers[: self.sub_workers]
        self.pubs = self.pool.workers[self.sub_workers :]

    def close(self) -> None:
        self.pool.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 2 minutes)")
    parser.add_argument(
        "--cluster-replicas",
        type=int,
        default=0,
        help="replicas per master of py-redis-cluster's Cluster (default 0: like the one "
        "Redis of py-redis, which has none; a replica's feed costs its master CPU)",
    )
    parser.add_argument(
        "--setups",
        nargs="+",
        default=list(servers.SETUPS),
        choices=list(servers.SETUPS),
        help="which servers to run (default: all four)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=STEPS,
        choices=STEPS,
        help="run only these scenario groups (default: all)",
    )
    parser.add_argument(
        "--sub-workers",
        type=int,
        default=2,
        help="subscriber processes of the load generator (default 2; publishers: 2 more)",
    )
    parser.add_argument(
        "--pin", action="store_true", help="servers + redis on CPU 0, generator on CPU 1"
    )
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds before remaining steps are skipped"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="record py-spy profiles of our servers per scenario (DIR/<setup>-<scenario>-<n>"
        ".txt collapsed stacks for bench/profiles.py, and .svg flame graphs); "
        "profiling perturbs the numbers, so use it for a separate run",
    )
    parser.add_argument(
        "--py-spy-rate",
        type=int,
        default=100,
        metavar="HZ",
        help="py-spy samples per second (100; 1000 resolves a fixed-rate phase's bursts)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="interleave the setups: all running at once, each scenario run for each in "
        "turn (A B, B A, ...) this many times, then pooled (smoke, fanout and p2p only); "
        "ratios between setups then stop measuring the machine's drift",
    )
    parser.add_argument(
        "--ws-compression",
        default="off",
        help="our servers' --ws-compression (off, on, no-context-takeover; default off)",
    )
    parser.add_argument(
        "--idle-counts",
        type=int,
        nargs="+",
        default=None,
        help="idle-N sizes (default 1000 10000; --quick: 1000); one process holds N "
        "sockets, so raise ulimit -n above the largest",
    )
    parser.add_argument("--plots", type=Path, default=None, help="directory for the PNG plots")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    if args.rounds > 1 and not set(args.only) <= {"smoke", "fanout", "p2p"}:
        parser.error("--rounds interleaves smoke, fanout and p2p only: pass --only with them")
    if args.budget is None:
        args.budget = (200.0 if args.quick else 570.0) * max(1, args.rounds)
    if not (BENCH / "node" / "node_modules" / "faye").exists() and any(
        s.startswith("node") for s in args.setups
    ):
        sys.exit("bench/node/node_modules is missing: run `bash bench/install.sh` first")

    os.environ["FAYE_WS_COMPRESSION"] = args.ws_compression  # our servers inherit it
    bench = Bench(args)
    if args.idle_counts:
        bench.profile["idle_counts"] = sorted(args.idle_counts)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = bench.run()
    finally:
        bench.close()
    out = args.out or BENCH / "results" / f"{bench.stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    plots = args.plots or (
        BENCH / "results" / "raw" / bench.stamp / "plots"
        if args.quick
        else BENCH.parent / "docs" / "benchmarks"
    )
    table = report.render(result)
    out.with_suffix(".md").write_text(table + "\n")
    written = report.plots(result, plots)
    print(table)
    print(f"\nJSON: {out}\nTable: {out.with_suffix('.md')}")
    for path in written:
        print(f"Plot: {path}")
    if result["meta"]["errors"]:
        print("\nERRORS:\n" + "\n".join(result["meta"]["errors"]))
        sys.exit(1)


if __name__ == "__main__":
    main()

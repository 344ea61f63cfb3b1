"""One measured phase: publish, collect every delivery, and what it cost whom.

A :class:`Runner` owns the load generator's workers (bench/pool.py). Subscribers are
spread over the subscriber workers; the publishers are two more. A phase snapshots the
CPU of every process under test (servers, Redis masters and replicas, workers), runs
the publishers, waits for every expected delivery, snapshots again, and returns a row:
deliveries, losses, latency percentiles, and CPU per 1000 deliveries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import measure
from bench.pool import WorkerHandle, WorkerPool
from bench.setups import Running

PAYLOAD = 64
PUB_WORKERS = 2


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentiles(values: array[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max in milliseconds."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)
    last = len(ordered) - 1

    def pick(q: float) -> float:
        return round(ordered[round(q * last)] * 1000, 2)

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": pick(1.0)}


def per_1000(cost: float, count: int) -> float | None:
    return round(cost / count * 1000, 4) if count else None


@dataclass
class Profiling:
    """``--py-spy DIR``: record our server processes during each phase."""

    directory: Path
    rate: int = 100


class Runner:
    def __init__(self, sub_workers: int, cpus: int | None, profiling: Profiling | None) -> None:
        self.sub_workers = sub_workers
        self.cpus = cpus
        self.profiling = profiling
        self.rows: list[dict[str, Any]] = []
        self.phase_no = 0
        self.pool = WorkerPool(sub_workers + PUB_WORKERS, [cpus])

    @property
    def subs(self) -> list[WorkerHandle]:
        return self.pool.workers[: self.sub_workers]

    @property
    def pubs(self) -> list[WorkerHandle]:
        return self.pool.workers[self.sub_workers :]

    def reset(self) -> None:
        """Fresh workers after a failure (a worker may still be busy or hold clients)."""
        self.pool.stop()
        self.pool = WorkerPool(self.sub_workers + PUB_WORKERS, [self.cpus])

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        figures = ("deliveries_per_s", "cycles_per_s", "rss_per_client_kb", "lost")
        shown = {k: row[k] for k in figures if k in row}
        cpu = row.get("server_cpu_s_per_1000")
        log(f"  {row['setup']} {row['scenario']}: {shown} server CPU s/1000 {cpu}")

    # -- workers ------------------------------------------------------------------------

    def broadcast(
        self, workers: list[WorkerHandle], name: str, specs: list[Any], timeout: float
    ) -> list[Any]:
        for worker, spec in zip(workers, specs, strict=True):
            worker.send(name, spec)
        return [worker.reply(timeout) for worker in workers]

    def subscribe(
        self, clients: list[tuple[int, str, str]], transport: str = "websocket", deadline=120.0
    ) -> dict[str, Any]:
        """Spread clients over the subscriber workers; wait until all are connected."""
        shares: list[list[tuple[int, str, str]]] = [[] for _ in self.subs]
        for k, client in enumerate(clients):
            shares[k % len(shares)].append(client)
        specs = [{"clients": s, "transport": transport, "deadline": deadline} for s in shares]
        replies = self.broadcast(self.subs, "subscribe", specs, deadline + 30)
        errors = [e for r in replies for e in r["first_errors"]]
        if errors:
            log(f"  {sum(r['errors'] for r in replies)} client(s) failed: {errors[:3]}")
        return {
            "connected": sum(r["connected"] for r in replies),
            "deflate": sum(r["deflate"] for r in replies),
            "errors": sum(r["errors"] for r in replies),
        }

    def close_subscribers(self, abrupt: bool = False) -> None:
        """/meta/disconnect and close every subscriber (``abrupt``: drop the sockets)."""
        self.broadcast(self.subs, "close_all", [{"abrupt": abrupt}] * len(self.subs), 90)

    # -- what it cost ---------------------------------------------------------------------

    def snapshot(self, running: Running) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "t": time.time(),
            "servers": [measure.cpu_seconds(p) for p in running.pids],
            "workers": [measure.cpu_seconds(p) for p in self.pool.pids()],
            "runner": sum(os.times()[:2]),
            "all": measure.all_process_cpu(),
        }
        if running.masters:
            masters = running.redis_pids(running.masters)
            snap["redis_each"] = [measure.cpu_seconds(p) for p in masters]
            snap["replicas"] = sum(map(measure.cpu_seconds, running.redis_pids(running.replicas)))
            snap["redis"] = measure.redis_info_all(running.redis_ports)
        return snap

    def usage(self, running: Running, before: dict[str, Any], after: dict[str, Any]) -> dict:
        """CPU seconds by whom between two snapshots; ``other``: the rest of the machine."""

        def spent(key: str) -> list[float]:
            return [round(a - b, 4) for a, b in zip(after[key], before[key], strict=True)]

        wall = after["t"] - before["t"]
        busy = measure.cpu_between(before["all"], after["all"])
        result: dict[str, Any] = {
            "wall_s": round(wall, 3),
            "server_cpu_s": spent("servers"),
            "generator_cpu_s": spent("workers"),
            "machine_busy": round(busy / (wall * (os.cpu_count() or 1)), 3),
        }
        ours = sum(result["server_cpu_s"]) + sum(result["generator_cpu_s"])
        ours += after["runner"] - before["runner"]
        if "redis" in after:
            result["redis_cpu_each_s"] = spent("redis_each")
            result["redis_cpu_s"] = round(sum(result["redis_cpu_each_s"]), 4)
            result["replica_cpu_s"] = round(after["replicas"] - before["replicas"], 4)
            result["redis"] = measure.redis_delta(before["redis"], after["redis"])
            ours += result["redis_cpu_s"] + result["replica_cpu_s"]
        result["other_cpu_s"] = round(busy - ours, 3)
        mine = {os.getpid(), *self.pool.pids(), *running.pids}
        mine |= set(running.redis_pids(running.masters + running.replicas))
        result["other_top"] = measure.top_others(before["all"], after["all"], mine)
        return result

    def start_profilers(self, running: Running, scenario: str) -> list[tuple[Any, Path]]:
        """py-spy on each of our server processes: collapsed stacks and a flame graph."""
        if self.profiling is None or running.setup.runtime != "python":
            return []
        spy = Path(sys.executable).with_name("py-spy")
        self.profiling.directory.mkdir(parents=True, exist_ok=True)
        procs = []
        for i, pid in enumerate(running.pids):
            stem = self.profiling.directory / f"{running.setup.name}-{scenario}-{i}"
            for fmt, out in (
                ("raw", stem.with_suffix(".txt")),
                ("flamegraph", stem.with_suffix(".svg")),
            ):
                line = [str(spy), "record", "--pid", str(pid), "--format", fmt, "--nonblocking"]
                line += ["--rate", str(self.profiling.rate), "--output", str(out)]
                procs.append((subprocess.Popen(line, stdout=subprocess.DEVNULL), out))
        time.sleep(0.5)  # py-spy attaches
        return procs

    @staticmethod
    def stop_profilers(procs: list[tuple[Any, Path]]) -> list[str]:
        for proc, _ in procs:
            proc.send_signal(signal.SIGINT)
        for proc, _ in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        return [str(out) for _, out in procs]

    # -- one phase --------------------------------------------------------------------------

    def phase(
        self,
        running: Running,
        scenario: str,
        publishes: list[dict[str, Any]],
        drain: float,
    ) -> dict[str, Any]:
        """Publish (one spec per publisher worker), collect, measure; returns a row."""
        self.phase_no += 1
        phase = f"{scenario}-{self.phase_no}"
        self.broadcast(self.pool.workers, "begin", [phase] * len(self.pool.workers), 30)
        profilers = self.start_profilers(running, scenario)
        before = self.snapshot(running)
        duration = max(p["duration"] for p in publishes)
        specs = [dict(p, phase=phase, deadline=drain, payload=PAYLOAD) for p in publishes]
        pub = self.broadcast(self.pubs[: len(specs)], "publish", specs, duration + drain + 60)
        expected: dict[str, int] = {}
        for r in pub:
            for channel, n in r["seqs"].items():
                expected[channel] = expected.get(channel, 0) + n
        collect = {"expected": expected, "deadline": drain, "settle": 0.2}
        sub = self.broadcast(self.subs, "collect", [collect] * len(self.subs), drain + 60)
        after = self.snapshot(running)
        profiles = self.stop_profilers(profilers)
        latencies: array[float] = array("d")
        for r in sub:
            latencies.frombytes(r["latencies"])
        delivered = len(latencies)
        first = min(r["first_t"] for r in pub)
        span = max(max([r["last_arrival"] for r in sub] + [first]) - first, 1e-9)
        usage = self.usage(running, before, after)
        server_cpu = sum(usage["server_cpu_s"])
        published = sum(r["published"] for r in pub)
        row: dict[str, Any] = {
            "setup": running.setup.name,
            "scenario": scenario,
            "published": published,
            "publish_acks": sum(r["acks"] for r in pub),
            "publish_failures": sum(r["failed"] for r in pub),
            "expected": sum(r["expected"] for r in sub),
            "delivered": delivered,
            **{k: sum(r[k] for r in sub) for k in ("lost", "duplicated", "stale")},
            **{k: sum(r[k] for r in sub) for k in ("connect_failures", "rehandshakes")},
            "span_s": round(span, 3),
            "deliveries_per_s": round(delivered / span, 1),
            "latency_ms": percentiles(latencies),
            "server_cpu_s_per_1000": per_1000(server_cpu, delivered),
            "generator_cpu_s_per_1000": per_1000(sum(usage["generator_cpu_s"]), delivered),
            "usage": usage,
        }
        if "redis" in usage:
            row["redis_cpu_s_per_1000"] = per_1000(usage["redis_cpu_s"], delivered)
            row["replica_cpu_s_per_1000"] = per_1000(usage["replica_cpu_s"], delivered)
            if published:
                row["redis_commands_per_publish"] = round(usage["redis"]["commands"] / published, 2)
                row["redis_round_trips_per_publish"] = round(usage["redis"]["reads"] / published, 2)
        if profiles:
            row["profiles"] = profiles
        return row

    def quiet_phase(self, running: Running, scenario: str, seconds: float) -> dict[str, Any]:
        """A window with the clients connected and nothing published: the background
        (heartbeats, GC, connect renewals, a Cluster's upkeep) a measured phase stands on."""
        spec = {"url": running.urls[0], "targets": [["/bench/none", 0]], "duration": seconds}
        return self.phase(running, scenario, [dict(spec, rate=1.0, max_messages=0)], 5)

    @staticmethod
    def above_idle(row: dict[str, Any], idle: dict[str, Any] | None) -> dict[str, Any]:
        """Redis CPU per 1000 deliveries above the idle rate: all masters together, and
        the busiest one (which, for one channel's fan-out, carries the whole load)."""
        delivered = row["delivered"]
        if idle is None or not delivered or "redis_cpu_each_s" not in row["usage"]:
            return row
        wall, idle_wall = row["usage"]["wall_s"], max(idle["usage"]["wall_s"], 1e-3)
        rates = [cpu / idle_wall for cpu in idle["usage"]["redis_cpu_each_s"]]
        each = [
            cpu - rate * wall
            for cpu, rate in zip(row["usage"]["redis_cpu_each_s"], rates, strict=True)
        ]
        row["redis_idle_cpu_per_s"] = round(sum(rates), 4)
        row["redis_cpu_above_idle_s_per_1000"] = per_1000(sum(each), delivered)
        row["redis_busiest_master_above_idle_s_per_1000"] = per_1000(max(each), delivered)
        return row

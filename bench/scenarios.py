"""The scenarios of ``python -m bench compare``, each run on one started setup.

WebSocket unless stated; subscribers are spread over the setup's processes and the
publisher talks to the first, so that on a 2-process setup most deliveries cross Redis.

    smoke           a publish through the first process reaches a subscriber on the last
    fanout-rate     S subscribers on one channel, one publisher at a fixed rate
                    (fanout-rate-low: a fifth of that rate)
    fanout-flat     the same, flat out (closed loop: at most W messages in flight)
    fanout-1000-10k, fanout-100-10k  10,000 deliveries/s offered to S and to N
                    subscribers on one channel (10 and 100 publishes/s)
    fanout-lp       long-polling subscribers, fixed rate
    redis-cost-N    N = 1, 10, S subscribers, slow publishes: Redis commands, round
                    trips and calls by command per publish, idle subtracted
    p2p-rate        C clients each on its own channel, publishers round robin, fixed rate
    p2p-flat        the same, flat out
    p2p-one-master-flat  (Redis Cluster and our one-Redis setups) p2p-flat on channels
                    that the Cluster homes on one master: a master against one Redis
    churn, churn-lp open, handshake, subscribe, disconnect, close cycles, flat out
    idle-N          N idle WebSocket clients on one process, connected like browsers
                    (permessage-deflate offered, one subscribe, a held connect): RSS per
                    client, connect rate, and 20 other clients' latency meanwhile
"""

from __future__ import annotations

import time
from array import array
from typing import Any

from redis.crc import key_slot

from bench import measure
from bench.phases import PAYLOAD, Runner, per_1000, percentiles
from bench.setups import NAMESPACE, Running

FULL: dict[str, Any] = {
    "fanout_subscribers": 1000,
    "fanout_rate": 5.0,  # publishes/s; fanout-rate-low: a fifth
    "fanout_seconds": 8.0,
    "fanout_window": 16,  # messages in flight, flat out
    "fanout_10k": 10_000.0,  # deliveries/s offered by fanout-S-10k and fanout-N-10k
    "narrow_subscribers": 100,  # N
    "lp_subscribers": 100,
    "lp_rate": 10.0,
    "cost_sizes": [1, 10],  # and fanout_subscribers
    "cost_rate": 5.0,
    "cost_seconds": 3.0,
    "p2p_clients": 1000,
    "p2p_rate": 500.0,
    "p2p_seconds": 8.0,
    "p2p_window": 200,
    "churn_concurrency": 16,  # per subscriber worker
    "churn_seconds": 8.0,
    "idle_counts": [1000, 10000],
    "drain": 20.0,  # seconds to wait for the last deliveries
}
QUICK = FULL | {"fanout_subscribers": 200, "fanout_rate": 10.0, "fanout_seconds": 2.5}
QUICK |= {"fanout_10k": 2000.0, "narrow_subscribers": 20}
QUICK |= {"lp_subscribers": 50, "cost_seconds": 1.5, "p2p_clients": 200, "p2p_seconds": 2.0}
QUICK |= {"p2p_window": 100, "churn_concurrency": 8, "churn_seconds": 2.0}
QUICK |= {"idle_counts": [1000], "drain": 8.0}
PROFILES = {"full": FULL, "quick": QUICK}

PROBES = 20
PROBE_RATE = 20.0
PROBE_CHANNEL = "/bench/probe"


class Scenarios:
    def __init__(self, runner: Runner, profile: dict[str, Any]) -> None:
        self.run = runner
        self.p = profile

    def spread(self, running: Running, channels: list[str]) -> list[tuple[int, str, str]]:
        urls = running.urls
        return [(i, urls[i % len(urls)], channel) for i, channel in enumerate(channels)]

    def smoke(self, running: Running) -> None:
        """A publish through the first process reaches a subscriber on the last one."""
        self.run.subscribe([(0, running.urls[-1], "/bench/smoke")])
        spec = {"url": running.urls[0], "targets": [["/bench/smoke", 1]], "duration": 0.5}
        row = self.run.phase(running, "smoke", [dict(spec, rate=10.0)], self.p["drain"])
        self.run.close_subscribers()
        row["ok"] = row["delivered"] == row["published"] > 0 and row["lost"] == 0
        self.run.add(row)
        if not row["ok"]:
            raise RuntimeError(f"{running.setup.name}: smoke test failed: {row}")

    def fanout(self, running: Running) -> None:
        p = self.p
        size = p["fanout_subscribers"]
        fan = self.run.subscribe(self.spread(running, ["/bench/fanout"] * size))["connected"]
        idle = self.run.quiet_phase(running, "idle", p["cost_seconds"]) if running.masters else None
        common = {"url": running.urls[0], "targets": [["/bench/fanout", fan]]}
        runs = [
            ("fanout-rate-low", dict(rate=p["fanout_rate"] / 5)),
            ("fanout-rate", dict(rate=p["fanout_rate"])),
            (f"fanout-{size}-10k", dict(rate=p["fanout_10k"] / size)),
            ("fanout-flat", dict(rate=0, window=p["fanout_window"])),
        ]
        for scenario, how in runs:
            spec = dict(common, duration=p["fanout_seconds"], **how)
            row = self.run.phase(running, scenario, [spec], p["drain"])
            self.run.add(self.run.above_idle(dict(row, subscribers=fan), idle))
        self.run.close_subscribers()
        self.narrow_fanout(running)

    def narrow_fanout(self, running: Running) -> None:
        """The same deliveries/s to a narrow audience: ten times the publishes."""
        p = self.p
        size = p["narrow_subscribers"]
        fan = self.run.subscribe(self.spread(running, ["/bench/narrow"] * size))["connected"]
        idle = None
        if running.masters:
            idle = self.run.quiet_phase(running, "idle-narrow", p["cost_seconds"])
        spec = {"url": running.urls[0], "targets": [["/bench/narrow", fan]]}
        spec |= {"rate": p["fanout_10k"] / size, "duration": p["fanout_seconds"]}
        row = self.run.phase(running, f"fanout-{size}-10k", [spec], p["drain"])
        self.run.add(self.run.above_idle(dict(row, subscribers=fan), idle))
        self.run.close_subscribers()

    def long_polling(self, running: Running) -> None:
        p = self.p
        urls = running.http_urls
        clients = [(i, urls[i % len(urls)], "/bench/lp") for i in range(p["lp_subscribers"])]
        fan = self.run.subscribe(clients, transport="long-polling")["connected"]
        spec = {"url": running.urls[0], "targets": [["/bench/lp", fan]], "rate": p["lp_rate"]}
        row = self.run.phase(
            running, "fanout-lp", [dict(spec, duration=p["fanout_seconds"])], p["drain"]
        )
        self.run.add(dict(row, subscribers=fan))
        self.run.close_subscribers()

    def cost(self, running: Running) -> None:
        """Redis work per publish for 1, 10 and S subscribers (one-Redis setups only).

        Fresh subscribers for each size, measured within seconds of their connect, so
        that no connect renewal or GC lands in the window; an idle window just before
        is subtracted all the same."""
        if running.redis is None:
            return
        p = self.p
        for n in [*p["cost_sizes"], p["fanout_subscribers"]]:
            channel = f"/bench/cost/{n}"
            # A lone subscriber sits on the last process: its delivery crosses Redis.
            clients = (
                self.spread(running, [channel] * n) if n > 1 else [(0, running.urls[-1], channel)]
            )
            self.run.subscribe(clients)
            idle = self.run.quiet_phase(running, f"redis-idle-{n}", p["cost_seconds"])
            spec = {"url": running.urls[0], "targets": [[channel, n]], "rate": p["cost_rate"]}
            spec["duration"] = p["cost_seconds"]
            row = self.run.phase(running, f"redis-cost-{n}", [spec], p["drain"])
            self.run.add(net_of_idle(row, idle))
            self.run.close_subscribers()

    def p2p(self, running: Running) -> None:
        size = self.p["p2p_clients"]
        self.point_to_point(running, [f"/bench/p2p/{i}" for i in range(size)], "p2p")
        if running.setup.runtime == "python" and running.setup.redis in ("single", "cluster"):
            channels = one_master_channels(size)
            self.point_to_point(running, channels, "p2p-one-master", ("flat",))

    def point_to_point(
        self, running: Running, channels: list[str], name: str, modes=("rate", "flat")
    ) -> None:
        """One subscriber per channel; each publisher round robin over half of them."""
        p = self.p
        self.run.subscribe(self.spread(running, channels))
        idle = self.run.quiet_phase(running, "idle", p["cost_seconds"]) if running.masters else None
        halves = [channels[k :: len(self.run.pubs)] for k in range(len(self.run.pubs))]
        for mode in modes:
            publishes = []
            for half in halves:
                spec: dict[str, Any] = {"url": running.urls[0], "targets": [[c, 1] for c in half]}
                spec["duration"] = p["p2p_seconds"]
                if mode == "rate":
                    spec["rate"] = p["p2p_rate"] / len(halves)
                else:
                    spec.update(rate=0, window=p["p2p_window"], batch=10)
                publishes.append(spec)
            row = self.run.phase(running, f"{name}-{mode}", publishes, p["drain"])
            self.run.add(self.run.above_idle(row, idle))
        self.run.close_subscribers()

    def churn(self, running: Running) -> None:
        for transport, scenario in (("websocket", "churn"), ("long-polling", "churn-lp")):
            self.one_churn(running, transport, scenario)

    def one_churn(self, running: Running, transport: str, scenario: str) -> None:
        p = self.p
        run = self.run
        profilers = run.start_profilers(running, scenario)
        before = run.snapshot(running)
        urls = running.urls if transport == "websocket" else running.http_urls
        spec = {"urls": urls, "transport": transport, "prefix": "/bench/churn"}
        spec |= {"concurrency": p["churn_concurrency"], "duration": p["churn_seconds"]}
        timeout = p["churn_seconds"] + 60
        replies = run.broadcast(run.subs, "churn", [spec] * len(run.subs), timeout)
        after = run.snapshot(running)
        profiles = run.stop_profilers(profilers)
        usage = run.usage(running, before, after)
        cycles = sum(r["cycles"] for r in replies)
        latencies: array[float] = array("d")
        for r in replies:
            latencies.frombytes(r["cycle_latencies"])
        row: dict[str, Any] = {
            "setup": running.setup.name,
            "scenario": scenario,
            "concurrency": p["churn_concurrency"] * len(run.subs),
            "cycles": cycles,
            "errors": sum(r["errors"] for r in replies),
            "first_errors": [e for r in replies for e in r["first_errors"]][:3],
            "cycles_per_s": round(cycles / max(r["seconds"] for r in replies), 1),
            "cycle_latency_ms": percentiles(latencies),
            "server_cpu_s_per_1000": per_1000(sum(usage["server_cpu_s"]), cycles),
            "usage": usage,
        }
        if "redis" in usage and cycles:
            row["redis_cpu_s_per_1000"] = per_1000(usage["redis_cpu_s"], cycles)
            row["redis_commands_per_cycle"] = round(usage["redis"]["commands"] / cycles, 2)
        if profiles:
            row["profiles"] = profiles
        run.add(row)

    # -- idle clients ---------------------------------------------------------------------

    def probe(self, url: str, seconds: float) -> dict[str, Any]:
        """Start publishing to the probe clients for ``seconds``; collect with probed()."""
        self.run.phase_no += 1
        phase = f"probe-{self.run.phase_no}"
        for worker in self.run.pubs:
            worker.call("begin", phase)
        spec = {"url": url, "targets": [[PROBE_CHANNEL, PROBES]], "phase": phase}
        spec |= {"duration": seconds, "rate": PROBE_RATE, "payload": PAYLOAD, "deadline": 10}
        self.run.pubs[0].send("publish", spec)
        return spec

    def probed(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The probe clients' delivery latencies while ``probe()`` published."""
        published = self.run.pubs[0].reply(spec["duration"] + 60)
        expected = {"expected": published["seqs"], "deadline": 10, "settle": 0.1}
        got = self.run.pubs[1].call("collect", expected, timeout=60)
        latencies: array[float] = array("d")
        latencies.frombytes(got["latencies"])
        return {"lost": got["lost"], "latency_ms": percentiles(latencies)}

    def idle(self, running: Running) -> None:
        """Idle clients, all on the first process of a freshly started setup.

        Meanwhile PROBES other clients on that process (held by a publisher worker)
        get PROBE_RATE publishes a second: their latency is measured once quiet and
        during each ramp of connects."""
        url, pid, run = running.urls[0], running.pids[0], self.run
        run.subscribe([(i, url, f"/bench/idle/{i}") for i in range(50)])  # warm-up
        run.close_subscribers()
        probes = {"clients": [(i, url, PROBE_CHANNEL) for i in range(PROBES)], "deadline": 60}
        run.pubs[1].call("subscribe", probes, timeout=90)
        quiet = self.probed(self.probe(url, 3.0))
        time.sleep(1.5)
        rss0 = measure.rss_bytes(pid)
        before = run.snapshot(running)
        count = deflated = 0
        rate = 2000.0  # connects/s expected of the first ramp
        for target in self.p["idle_counts"]:
            t0 = time.monotonic()
            probing = self.probe(url, max(0.5, 0.8 * (target - count) / rate))
            clients = [(i, url, f"/bench/idle/{i}") for i in range(count, target)]
            joined = run.subscribe(clients, deadline=240)
            connect_s = time.monotonic() - t0
            ramp = self.probed(probing)
            rate = joined["connected"] / max(connect_s, 1e-9)
            mid = run.snapshot(running)
            count += joined["connected"]
            deflated += joined["deflate"]
            time.sleep(2.0)
            rss = measure.rss_bytes(pid)
            usage = run.usage(running, before, mid)
            row: dict[str, Any] = {
                "setup": running.setup.name,
                "scenario": f"idle-{target}",
                "clients": count,
                "connect_errors": joined["errors"],
                "deflate_accepted": deflated,
                "rss_before_mb": round(rss0 / 2**20, 1),
                "rss_after_mb": round(rss / 2**20, 1),
                "rss_per_client_kb": round((rss - rss0) / max(count, 1) / 1024, 2),
                "connects_per_s": round(rate, 1),
                "probe_quiet": quiet,
                "probe_during_ramp": ramp,
                "server_cpu_s_per_1000": per_1000(sum(usage["server_cpu_s"]), count),
                "usage": usage,
            }
            if "redis" in usage:
                grown = usage["redis"]["used_memory"] - int(before["redis"]["used_memory"])
                row["redis_bytes_per_client"] = round(grown / max(count, 1))
            run.add(row)
            if not running.alive():
                raise RuntimeError(f"{running.setup.name} died with {count} idle clients")
        run.close_subscribers(abrupt=True)  # the setup is stopped next anyway
        run.pubs[1].call("close_all", {"abrupt": True}, timeout=60)


def net_of_idle(row: dict[str, Any], idle: dict[str, Any]) -> dict[str, Any]:
    """Per-publish Redis work less the background of the idle window, scaled to length."""
    published = max(row["published"], 1)
    scale = row["usage"]["wall_s"] / max(idle["usage"]["wall_s"], 1e-3)
    redis, quiet = row["usage"]["redis"], idle["usage"]["redis"]
    row["redis_net"] = {
        "commands_per_publish": round(
            (redis["commands"] - quiet["commands"] * scale) / published, 2
        ),
        "round_trips_per_publish": round((redis["reads"] - quiet["reads"] * scale) / published, 2),
    }
    calls, quiet_calls = redis["by_command"], quiet["by_command"]
    per = {k: (v - quiet_calls.get(k, 0) * scale) / published for k, v in calls.items()}
    row["calls_per_publish"] = {k: round(v, 2) for k, v in per.items() if v >= 0.05}
    return row


def one_master_channels(count: int, partitions: int = 16) -> list[str]:
    """Channel names that py-redis-cluster's Cluster (3 masters from ``redis-cli
    --cluster create``: slots 0-5460 on the first) homes on its first master, given the
    engine's published key layout (:class:`faye.redis.Keys`, balanced on a Cluster)."""
    from faye.redis import Keys

    keys = Keys(NAMESPACE, partitions, balanced=True)
    names: list[str] = []
    for n in range(100 * count):
        name = f"/bench/p2p1/{n}"
        if key_slot(keys.clients(keys.home(name)).encode()) <= 5460:
            names.append(name)
        if len(names) == count:
            break
    return names

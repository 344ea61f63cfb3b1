"""Deliveries per second on one Redis, behind Sentinel and on a 3-master Cluster, same load.

    python bench/cluster_throughput.py                  # all three, 10 s each
    python bench/cluster_throughput.py --seconds 5 --workers 2 --subscribers 200
    python bench/cluster_throughput.py --memory         # INFO memory per client/subscription
    python bench/cluster_throughput.py --memory --only cluster   # the same on a Cluster
    python bench/cluster_throughput.py --command-cost   # Redis's price for cluster mode
    python bench/cluster_throughput.py --replicas 0     # a Cluster without replicas
    python bench/cluster_throughput.py --fanout --window 1  # one channel, all subscribers

Each setup is started fresh on free loopback ports (never the machine's 6379): one
``redis-server``, or 6 cluster nodes (3 masters, 3 replicas). ``--workers`` processes
each run two engine proxies (two "servers" in one process, as in the tests): one holds
``--subscribers`` clients, each subscribed to a channel of its own (``--fanout``: all to
one channel), the other publishes to those channels at random, closed loop with
``--window`` publishes in flight. A
delivery is a message pushed to a subscriber's socket. Redis CPU per master is the
``INFO cpu`` delta (user + sys) over the run, less what the same master used while
idle just before (a Cluster's nodes gossip and a master feeds its replica, which at
this light load would otherwise count for much of the cost of a delivery); both the
raw and the net figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from redis.crc import key_slot  # noqa: E402

from faye.proxy import EngineProxy  # noqa: E402
from faye.redis import RedisEngine  # noqa: E402
from faye.redis.keys import Keys  # noqa: E402
from faye.redis.options import CLUSTER_PARTITIONS  # noqa: E402
from faye.redis.scripts import Library, library  # noqa: E402
from tests.support.engines import engine_of  # noqa: E402
from tests.support.redis_cluster import ClusterTopology, SentinelTopology, cluster_port  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

#: How long each master's idle CPU is measured before the load starts.
IDLE_SECONDS = 2.0


class Counter:
    def __init__(self) -> None:
        self.count = 0


class Socket:
    """Counts what it is handed and reports it written at once, as a transport does
    after its write (so the engine trims its in-flight lists as in production)."""

    def __init__(self, counter: Counter, proxy: EngineProxy, client_id: str) -> None:
        self.counter = counter
        self.proxy = proxy
        self.client_id = client_id

    def push(self, messages: Any) -> None:
        self.counter.count += len(messages)
        self.proxy.delivered(self.client_id, len(messages))

    def close(self) -> None:
        pass


async def worker_main(url: str, namespace: str, args: argparse.Namespace, out: Any) -> None:
    spec: dict[str, Any] = {
        "url": url,
        "namespace": namespace,
        "log_level": "error",
        "gc_interval": None,
    }
    if args.partitions:
        spec["partitions"] = args.partitions
    holder = EngineProxy(RedisEngine.create, spec, timeout=60)
    publisher = EngineProxy(RedisEngine.create, spec, timeout=60)
    await holder.start()
    await publisher.start()
    counter = Counter()
    tag = uuid.uuid4().hex[:6]
    channels: list[str] = []
    keys = engine_of(holder).keys
    names = (f"/p2p/{tag}/{n}" for n in itertools.count())
    if args.homes is not None:  # only channels homed in these partitions
        names = (name for name in names if keys.home(name) in args.homes)
    for _ in range(args.subscribers):
        client_id = await holder.create_client()
        channel = f"/fan/{tag}" if args.fanout else next(names)
        await holder.subscribe(client_id, channel)
        holder.open_socket(client_id, Socket(counter, holder, client_id))
        await holder.backend.empty_queue(client_id)
        if channel not in channels:
            channels.append(channel)
    out.put(("ready", 0))
    await asyncio.sleep(0.5 + IDLE_SECONDS)
    published = 0
    deadline = time.monotonic() + args.seconds
    start_count = counter.count
    started = time.monotonic()

    async def lane() -> None:
        nonlocal published
        while time.monotonic() < deadline:
            await publisher.publish({"channel": random.choice(channels), "data": "x" * 64})
            published += 1

    await asyncio.gather(*(lane() for _ in range(args.window)))
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)
    out.put(("result", (published, counter.count - start_count, elapsed)))
    await publisher.close()
    await holder.close()


def worker(url: str, namespace: str, args: argparse.Namespace, out: Any) -> None:
    asyncio.run(worker_main(url, namespace, args, out))


def cpu(port: int) -> float:
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run(label: str, url: str, masters: list[int], args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    procs = [
        ctx.Process(target=worker, args=(url, namespace, args, out)) for _ in range(args.workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        assert out.get(timeout=120)[0] == "ready"
    idle_start = {port: cpu(port) for port in masters}
    time.sleep(IDLE_SECONDS)  # the workers wait 0.5 s + this before publishing
    idle = {port: (cpu(port) - idle_start[port]) / IDLE_SECONDS for port in masters}
    before = {port: cpu(port) for port in masters}
    if args.commandstats:
        for port in masters:
            redis.Redis(host="127.0.0.1", port=port).config_resetstat()
    results = [out.get(timeout=args.seconds + 60)[1] for _ in procs]
    after = {port: cpu(port) for port in masters}
    stats = command_stats(masters) if args.commandstats else {}
    for p in procs:
        p.join(30)
    published = sum(r[0] for r in results)
    delivered = sum(r[1] for r in results)
    elapsed = max(r[2] for r in results)
    busy = {port: (after[port] - before[port]) / elapsed for port in masters}
    net = {port: max(busy[port] - idle[port], 0.0) for port in masters}
    row = {
        "setup": label,
        "published/s": published / elapsed,
        "delivered/s": delivered / elapsed,
        "redis CPU per master": " ".join(f"{100 * b:.0f}%" for b in busy.values()),
        # Redis CPU (all masters together) per delivery, and what one fully busy
        # master would deliver at that cost.
        "idle CPU per master": " ".join(f"{100 * i:.1f}%" for i in idle.values()),
        "Redis CPU us/delivery": 1e6 * sum(busy.values()) * elapsed / max(delivered, 1),
        "net us/delivery": 1e6 * sum(net.values()) * elapsed / max(delivered, 1),
        "deliveries/s per saturated master": delivered / max(sum(busy.values()) * elapsed, 1e-9),
        "net deliveries/s per saturated master": delivered / max(sum(net.values()) * elapsed, 1e-9),
    }
    for name, (calls, usec) in sorted(stats.items(), key=lambda kv: -kv[1][1])[:10]:
        per = max(delivered, 1)
        row[f"  {name}"] = f"{calls / per:.2f} calls, {usec / per:.1f} us per delivery"
    return row


def command_stats(masters: list[int]) -> dict[str, tuple[int, int]]:
    """INFO commandstats summed over the masters: command -> (calls, usec)."""
    total: dict[str, tuple[int, int]] = {}
    for port in masters:
        client = redis.Redis(host="127.0.0.1", port=port)
        try:
            for name, stat in client.info("commandstats").items():
                calls, usec = total.get(name, (0, 0))
                total[name] = (calls + int(stat["calls"]), usec + int(stat["usec"]))
        finally:
            client.close()
    return total


#: Scripts timed by --command-cost: a script's own overhead, then 10 calls of a read,
#: a write, and a key created and deleted, run inside it.
COST_SCRIPTS = {
    "empty script": "return 1",
    "10 x ZSCORE": "for i = 1, 10 do redis.call('ZSCORE', KEYS[1], 'a') end return 1",
    "10 x PEXPIRE": "for i = 1, 10 do redis.call('PEXPIRE', KEYS[1], 100000) end return 1",
    # A delivery creates and deletes keys (a queue, its in-flight list): cluster mode
    # keeps an index of the keys of every slot up to date on each.
    "10 x RPUSH+DEL": "for i = 1, 10 do redis.call('RPUSH', KEYS[1] .. i, 'x') "
    "redis.call('DEL', KEYS[1] .. i) end return 1",
    # 10 deliveries with their acknowledgement, as the engine's scripts ran them before
    # the queue header (the queue renamed into an in-flight list, emptied by the ack)...
    "10 x delivery, renamed queue": "for i = 1, 10 do local q, f = KEYS[1] .. 'q' .. i, "
    "KEYS[1] .. 'f' .. i redis.call('RPUSH', q, '{}') redis.call('PEXPIRE', q, 100000) "
    "redis.call('HGET', KEYS[1] .. 'o', i) redis.call('RENAMENX', q, f) "
    "redis.call('SADD', KEYS[1] .. 's' .. i, 'me') redis.call('SADD', KEYS[1] .. 'm', i) "
    "redis.call('LRANGE', f, 0, -1) redis.call('LTRIM', f, 1, -1) end return 1",
    # ... and now: the queue stays, its header counts the messages in flight.
    "10 x delivery, queue header": "for i = 1, 10 do local q = KEYS[1] .. 'h' .. i "
    "if redis.call('EXISTS', q) == 0 then redis.call('RPUSH', q, '|me|0') end "
    "redis.call('RPUSH', q, '{}') redis.call('PEXPIRE', q, 100000) "
    "redis.call('LRANGE', q, 0, -1) redis.call('LSET', q, 1, '|me|0') "
    "redis.call('LTRIM', q, 1, -1) end return 1",
}


def command_cost() -> None:
    """Microseconds per script call on a plain redis-server and on a one-node Cluster
    (every slot on it) on this machine: Redis's own price for cluster mode."""
    plain = RedisServer().start()
    node = RedisServer(
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", port=cluster_port()
    ).start()
    try:
        clustered = redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True)
        clustered.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while clustered.cluster("info")["cluster_state"] != "ok":
            if time.monotonic() > deadline:
                raise RuntimeError("the one-node cluster did not come up")
            time.sleep(0.1)
        clients = {
            "plain": redis.Redis(host="127.0.0.1", port=plain.port),
            "cluster": redis.Redis(host="127.0.0.1", port=node.port),
        }
        for name, source in COST_SCRIPTS.items():
            best = {label: float("inf") for label in clients}
            for _ in range(7):  # rounds of 2000 calls, alternating, the best of each
                for label, client in clients.items():
                    client.zadd("{z}", {"a": 1})
                    sha = client.script_load(source)
                    client.config_resetstat()
                    for _ in range(2000):  # keys named after "{z}": one slot, like ours
                        client.evalsha(sha, 1, "{z}")
                    stat = client.info("commandstats")["cmdstat_evalsha"]
                    best[label] = min(best[label], float(stat["usec_per_call"]))
            ratio = best["cluster"] / best["plain"]
            print(
                f"{name:16s} plain {best['plain']:6.2f} us, cluster mode "
                f"{best['cluster']:6.2f} us per call ({ratio:.2f}x)"
            )
        engine = load_engine_code(clients)
        engine_code_cost(clients, engine)
        engine_delivery_cost(clients, engine)
        for client in clients.values():
            client.close()
        clustered.close()
    finally:
        plain.cleanup()
        node.cleanup()


def load_engine_code(clients: dict[str, redis.Redis]) -> dict[str, Library]:
    """The engine's function library on each server, as the engine loads it there."""
    engine = {}
    for label, client in clients.items():
        engine[label] = library(sharded=label == "cluster")
        client.function_load(engine[label].source, replace=True)
    return engine


def engine_code_cost(clients: dict[str, redis.Redis], engine: dict[str, Library]) -> None:
    """The engine's deliveries entry point with no operation in the batch, as a script
    (EVALSHA) and as a library function (FCALL): the fixed price of one call."""
    for label, client in clients.items():
        script = engine[label].scripts["deliveries"]
        client.script_load(script.source)
        args = ["{z}:", "me", int(time.time() * 1000), 0, 0, 60000]
        best = {"EVALSHA": float("inf"), "FCALL": float("inf")}
        for _ in range(7):
            for command, head in (("EVALSHA", script.sha), ("FCALL", script.function)):
                client.config_resetstat()
                for _ in range(2000):
                    client.execute_command(command, head, 1, "{z}:clients", *args)
                stat = client.info("commandstats")[f"cmdstat_{command.lower()}"]
                best[command] = min(best[command], float(stat["usec_per_call"]))
        print(
            f"engine deliveries, no operation, {label}: script {best['EVALSHA']:.2f} us, "
            f"function {best['FCALL']:.2f} us per call"
        )


def engine_delivery_cost(
    clients: dict[str, redis.Redis], engine: dict[str, Library], fanout: int = 10
) -> None:
    """The engine's own functions delivering messages: a publish to ``fanout``
    subscribers held by this server, then one deliveries call handing each its message
    and acknowledging the previous one. The same code, keys and data on a plain server
    and on a one-node Cluster: what cluster mode itself adds to a delivery."""
    prefix = "bench:{0}:"
    cids = [f"c{n}" for n in range(fanout)]
    drains = "#" + "\n".join(f"W0+1:{cid}" for cid in cids)
    functions = {}
    for label, client in clients.items():
        scripts = engine[label].scripts
        functions[label] = (scripts["publish"].function, scripts["deliveries"].function)
        client.delete(*(f"{prefix}{k}" for k in ("chan:/c", "owner")))
        client.sadd(f"{prefix}chan:/c", *cids)
        client.hset(f"{prefix}owner", mapping=dict.fromkeys(cids, "me"))
    best = {label: float("inf") for label in clients}
    for _ in range(9):  # alternating rounds, the best of each
        for label, client in clients.items():
            publish, deliveries = functions[label]
            client.config_resetstat()
            for _ in range(500):
                now = int(time.time() * 1000)
                client.fcall(
                    publish, 1, f"{prefix}clients", prefix, "me", 0, 0, 1000, 60000, "0",
                    "", 0, "M", '{"data":1}', 1, "/c",
                )  # fmt: skip
                client.fcall(
                    deliveries, 1, f"{prefix}clients", prefix, "me", now, 0, 0, 60000, drains
                )
            stat = client.info("commandstats")["cmdstat_fcall"]
            best[label] = min(best[label], float(stat["usec"]) / (500 * fanout))
    print(
        f"engine delivery ({fanout} subscribers per publish, drained and acknowledged): "
        f"plain {best['plain']:.2f} us, cluster mode {best['cluster']:.2f} us per delivery "
        f"({best['cluster'] / best['plain']:.2f}x)"
    )


def memory(args: argparse.Namespace) -> None:
    """Redis memory per client and per subscription, on one Redis or (``--only
    cluster``) summed over the masters of a Cluster."""
    if args.only == "cluster":
        cluster = ClusterTopology(replicas_per_master=0).start()
        try:
            asyncio.run(_memory(cluster.url, [n.port for n in cluster.masters()], args))
        finally:
            cluster.cleanup()
        return
    server = RedisServer().start()
    try:
        asyncio.run(_memory(server.url, [server.port], args))
    finally:
        server.cleanup()


async def _memory(url: str, ports: list[int], args: argparse.Namespace) -> None:
    nodes = [redis.Redis(host="127.0.0.1", port=port) for port in ports]

    def used() -> int:
        return sum(int(node.info("memory")["used_memory"]) for node in nodes)

    spec = {"url": url, "namespace": "mem", "log_level": "error", "gc_interval": None}
    proxy = EngineProxy(RedisEngine.create, spec, timeout=60)
    await proxy.start()
    n = args.memory_clients
    base = used()
    ids = [await proxy.create_client() for _ in range(n)]
    clients_mem = used()
    for cid in ids:
        await proxy.subscribe(cid, f"/own/{cid}")
    own_mem = used()
    for cid in ids:
        await proxy.subscribe(cid, "/shared/all")
    shared_mem = used()
    for cid in ids:
        await proxy.backend.connect(cid)  # owner entries (what a /meta/connect adds)
    owner_mem = used()
    print(f"{n} clients: {(clients_mem - base) / n:.0f} B per client (liveness zset entry)")
    print(f"own channel each: {(own_mem - clients_mem) / n:.0f} B per subscription")
    print(f"one shared channel: {(shared_mem - own_mem) / n:.0f} B per subscription")
    print(f"after a connect: +{(owner_mem - shared_mem) / n:.0f} B per client (owner entries)")
    await proxy.close()
    for node in nodes:
        node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument(
        "--fanout", action="store_true", help="every subscriber on one channel (not one each)"
    )
    parser.add_argument("--memory", action="store_true")
    parser.add_argument(
        "--command-cost", action="store_true", help="script call costs, plain vs cluster mode"
    )
    parser.add_argument("--memory-clients", type=int, default=10000)
    parser.add_argument("--only", choices=["single", "sentinel", "cluster"])
    parser.add_argument("--replicas", type=int, default=1, help="per Cluster master")
    parser.add_argument(
        "--one-master",
        action="store_true",
        help="Cluster: only channels homed on one master, which then takes the whole load",
    )
    parser.add_argument("--partitions", type=int, help="the engine's option (default: its own)")
    parser.add_argument(
        "--commandstats", action="store_true", help="Redis commands per delivery (INFO)"
    )
    args = parser.parse_args()
    args.homes = None
    if args.memory:
        memory(args)
        return
    if args.command_cost:
        command_cost()
        return
    rows = []
    if args.only in (None, "single"):
        server = RedisServer().start()
        try:
            rows.append(run("1 Redis", server.url, [server.port], args))
        finally:
            server.cleanup()
    if args.only in (None, "sentinel"):
        sentinel = SentinelTopology().start()
        try:
            rows.append(
                run("Sentinel, 1 master, 1 replica", sentinel.url, [sentinel.master.port], args)
            )
        finally:
            sentinel.cleanup()
    if args.only in (None, "cluster"):
        cluster = ClusterTopology(replicas_per_master=args.replicas).start()
        try:
            masters = [n.port for n in cluster.masters()]
            if args.one_master:
                # Every channel homed on the first master: it alone gets the whole load,
                # as the single Redis does.
                keys = Keys("bench", args.partitions or CLUSTER_PARTITIONS, balanced=True)
                args.homes = {
                    p
                    for p in range(keys.partitions)
                    if cluster.master_of_slot(key_slot(keys.clients(p).encode())).port == masters[0]
                }
            label = f"Cluster, 3 masters, {args.replicas} replica(s) each"
            if args.one_master:
                label += f", channels homed on one master ({len(args.homes)} partitions)"
            rows.append(run(label, cluster.url, masters, args))
        finally:
            cluster.cleanup()
    for row in rows:
        print(
            " | ".join(
                f"{k}: {v:.0f}" if isinstance(v, float) else f"{k}: {v}"
                for k, v in row.items()
                if not k.startswith("  ")
            )
        )
        for k, v in row.items():
            if k.startswith("  "):
                print(f"{k}: {v}")


if __name__ == "__main__":
    main()

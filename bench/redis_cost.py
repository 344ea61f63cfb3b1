"""``python -m bench redis-cost``: Redis's own price for cluster mode, per script call.

Times Lua scripts shaped like the engine's work (a read, a write, a key created and
deleted, a delivery with its acknowledgement) on a plain redis-server and on a
one-node Cluster that holds every slot, both private and on free ports, alternating
rounds of 2000 calls and keeping each side's best (``INFO commandstats``). Cluster mode
keeps an index of every slot's keys, which a script that creates and deletes keys pays.
"""

from __future__ import annotations

import argparse
import time

import redis

from tests.support.redis_cluster import cluster_port
from tests.support.redis_server import RedisServer

#: A script's own overhead, then 10 calls of a read, a write, a key made and deleted.
SCRIPTS = {
    "empty script": "return 1",
    "10 x ZSCORE": "for i = 1, 10 do redis.call('ZSCORE', KEYS[1], 'a') end return 1",
    "10 x PEXPIRE": "for i = 1, 10 do redis.call('PEXPIRE', KEYS[1], 100000) end return 1",
    "10 x RPUSH+DEL": "for i = 1, 10 do redis.call('RPUSH', KEYS[1] .. i, 'x') "
    "redis.call('DEL', KEYS[1] .. i) end return 1",
    # 10 deliveries with their acknowledgement: a queue renamed into an in-flight list...
    "10 x delivery, renamed queue": "for i = 1, 10 do local q, f = KEYS[1] .. 'q' .. i, "
    "KEYS[1] .. 'f' .. i redis.call('RPUSH', q, '{}') redis.call('PEXPIRE', q, 100000) "
    "redis.call('HGET', KEYS[1] .. 'o', i) redis.call('RENAMENX', q, f) "
    "redis.call('SADD', KEYS[1] .. 's' .. i, 'me') redis.call('SADD', KEYS[1] .. 'm', i) "
    "redis.call('LRANGE', f, 0, -1) redis.call('LTRIM', f, 1, -1) end return 1",
    # ... or a queue that stays, its header counting the messages in flight.
    "10 x delivery, queue header": "for i = 1, 10 do local q = KEYS[1] .. 'h' .. i "
    "if redis.call('EXISTS', q) == 0 then redis.call('RPUSH', q, '|me|0') end "
    "redis.call('RPUSH', q, '{}') redis.call('PEXPIRE', q, 100000) "
    "redis.call('LRANGE', q, 0, -1) redis.call('LSET', q, 1, '|me|0') "
    "redis.call('LTRIM', q, 1, -1) end return 1",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per script")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")


def main(args: argparse.Namespace) -> None:
    plain = RedisServer().start()
    node = RedisServer(
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", port=cluster_port()
    ).start()
    clients = {
        "plain": redis.Redis(host="127.0.0.1", port=plain.port, decode_responses=True),
        "cluster": redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True),
    }
    try:
        clients["cluster"].execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while clients["cluster"].cluster("info")["cluster_state"] != "ok":
            if time.monotonic() > deadline:
                raise RuntimeError("the one-node cluster did not come up")
            time.sleep(0.1)
        for name, source in SCRIPTS.items():
            best = dict.fromkeys(clients, float("inf"))
            for _ in range(args.rounds):
                for label, client in clients.items():
                    client.zadd("{z}", {"a": 1})
                    sha = client.script_load(source)
                    client.config_resetstat()
                    for _ in range(args.calls):  # keys named after "{z}": one slot
                        client.evalsha(sha, 1, "{z}")
                    stat = client.info("commandstats")["cmdstat_evalsha"]
                    best[label] = min(best[label], float(stat["usec_per_call"]))
            ratio = best["cluster"] / best["plain"]
            print(
                f"{name:30s} plain {best['plain']:6.2f} us, cluster mode "
                f"{best['cluster']:6.2f} us per call ({ratio:.2f}x)"
            )
    finally:
        for client in clients.values():
            client.close()
        plain.cleanup()
        node.cleanup()

"""Where candidate C's publish spends Redis CPU, and what a log costs in memory.

    .venv/bin/python bench/designs/lua_cost.py

On a fresh redis-server (free loopback port): C's ``logroute_publish`` to 200
single-subscriber channels in calls of 1, 10 and 50 messages, then four bare functions
(return at once; RPUSH, XADD with an automatic id, XADD with an explicit id, in a loop)
and a pipelined XADD, 10 messages per call. Per message: Redis CPU (``INFO cpu``),
FCALL time and the time of the commands inside (``INFO commandstats``). Then
``MEMORY USAGE`` of a log of 1, 10, 100 and 1,000 such messages kept as a stream (C), a
list (C') and a sorted set.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import redis  # noqa: E402

from tests.support.redis_server import RedisServer  # noqa: E402

BARE = r"""#!lua name=bare
redis.register_function('empty', function(keys, args) return 1 end)
redis.register_function('rpush', function(keys, args)
  for i = 2, #args, 2 do redis.call('RPUSH', args[1] .. 'q:' .. args[i + 1], args[i]) end
  return 1
end)
redis.register_function('xadd_auto', function(keys, args)
  for i = 2, #args, 2 do
    redis.call('XADD', args[1] .. 'log:' .. args[i + 1], 'MAXLEN', '~', 1000, '*', 'm', args[i])
  end
  return 1
end)
redis.register_function('xadd_explicit', function(keys, args)
  local t = redis.call('TIME')
  local seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
  for i = 2, #args, 2 do
    seq = seq + 1
    redis.call('XADD', args[1] .. 'log:' .. args[i + 1], 'MAXLEN', '~', 1000,
      string.format('%d-0', seq), 'm', args[i])
  end
  return 1
end)
"""
MESSAGE = '{"channel":"/p/1","data":{"text":"hello world, a message of about 100 bytes"},"id":"1"}'
PREFIX = "bench:{0}:"
MESSAGES = 10_000


def cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(r: redis.Redis, label: str, call: Callable[[int], None], batch: int) -> None:
    r.config_resetstat()
    before = cpu(r)
    for step in range(MESSAGES // batch):
        call(step)
    used = cpu(r) - before
    stats = r.info("commandstats")
    skip = ("cmdstat_fcall", "cmdstat_info", "cmdstat_config|resetstat")
    inner = sum(v["usec"] for k, v in stats.items() if k not in skip)
    fcall = stats.get("cmdstat_fcall", {"usec": 0})["usec"]
    print(
        f"{label:34s} CPU {used / MESSAGES * 1e6:5.2f} us, FCALL {fcall / MESSAGES:5.2f} us, "
        f"commands inside {inner / MESSAGES:5.2f} us per message"
    )


def log_memory(r: redis.Redis) -> None:
    for n in (1, 10, 100, 1000):
        r.delete("s", "l", "z")
        for i in range(1, n + 1):
            r.xadd("s", {"m": MESSAGE}, id=f"{i}-0")
            r.rpush("l", f"{i} {MESSAGE}")
            r.zadd("z", {f"{i} {MESSAGE}": i})
        sizes = [int(r.memory_usage(k, samples=0) or 0) for k in ("s", "l", "z")]
        print(f"log of {n:4d}: stream {sizes[0]:6d} B, list {sizes[1]:6d} B, zset {sizes[2]:6d} B")
    r.xtrim("s", minid=f"{n + 1}-0")
    print(f"stream trimmed to 0 entries: {r.memory_usage('s', samples=0)} B")


def main() -> None:
    server = RedisServer().start()
    try:
        r = redis.Redis(host="127.0.0.1", port=server.port)
        r.function_load((HERE / "logroute.lua").read_text(), replace=True)
        r.function_load(BARE, replace=True)
        for i in range(200):
            r.hset(f"{PREFIX}route:/p/{i}", "A", 1)
            r.hset(PREFIX + "servers_of", f"/p/{i}", "A")
        r.sadd(PREFIX + "patterns", "/q/*")  # a pattern that matches nothing here

        def channels(step: int, batch: int) -> list[str]:
            return [f"/p/{(step * batch + k) % 200}" for k in range(batch)]

        for batch in (1, 10, 50):

            def publish(step: int, batch: int = batch) -> None:
                args: list[object] = [1000]
                for channel in channels(step, batch):
                    args += [MESSAGE, channel]
                r.fcall("logroute_publish", 1, PREFIX + "seq", PREFIX, *args)

            measure(r, f"C publish, {batch} per call", publish, batch)
        for name in ("empty", "rpush", "xadd_auto", "xadd_explicit"):

            def bare(step: int, name: str = name) -> None:
                args: list[object] = []
                for channel in channels(step, 10):
                    args += [MESSAGE, channel]
                r.fcall(name, 0, PREFIX, *args)

            measure(r, f"function {name}, 10 per call", bare, 10)

        def pipelined(step: int) -> None:
            pipe = r.pipeline(transaction=False)
            for channel in channels(step, 10):
                pipe.xadd(PREFIX + "raw:" + channel, {"m": MESSAGE}, maxlen=1000, approximate=True)
            pipe.execute()

        measure(r, "pipelined XADD, 10 per round trip", pipelined, 10)
        log_memory(r)
        r.close()
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()

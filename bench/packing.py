"""Encoding the engine's calls: redis-py's asyncio packer against hiredis's.

    python bench/packing.py

Times both on the calls a busy server makes most (a burst of 10 publishes, a delivery
batch of 10 wake-ups), in microseconds per call, and checks they give the same bytes.
"""

from __future__ import annotations

import timeit

from redis.asyncio.connection import Connection

from faye.redis.packing import PackedConnection

MESSAGE = '{"channel":"/bench/p2p/%d","data":"%s","id":"%d"}'
CALLS = {
    "publish burst of 10": (
        "FCALL", "faye_0123456789ab_publish", 1, "ns:{3}:clients", "ns:{3}:",
        "4242.0123456789ab", 1764300000000, 1764299990000, 1000, 3600000, "0",
        *(x for n in range(10) for x in ("M", MESSAGE % (n, "x" * 100, n), 1, f"/bench/p2p/{n}")),
    ),
    "delivery batch of 10": (
        "FCALL", "faye_0123456789ab_deliveries", 1, "ns:{3}:clients", "ns:{3}:",
        "4242.0123456789ab", 1764300000000, 1764299990000, 0, 3600000,
        "#" + "\n".join(f"W0+1:{n:032x}" for n in range(10)),
    ),
}  # fmt: skip


def main() -> None:
    python, hiredis = Connection(), PackedConnection()
    for name, call in CALLS.items():
        assert b"".join(python.pack_command(*call)) == b"".join(hiredis.pack_command(*call))
        times = []
        for packer in (python, hiredis):
            runs = timeit.repeat(lambda p=packer, c=call: p.pack_command(*c), number=5000, repeat=5)
            times.append(min(runs) / 5000 * 1e6)
        print(f"{name}: redis-py {times[0]:.2f} us, hiredis {times[1]:.2f} us per call")


if __name__ == "__main__":
    main()

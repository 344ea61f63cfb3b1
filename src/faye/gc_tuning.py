"""The cyclic garbage collector, tuned for a server that holds many long-lived objects.

Every connection keeps a few hundred container objects alive for hours, and every
delivery allocates a few short-lived ones. With CPython's default thresholds (700, 10,
10) the allocations of a fan-out trigger collections that walk all those long-lived
objects: at 5,000 deliveries/s over two servers they took 26 % more server CPU per
delivery and doubled p99 latency (``python -m bench compare --setups py-redis --only
fanout`` against the same with ``--serve-option=--gc-thresholds=python``, fanout-rate;
docs/benchmarks.md). Fewer, larger young collections and a frozen start-up heap keep
the collector's work proportional to the garbage.

Only the process owner should call this (``faye serve`` does); a library imported into
someone else's server must not change its collector.
"""

from __future__ import annotations

import gc

#: Young-generation threshold and the two older ones (CPython's default: 700, 10, 10).
SERVER_THRESHOLDS = (50_000, 20, 100)


def parse_thresholds(text: str) -> tuple[int, ...] | None:
    """``"50000,20,100"`` -> thresholds; ``"python"`` -> None (leave CPython's own)."""
    if text.strip().lower() == "python":
        return None
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or any(v < 0 for v in values):
        raise ValueError(f"expected 'python' or up to three counts like 50000,20,100: {text!r}")
    return values


def tune_for_server(thresholds: tuple[int, ...] | None = SERVER_THRESHOLDS) -> None:
    """Freeze what start-up allocated (never garbage) and set ``thresholds``."""
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)

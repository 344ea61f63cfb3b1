"""Pool the rounds of an interleaved run (``bench/run.py --rounds N``) into one row each.

This VM's speed drifts by 20-40 % within minutes, and a setup's phases run a minute or
more after another's: a ratio between two setups measured once mostly measures the
drift. Interleaved, each scenario runs for every setup in turn, in the order A B, then
B A, and so on, so that a drift that is steady over a few phases costs both alike; the
rows of one setup and scenario are then pooled: totals summed and the per-delivery
figures taken over the totals (the CPU of all rounds over their deliveries), latency
percentiles as the median of the rounds'. Each pooled row keeps its rounds' main
figures under ``rounds``.
"""

from __future__ import annotations

import statistics
from typing import Any

#: Counts summed over the rounds.
SUMMED = (
    "published",
    "publish_acks",
    "publish_failures",
    "expected",
    "delivered",
    "lost",
    "duplicated",
    "stale",
    "connect_failures",
    "rehandshakes",
    "span_s",
)

#: Per-1000-delivery costs: the rounds' total cost over their total deliveries.
PER_DELIVERY = (
    "server_cpu_s_per_1000",
    "generator_cpu_s_per_1000",
    "redis_cpu_s_per_1000",
    "redis_cpu_above_idle_s_per_1000",
    "redis_busiest_master_above_idle_s_per_1000",
    "replica_cpu_s_per_1000",
)

#: Per-publish figures, weighted by the publishes of each round.
PER_PUBLISH = ("redis_commands_per_publish", "redis_round_trips_per_publish")

#: What each pooled row keeps of its rounds.
SHOWN = ("deliveries_per_s", "server_cpu_s_per_1000", "redis_cpu_above_idle_s_per_1000")


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _weighted(rows: list[dict[str, Any]], field: str, weight: str) -> float | None:
    pairs = [(r[field], r[weight]) for r in rows if r.get(field) is not None and r.get(weight)]
    total = sum(w for _, w in pairs)
    if not pairs or not total:
        return None
    return round(sum(v * w for v, w in pairs) / total, 4)


def pool(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row standing for the rounds of one setup and scenario."""
    if len(rows) == 1:
        return rows[0]
    out = dict(rows[0])
    for field in SUMMED:
        if all(field in r for r in rows):
            out[field] = round(sum(r[field] for r in rows), 3)
    span = out.get("span_s") or 0
    out["deliveries_per_s"] = round(out["delivered"] / span, 1) if span else None
    for field in PER_DELIVERY:
        out[field] = _weighted(rows, field, "delivered")
        if out[field] is None:
            out.pop(field)
    cpu = out.get("server_cpu_s_per_1000")
    out["deliveries_per_server_cpu_s"] = round(1000 / cpu, 1) if cpu else None
    for field in PER_PUBLISH:
        if field in out:
            out[field] = _weighted(rows, field, "published")
    for field in ("latency_ms", "ack_latency_ms"):
        if all(isinstance(r.get(field), dict) for r in rows):
            out[field] = {
                k: _median([r[field][k] for r in rows if r[field].get(k) is not None])
                for k in rows[0][field]
            }
    out["rounds"] = [{k: r.get(k) for k in ("round", *SHOWN)} for r in rows]
    return out


def pool_rounds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in first-seen order, each (setup, scenario) pooled over its rounds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["setup"], row["scenario"]), []).append(row)
    return [pool(group) for group in groups.values()]

"""Tables and plots from a ``python -m bench compare`` result (its JSON file).

    python -m bench report RESULT.json [--plots DIR]

One table of ratios (this project / Node Faye, and / Node Faye + faye-redis) per
scenario, one table of the raw figures per setup, and PNG bar charts of the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.setups import PEERS, SETUPS

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]

#: (column, how to read it from a row, digits, lower is better)
FIGURES: list[tuple[str, Any, int, bool]] = [
    ("deliveries/s", lambda r: r.get("deliveries_per_s"), 0, False),
    ("p99 ms", lambda r: (r.get("latency_ms") or {}).get("p99"), 1, True),
    ("server CPU ms/delivery", lambda r: r.get("server_cpu_s_per_1000"), 3, True),
    ("Redis CPU ms/delivery", lambda r: r.get("redis_cpu_s_per_1000"), 3, True),
    ("cycles/s", lambda r: r.get("cycles_per_s"), 0, False),
    ("RSS KB/client", lambda r: r.get("rss_per_client_kb"), 1, True),
]


def _f(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float | int) else str(value)


def _ratio(ours: Any, theirs: Any) -> float | None:
    if not ours or not theirs:
        return None
    return float(ours) / float(theirs)


def scenarios(result: dict[str, Any]) -> list[str]:
    """The measured scenarios in the order first run (idle windows left out)."""
    seen: list[str] = []
    for row in result["rows"]:
        name = row["scenario"]
        if name not in seen and name != "idle" and not name.startswith("redis-idle"):
            seen.append(name)
    return seen


def measured(result: dict[str, Any]) -> list[str]:
    """The scenarios worth a ratio: smoke and redis-cost-N publish a few messages a
    second, whose CPU falls below the clock's 10 ms tick."""
    return [s for s in scenarios(result) if s != "smoke" and not s.startswith("redis-cost")]


def by_setup(result: dict[str, Any], scenario: str) -> dict[str, dict[str, Any]]:
    return {r["setup"]: r for r in result["rows"] if r["scenario"] == scenario}


def ratio_table(result: dict[str, Any]) -> list[str]:
    """Ours divided by the reference, per scenario and figure (1.00: the same)."""
    head = "| scenario | pair | " + " | ".join(name for name, *_ in FIGURES) + " |"
    lines = [head, "|---|---|" + "--:|" * len(FIGURES)]
    for scenario in measured(result):
        rows = by_setup(result, scenario)
        for ours, theirs in PEERS.items():
            if ours not in rows or theirs not in rows:
                continue
            cells = [_ratio(get(rows[ours]), get(rows[theirs])) for _, get, _, _ in FIGURES]
            if all(c is None for c in cells):
                continue
            shown = " | ".join(_f(c, 2) for c in cells)
            lines.append(f"| {scenario} | {ours} / {theirs} | {shown} |")
    return lines


def raw_table(result: dict[str, Any]) -> list[str]:
    head = "| scenario | setup | lost | " + " | ".join(name for name, *_ in FIGURES) + " |"
    lines = [head, "|---|---|--:|" + "--:|" * len(FIGURES)]
    for scenario in scenarios(result):
        for setup, row in by_setup(result, scenario).items():
            cells = " | ".join(_f(get(row), digits) for _, get, digits, _ in FIGURES)
            lines.append(f"| {scenario} | {setup} | {_f(row.get('lost'), 0)} | {cells} |")
    return lines


def redis_work_table(result: dict[str, Any]) -> list[str]:
    """Redis work per publish to N subscribers, the idle background subtracted."""
    lines = [
        "| scenario | setup | commands per publish | round trips per publish | most run |",
        "|---|---|--:|--:|---|",
    ]
    for scenario in [s for s in scenarios(result) if s.startswith("redis-cost")]:
        for setup, row in by_setup(result, scenario).items():
            net = row["redis_net"]
            top = sorted(row.get("calls_per_publish", {}).items(), key=lambda kv: -kv[1])[:3]
            most = ", ".join(f"{name} {count:g}" for name, count in top) or "-"
            lines.append(
                f"| {scenario} | {setup} | {net['commands_per_publish']:.1f} "
                f"| {net['round_trips_per_publish']:.1f} | {most} |"
            )
    return lines


def redis_time_table(result: dict[str, Any]) -> list[str]:
    """Where Redis spends its time, per delivery: the commands it timed (those run
    inside functions and scripts included, which ``fcall`` and ``evalsha`` count again
    with the Lua work around them). Times are wall time inside each command."""
    lines = ["| scenario | setup | most time, µs per delivery |", "|---|---|---|"]
    for scenario in scenarios(result):
        for setup, row in by_setup(result, scenario).items():
            redis = row.get("usage", {}).get("redis", {})
            spent = redis.get("usec_by_command")
            delivered = row.get("delivered") or row.get("cycles")
            if not spent or not delivered:
                continue
            top = sorted(spent.items(), key=lambda kv: -kv[1])[:5]
            most = ", ".join(f"{name} {usec / delivered:.2f}" for name, usec in top)
            lines.append(f"| {scenario} | {setup} | {most} |")
    return lines


def scaling_table(result: dict[str, Any]) -> list[str]:
    """Deliveries a second one fully busy core gives, from the flat-out phases' CPU per
    delivery: a server process's core, and a Redis master's above its idle upkeep."""
    lines = [
        "| scenario | setup | per server core | per Redis core (above idle) | Redis idle CPU |",
        "|---|---|--:|--:|--:|",
    ]
    for scenario in [s for s in scenarios(result) if s.endswith("-flat")]:
        for setup, row in by_setup(result, scenario).items():
            server, redis = (
                row.get("server_cpu_s_per_1000"),
                row.get("redis_cpu_above_idle_s_per_1000"),
            )
            if not server or not redis or redis <= 0:
                continue
            idle = f"{100 * row['redis_idle_cpu_per_s']:.1f} %"
            lines.append(
                f"| {scenario} | {setup} | {1000 / server:,.0f} | {1000 / redis:,.0f} | {idle} |"
            )
    return lines


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    machine = meta["machine"]
    lines = [
        f"Command: `{meta['command']}` ({meta['profile']} profile, {meta['seconds']} s)",
        f"Machine: {machine['nproc']} CPUs, {machine['cpu_model']}, {machine['memory_gb']} GB;"
        f" {machine['busy_before']:.0%} busy before the run",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        "Ratios, this project / the Node reference (deliveries/s, cycles/s: higher is better"
        " for us; the rest: lower is better for us)",
        "",
        *ratio_table(result),
        "",
        "Figures",
        "",
        *raw_table(result),
        "",
        "Redis work per publish (one Redis, idle subtracted)",
        "",
        *redis_work_table(result),
        "",
        "Redis time by command (µs per delivery, or per churn cycle)",
        "",
        *redis_time_table(result),
        "",
        "Deliveries/s per fully busy core (flat-out phases)",
        "",
        *scaling_table(result),
    ]
    return "\n".join(lines)


def plots(result: dict[str, Any], directory: Path) -> list[Path]:
    """One bar chart per figure: each scenario, each setup (log scale where it spans)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    setups = [s for s in SETUPS if any(r["setup"] == s for r in result["rows"])]
    written = []
    for name, get, _, lower in FIGURES:
        shown = [s for s in measured(result) if any(get(r) for r in by_setup(result, s).values())]
        if not shown:
            continue
        fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(shown) + 2), 4))
        width = 0.8 / len(setups)
        for k, setup in enumerate(setups):
            values = [get(by_setup(result, s).get(setup, {})) or 0 for s in shown]
            xs = [i + (k - (len(setups) - 1) / 2) * width for i in range(len(shown))]
            ax.bar(xs, values, width, label=setup, color=COLORS[k % len(COLORS)])
        ax.set_xticks(range(len(shown)), shown, rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{name} ({'lower' if lower else 'higher'} is better)")
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        fig.text(0.01, 0.005, result["meta"]["command"], fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path = directory / f"{name.replace(' ', '-').replace('/', '-per-').lower()}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written

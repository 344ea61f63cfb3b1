"""``python -m bench compare``: this project side by side with Node Faye, one setup at a time.

Each setup (bench/setups.py) is started fresh, runs every scenario group asked for
(bench/scenarios.py), and is stopped; the idle clients get a fresh start of their own.
Results: a table on stdout, a JSON file with every figure and the machine, and PNG
plots (bench/report.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import measure, report
from bench.phases import Profiling, Runner, log
from bench.scenarios import PROFILES, Scenarios
from bench.setups import DEFAULT_SETUPS, NODE_MODULES, SETUPS, Options, Setup, start, versions

GROUPS = ["smoke", "fanout", "cost", "long_polling", "p2p", "churn", "idle"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    parser.add_argument("--setups", nargs="+", default=DEFAULT_SETUPS, choices=list(SETUPS))
    parser.add_argument("--only", nargs="+", default=GROUPS, choices=GROUPS, help="scenarios")
    parser.add_argument(
        "--engine-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="passed to our Redis setups' servers as faye serve --engine-option (repeatable)",
    )
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        metavar="ARG",
        help="one more faye serve argument for our servers, e.g. --serve-option="
        "--gc-thresholds=python (repeatable)",
    )
    parser.add_argument("--ws-compression", default="off", help="our servers' --ws-compression")
    parser.add_argument("--cluster-replicas", type=int, default=0, help="per Cluster master")
    parser.add_argument("--idle-counts", type=int, nargs="+", help="idle-N sizes")
    parser.add_argument("--sub-workers", type=int, default=2, help="subscriber processes")
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, generator on 1")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile our servers")
    parser.add_argument("--py-spy-rate", type=int, default=100, metavar="HZ")
    parser.add_argument("--out", type=Path, help="JSON file (default: a temporary file)")
    parser.add_argument("--plots", type=Path, help="directory for the PNG plots")


def run_setup(
    setup: Setup, groups: list[str], scenarios: Scenarios, options: Options, logs: Path
) -> None:
    log(f"{setup.name}: {setup.label}")
    steps: dict[str, Callable[[Any], None]] = {
        "smoke": scenarios.smoke,
        "fanout": scenarios.fanout,
        "cost": scenarios.cost,
        "long_polling": scenarios.long_polling,
        "p2p": scenarios.p2p,
        "churn": scenarios.churn,
    }
    wanted = [steps[g] for g in groups if g in steps]
    if wanted:
        running = start(setup, logs, options)
        try:
            for step in wanted:
                step(running)
                if not running.alive():
                    raise RuntimeError(f"{setup.name}: a server process died")
        finally:
            running.stop()
    if "idle" in groups:
        running = start(setup, logs, options)
        try:
            scenarios.idle(running)
        finally:
            running.stop()


def main(args: argparse.Namespace) -> None:
    if (
        any(SETUPS[s].runtime == "node" for s in args.setups)
        and not (NODE_MODULES / "faye").exists()
    ):
        sys.exit("bench/node/node_modules is missing: run `bash bench/install.sh` first")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    profile = dict(PROFILES["quick" if args.quick else "full"])
    if args.idle_counts:
        profile["idle_counts"] = sorted(args.idle_counts)
    pin = args.pin and (os.cpu_count() or 1) >= 2
    options = Options(args.engine_option, args.serve_option, args.ws_compression)
    options.cluster_replicas = args.cluster_replicas
    options.cpus = {0} if pin else None
    profiling = Profiling(args.py_spy, args.py_spy_rate) if args.py_spy else None
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    busy = measure.machine_busy(2.0)
    if busy > 0.15:
        log(f"warning: the machine was {busy:.0%} busy before the run (other work)")
    meta: dict[str, Any] = {
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "profile": "quick" if args.quick else "full",
        "settings": profile,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": measure.machine() | {"busy_before": busy},
        "versions": versions(),
        "engine_options": args.engine_option,
        "serve_options": args.serve_option,
        "ws_compression": args.ws_compression,
        "pinning": "servers and Redis on CPU 0, generator on CPU 1" if pin else "none",
        "cluster_replicas": args.cluster_replicas,
        "server_logs": str(logs),
    }
    runner = Runner(args.sub_workers, 1 if pin else None, profiling)
    scenarios = Scenarios(runner, profile)
    started = time.monotonic()
    errors: list[str] = []
    try:
        for name in args.setups:
            try:
                run_setup(SETUPS[name], args.only, scenarios, options, logs)
            except Exception as exc:
                errors.append(f"{name}: {exc}")
                log(f"{name} FAILED: {exc}\n{traceback.format_exc()}")
                runner.reset()
    finally:
        runner.pool.stop()
    meta |= {"seconds": round(time.monotonic() - started, 1), "errors": errors}
    result = {"meta": meta, "rows": runner.rows}
    out = args.out or Path(tempfile.mkstemp(prefix="bench-", suffix=".json")[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(report.render(result))
    print(f"\nJSON: {out}")
    for path in report.plots(result, args.plots or out.with_suffix("")):
        print(f"Plot: {path}")
    if errors:
        sys.exit("ERRORS:\n" + "\n".join(errors))

"""Redis faults under load, as an operator meets them: the figures of docs/redis.md.

Two servers share one private redis-server behind a round-robin TCP balancer; stock npm
``faye`` 1.4 clients subscribe through it (WebSocket or long-polling); a publisher sends
numbered messages at a steady rate to the servers in turn; mid-stream a fault strikes.
For each fault and transport: publishes answered with an error, acknowledged publishes
some subscriber never received, the time until every subscriber receives again, and
duplicates (tests/support/faults.py has the definitions).

    python -m bench faults                      # this project
    python -m bench faults --runtime node       # Node Faye + faye-redis (bash bench/install.sh)

Each run takes ``before + after + settle`` seconds plus start-up (about 35 s with the
defaults: 16 runs for both runtimes).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.support.faults import (
    Fault,
    Figures,
    KillServer,
    RestartRedis,
    Scenario,
    StallRedis,
)
from tests.support.redis_server import RedisServer

FAULTS: dict[str, tuple[str, Callable[[], Fault], bool]] = {
    "kill": ("kill -9 one server", KillServer, False),
    "stall": ("Redis stopped (SIGSTOP) for 5 s", lambda: StallRedis(5), False),
    "restart": (
        "Redis restarted without its data, 3 s down",
        lambda: RestartRedis(3, persistent=False),
        False,
    ),
    "restart-persistent": (
        "Redis restarted with its data (AOF), 3 s down",
        lambda: RestartRedis(3, persistent=True),
        True,
    ),
}


def run_one(args: argparse.Namespace, runtime: str, fault_name: str, transport: str) -> Figures:
    _, make, persistent = FAULTS[fault_name]
    extra = ("--appendonly", "yes", "--appendfsync", "always") if persistent else ()
    redis = RedisServer(*extra).start()
    try:
        scenario = Scenario(
            redis,
            transport,
            Path(tempfile.mkdtemp(prefix=f"faults-{runtime}-{fault_name}-")),
            subscribers=args.subscribers,
            rate=args.rate,
            before=args.before,
            after=args.after,
            settle=args.settle_kill if fault_name == "kill" else args.settle,
            timeout=args.timeout,
            runtime=runtime,
            engine_options={"layout": args.layout} if args.layout else {},
        )
        return scenario.run(make())
    finally:
        redis.cleanup()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", nargs="+", default=["python"], choices=["python", "node"])
    parser.add_argument("--fault", nargs="+", default=list(FAULTS), choices=list(FAULTS))
    parser.add_argument("--transport", nargs="+", default=["websocket", "long-polling"])
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--before", type=float, default=7.0)
    parser.add_argument("--after", type=float, default=13.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--settle-kill", type=float, default=10.0)
    # Short holds, so that every client's connects cross every fault (the servers'
    # default is 25 s, which a 20 s run would hardly see renewed).
    parser.add_argument("--timeout", type=float, default=5.0, help="the servers' --timeout")
    parser.add_argument(
        "--layout", type=int, choices=[1, 2], help="our servers' Redis layout (default: theirs)"
    )


def main(args: argparse.Namespace) -> None:
    print("| fault | runtime | transport | lost | failed | time to receive again | duplicates |")
    print("|---|---|---|---|---|---|---|")
    for fault_name in args.fault:
        for runtime in args.runtime:
            for transport in args.transport:
                figures = run_one(args, runtime, fault_name, transport)
                recovery = (
                    "never" if figures.recovery == float("inf") else f"{figures.recovery:.1f} s"
                )
                lost = str(figures.lost)
                if figures.crashed:
                    lost += f" (+{figures.crashed} queued in Redis when it died)"
                print(
                    f"| {FAULTS[fault_name][0]} | {runtime} | {transport} | {lost} | "
                    f"{figures.failed} of {figures.accepted + figures.failed} | {recovery} | "
                    f"{figures.duplicates} |",
                    flush=True,
                )

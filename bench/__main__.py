"""The benchmark's one entry point; run it from the repository root.

    bash bench/install.sh                  # once: npm faye 1.4.3, faye-redis 0.2.0
    python -m bench compare                # ours against Node Faye, every scenario
    python -m bench compare --quick        # the same scenarios, smaller
    python -m bench report RESULT.json     # the tables and plots of a saved run
    python -m bench faults                 # Redis faults under load (docs/redis.md)
    python -m bench redis-cost             # Redis's own price for cluster mode
    python -m bench publisher              # Publisher / SyncPublisher call times
    python -m bench deflate                # permessage-deflate's cost per message
    python -m bench calls                  # CPU per Redis command: redis-py, client calls
    python -m bench memory                 # where an idle client's memory goes
    python -m bench profiles FILES         # summarise py-spy profiles of a compare run
    python -m bench soak                   # 10 minutes of churn: does memory come back?

``python -m bench <command> --help`` lists each command's options. Every server and
every Redis is private and started on a free 127.0.0.1 port; 6379 is never touched.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import compare, faults, memprofile, micro, profiles, redis_cost, report, soak


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {module: (module.__doc__ or "").split("\n")[0] for module in (compare, redis_cost)}
    compare.add_arguments(commands.add_parser("compare", help=helps[compare]))
    shown = commands.add_parser("report", help="tables and plots of a saved compare run")
    shown.add_argument("result", type=Path)
    shown.add_argument("--plots", type=Path, help="directory for the PNG plots")
    faults.add_arguments(commands.add_parser("faults", help="Redis faults under load"))
    redis_cost.add_arguments(commands.add_parser("redis-cost", help=helps[redis_cost]))
    micro.add_arguments(commands.add_parser("publisher", help="publish call times"), "publisher")
    micro.add_arguments(commands.add_parser("deflate", help="deflate cost"), "deflate")
    micro.add_arguments(commands.add_parser("calls", help="CPU per Redis call"), "calls")
    memprofile.add_arguments(commands.add_parser("memory", help="idle client memory"))
    profiles.add_arguments(commands.add_parser("profiles", help="summarise py-spy files"))
    soak.add_arguments(commands.add_parser("soak", help="churn for minutes; memory after"))
    args = parser.parse_args()
    if args.command == "report":
        result = json.loads(args.result.read_text())
        print(report.render(result))
        for path in report.plots(result, args.plots) if args.plots else []:
            print(f"Plot: {path}")
        return
    runs = {
        "compare": compare.main,
        "faults": faults.main,
        "redis-cost": redis_cost.main,
        "publisher": micro.main,
        "deflate": micro.main,
        "calls": micro.main,
        "memory": memprofile.main,
        "profiles": profiles.main,
        "soak": soak.main,
    }
    runs[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

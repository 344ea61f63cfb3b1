"""Where the time goes: summarise py-spy raw profiles (collapsed stacks).

    python -m bench compare --setups py-redis --py-spy /tmp/prof   # record, per scenario
    python -m bench profiles /tmp/prof/py-redis-p2p-flat-*.txt     # summarise

Prints the share of samples per function by self time (the frame on top of the
stack) and by inclusive time (anywhere on the stack), and self time per package.
Line numbers are dropped so that one function is one row.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match.group('file')}:{match.group('func')}"


def package(name: str) -> str:
    path = name.split(":", 1)[0]
    if path.startswith("<frozen"):
        return "python (runpy)"
    parts = path.split("/")
    if parts[0] == "faye" and len(parts) > 1:
        return "faye/" + (parts[1] if len(parts) > 2 else parts[1].removesuffix(".py"))
    return parts[0].removesuffix(".py")


def summarise(paths: list[Path]) -> dict[str, Counter[str]]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [frame_name(f) for f in stack.split(";") if f]
            if not frames:
                continue
            total += count
            own[frames[-1]] += count
            packages[package(frames[-1])] += count
            for name in set(frames):
                inclusive[name] += count
    return {
        "self": own,
        "inclusive": inclusive,
        "packages": packages,
        "total": Counter({"samples": total}),
    }


def render(summary: dict[str, Counter[str]], top: int = 25) -> str:
    total = summary["total"]["samples"] or 1
    lines = [f"{summary['total']['samples']} samples"]
    for title, key in (
        ("self time by package", "packages"),
        ("self time by function", "self"),
        ("inclusive time by function", "inclusive"),
    ):
        lines += ["", f"{title}:"]
        for name, count in summary[key].most_common(top):
            lines.append(f"  {100 * count / total:5.1f}%  {name}")
    ours = Counter(
        {k: v for k, v in summary["inclusive"].items() if k.startswith("faye/")}
    ).most_common(top)
    lines += ["", "this project's functions, inclusive (self) time:"]
    for name, count in ours:
        own = summary["self"].get(name, 0)
        lines.append(f"  {100 * count / total:5.1f}% ({100 * own / total:4.1f}%)  {name}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="py-spy raw files")
    parser.add_argument("--top", type=int, default=25)


def main(args: argparse.Namespace) -> None:
    print(render(summarise(args.paths), args.top))

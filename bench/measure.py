"""What /proc and Redis say about the processes under test.

CPU comes from each process's own scheduler time (``/proc/<pid>/stat``), and a Redis's
work from ``INFO`` deltas, our own INFO and QUIT taken out: commands (those run inside
Lua included), round trips (reads) and calls per command (commandstats).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (threads included, children not)."""
    try:
        fields = _stat(pid)
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def all_process_cpu() -> dict[tuple[int, int], float]:
    """(pid, start time) -> CPU seconds, for every process: who else used the machine."""
    result: dict[tuple[int, int], float] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = _stat(entry.name)
                cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
                result[(int(entry.name), int(fields[19]))] = cpu
    return result


def cpu_between(before: dict[tuple[int, int], float], after: dict[tuple[int, int], float]) -> float:
    return sum(cpu - before.get(key, 0.0) for key, cpu in after.items())


def top_others(
    before: dict[tuple[int, int], float], after: dict[tuple[int, int], float], ours: set[int]
) -> list[tuple[str, float]]:
    """The three processes outside the benchmark that used the most CPU in between."""
    deltas = []
    for key, cpu in after.items():
        delta = cpu - before.get(key, 0.0)
        if key[0] in ours or delta < 0.05:
            continue
        try:
            name = Path(f"/proc/{key[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            name = "(exited)"
        deltas.append((name.strip()[:80], round(delta, 2)))
    return sorted(deltas, key=lambda d: -d[1])[:3]


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def machine_busy(seconds: float) -> float:
    """The share of all CPUs busy over the next ``seconds`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values[:8]) - values[3] - values[4], sum(values[:8])

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return round((busy1 - busy0) / max(total1 - total0, 1), 3)


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


# -- Redis ------------------------------------------------------------------------------


def redis_info(port: int) -> dict[str, Any]:
    """INFO everything over a raw socket: one command, one read, subtracted later."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"*2\r\n$4\r\nINFO\r\n$10\r\neverything\r\n")
        data = b""
        for _ in range(100_000):
            chunk = sock.recv(1 << 16)
            data += chunk
            head, _, rest = data.partition(b"\r\n")
            if not chunk or (data.startswith(b"$") and len(rest) >= int(head[1:]) + 2):
                break
        sock.sendall(b"*1\r\n$4\r\nQUIT\r\n")
    info: dict[str, Any] = {"cmd": {}, "usec": {}}
    for line in data.partition(b"\r\n")[2].decode().splitlines():
        key, sep, value = line.partition(":")
        if not sep or key.startswith("#"):
            continue
        if key.startswith("cmdstat_"):
            calls = re.search(r"calls=(\d+)", value)
            info["cmd"][key[8:]] = int(calls.group(1)) if calls else 0
            usec = re.search(r"usec=(\d+)", value)
            info["usec"][key[8:]] = int(usec.group(1)) if usec else 0
        else:
            info[key] = value
    return info


#: INFO fields summed over a Cluster's masters.
SUMMED = (
    "total_commands_processed",
    "total_reads_processed",
    "total_connections_received",
    "connected_clients",
    "used_memory",
)


def redis_info_all(ports: list[int]) -> dict[str, Any]:
    """INFO of several nodes (a Cluster's masters), counters and commands summed."""
    merged: dict[str, Any] = {"cmd": Counter(), "usec": Counter(), "_nodes": len(ports)}
    for port in ports:
        info = redis_info(port)
        merged["cmd"].update(info["cmd"])
        merged["usec"].update(info["usec"])
        for key in SUMMED:
            merged[key] = int(merged.get(key, 0)) + int(info.get(key, 0))
    return merged


def redis_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What Redis did between two snapshots, less our own INFO and QUIT on each node."""
    nodes = int(after["_nodes"])

    def grew(key: str) -> int:
        return int(after.get(key, 0)) - int(before.get(key, 0))

    commands = {k: v - before["cmd"].get(k, 0) for k, v in after["cmd"].items()}
    for own in ("info", "quit"):
        commands[own] = commands.get(own, 0) - nodes
    return {
        "commands": grew("total_commands_processed") - 2 * nodes,
        "reads": grew("total_reads_processed") - 2 * nodes,
        "connections_opened": grew("total_connections_received") - nodes,
        "by_command": {k: v for k, v in commands.items() if v > 0},
        # Time Redis spent in each command, those run inside functions and scripts
        # included (fcall's own figure counts them again, with the script's overhead).
        "usec_by_command": {
            k: v - before["usec"].get(k, 0)
            for k, v in after["usec"].items()
            if v > before["usec"].get(k, 0)
        },
        "used_memory": int(after["used_memory"]),
    }

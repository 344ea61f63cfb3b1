"""What one idle WebSocket costs in uvicorn itself, with an ASGI app that does nothing.

    python bench/ws_baseline.py --clients 5000

The floor under any ASGI Bayeux server's memory per idle connection: it starts uvicorn
(websockets-sansio, as ``faye serve`` does) with a do-nothing app, opens N idle
WebSockets and prints the RSS growth per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from typing import Any

from websockets.asyncio.client import connect


async def idle_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0])


async def measure(port: int, pid: int, clients: int) -> float:
    url = f"ws://127.0.0.1:{port}/"
    warm = [await connect(url, compression=None) for _ in range(50)]
    for socket in warm:
        await socket.close()
    await asyncio.sleep(1)
    before = rss_kb(pid)
    sockets = [await connect(url, compression=None) for _ in range(clients)]
    await asyncio.sleep(2)
    after = rss_kb(pid)
    for socket in sockets:
        await socket.close()
    return (after - before) / clients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.serve:
        import uvicorn

        uvicorn.run(
            idle_app,
            port=args.port,
            ws="websockets-sansio",
            log_level="warning",
            ws_ping_interval=None,
            lifespan="off",
        )
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(args.port)])
    try:
        time.sleep(2)
        per_client = asyncio.run(measure(args.port, server.pid, args.clients))
        print(
            f"uvicorn websockets-sansio, do-nothing app: {per_client:.1f} KB RSS per idle "
            f"connection ({args.clients} connections)"
        )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()

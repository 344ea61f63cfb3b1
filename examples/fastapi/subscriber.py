"""Print what is published on a channel pattern, as JSON lines (a Python Faye client).

``python subscriber.py "/orders/**"`` (the Python client needs httpx).
"""

from __future__ import annotations

import asyncio
import json
import sys

import faye


async def main(pattern: str, url: str) -> None:
    client = faye.Client(faye.LongPollingTransport(url))
    await client.subscribe(pattern, lambda data: print(json.dumps(data), flush=True))
    print("READY", flush=True)
    await asyncio.Event().wait()  # until interrupted


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8000/faye")
    )

"""A chat room: one page, the official Faye browser client, and this server.

Run two of them on one Redis and a message typed on one page appears on every page,
whichever server it is connected to (see README.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import uvicorn

import faye
from faye.transport.uvicorn_websocket import FayeWebSocketProtocol

HERE = Path(__file__).resolve().parent
PAGE = (HERE / "index.html").read_bytes()
CLIENT_JS = HERE / "node_modules" / "faye" / "client" / "faye-browser-min.js"


async def page(scope: Any, receive: Any, send: Any) -> None:
    """Everything outside /faye: the chat page at /, 404 elsewhere."""
    if scope["type"] == "lifespan":  # the adapter starts and stops its engine meanwhile
        while True:
            event = (await receive())["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{event}.complete"})
            if event == "shutdown":
                return
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1000})
        return
    found = scope["path"] == "/"
    await send(
        {
            "type": "http.response.start",
            "status": 200 if found else 404,
            "headers": [(b"content-type", b"text/html; charset=utf-8" if found else b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": PAGE if found else b"not found"})


def create_app(redis_url: str | None, client_js: str | Path) -> faye.ASGIAdapter:
    """The Bayeux endpoint at /faye (its client at /faye/client.js), the page around it."""
    return faye.ASGIAdapter(
        mount="/faye",
        timeout=25,
        engine={"type": "redis", "url": redis_url, "namespace": "chat"} if redis_url else None,
        client_script=client_js,
        app=page,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--redis",
        default=os.environ.get("FAYE_REDIS_URL"),
        help="share the room with other servers through this Redis (default: alone, in memory)",
    )
    parser.add_argument(
        "--client-js",
        default=os.environ.get("FAYE_CLIENT_JS", str(CLIENT_JS)),
        help="faye-browser-min.js from npm's faye package",
    )
    args = parser.parse_args()
    app = create_app(args.redis, args.client_js)
    uvicorn.run(app, host=args.host, port=args.port, ws=FayeWebSocketProtocol, log_level="warning")


if __name__ == "__main__":
    main()

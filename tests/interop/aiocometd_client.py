#!/usr/bin/env python3
"""Interop harness client built on the PyPI ``aiocometd-noloop`` package.

Usage (same CLI/output contract as faye_client.js)::

    python aiocometd_client.py --url http://127.0.0.1:PORT/faye --mode subscribe \
        --channel '/x/*' --count 3 [--transport long-polling|websocket] [--timeout 20] \
        [--linger 0]
    python aiocometd_client.py --url http://127.0.0.1:PORT/faye --mode publish \
        --channel /x/y --count 3 --data '{"hello":"world"}' [--transport ...]

stdout: ``READY`` / ``{"channel":...,"data":...}`` lines / ``PUBLISHED``;
errors go to stderr with a non-zero exit status (3 on --timeout; 4 when a
message arrives during --linger seconds after the N expected ones).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiocometd_noloop import Client, ConnectionType
from aiocometd_noloop.extensions import Extension


def _err(msg: str) -> None:
    print(f"aiocometd_client.py: {msg}", file=sys.stderr, flush=True)


class FirstConnectNoWait(Extension):
    """Send ``advice: {timeout: 0}`` on the first /meta/connect.

    aiocometd's ``Client.open()`` awaits the reply to the first /meta/connect
    before returning.  Its connect message carries no ``advice``, so a Faye
    server treats it as an ordinary long-poll and holds it for the full server
    ``timeout`` (e.g. 10 s on the reference server, 45 s by default) before
    ``open()`` returns.  The Faye and CometD JS clients avoid this by sending
    ``advice.timeout = 0`` on their first connect; we do the same here.
    """

    def __init__(self) -> None:
        self._first = True

    async def outgoing(self, payload, headers):  # type: ignore[override]
        for message in payload:
            if self._first and message.get("channel") == "/meta/connect":
                message["advice"] = {"timeout": 0}
                self._first = False

    async def incoming(self, payload, headers=None):  # type: ignore[override]
        return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--url", required=True)
    p.add_argument("--mode", required=True, choices=["subscribe", "publish"])
    p.add_argument("--channel", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--transport", default="long-polling", choices=["long-polling", "websocket"])
    p.add_argument("--data", default="{}")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument(
        "--linger",
        type=float,
        default=0.0,
        help="after N messages keep listening this long; extra message -> exit 4",
    )
    p.add_argument(
        "--no-first-connect-fix",
        action="store_true",
        help="do not add advice.timeout=0 to the first /meta/connect",
    )
    ns = p.parse_args(argv)
    try:
        ns.data = json.loads(ns.data)
    except ValueError as exc:
        p.error(f"--data is not JSON: {exc}")
    if not isinstance(ns.data, dict):
        p.error("--data must be a JSON object")
    return ns


async def run(opts: argparse.Namespace) -> int:
    conn_type = ConnectionType(opts.transport)
    extensions = [] if opts.no_first_connect_fix else [FirstConnectNoWait()]
    client = Client(opts.url, [conn_type], extensions=extensions)
    await client.open()
    try:
        if client.connection_type is not conn_type:
            _err(f"negotiated {client.connection_type} != {conn_type}")
            return 1
        if opts.mode == "subscribe":
            await client.subscribe(opts.channel)
            _err(f"subscribed to {opts.channel} via {client.connection_type.value}")
            print("READY", flush=True)
            received = 0
            while received < opts.count:
                msg = await client.receive()
                if "data" not in msg:
                    continue
                received += 1
                print(json.dumps({"channel": msg["channel"], "data": msg["data"]}), flush=True)
            loop = asyncio.get_running_loop()
            until = loop.time() + opts.linger
            while (left := until - loop.time()) > 0:
                try:
                    msg = await asyncio.wait_for(client.receive(), left)
                except TimeoutError:
                    break
                if "data" in msg:
                    print(json.dumps({"channel": msg["channel"], "data": msg["data"]}), flush=True)
                    _err(f"unexpected extra message after {opts.count}")
                    return 4
        else:
            for i in range(opts.count):
                payload = dict(opts.data)
                payload["seq"] = i
                # publish() awaits the server's reply and raises ServerError
                # when it is not successful.
                await client.publish(opts.channel, payload)
            _err(f"published {opts.count} via {client.connection_type.value}")
            print("PUBLISHED", flush=True)
        return 0
    finally:
        try:
            await asyncio.wait_for(client.close(), 2)
        except Exception as exc:
            _err(f"close: {exc!r}")


def main() -> int:
    opts = parse_args(sys.argv[1:])

    async def guarded() -> int:
        # aiocometd's done-callbacks call future.result() on the connect /
        # receive tasks that close() cancels, so asyncio logs a CancelledError
        # traceback for each on every clean shutdown.  Drop just those.
        loop = asyncio.get_running_loop()

        def handler(lp: asyncio.AbstractEventLoop, ctx: dict) -> None:
            if isinstance(ctx.get("exception"), asyncio.CancelledError):
                return
            lp.default_exception_handler(ctx)

        loop.set_exception_handler(handler)
        try:
            return await asyncio.wait_for(run(opts), opts.timeout + opts.linger)
        except TimeoutError:
            _err(f"timeout after {opts.timeout}s (mode={opts.mode}, transport={opts.transport})")
            return 3

    try:
        return asyncio.run(guarded())
    except Exception as exc:
        _err(f"error: {exc!r}")
        return 1


if __name__ == "__main__":
    sys.exit(main())

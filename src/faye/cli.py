"""``faye serve``: run a Bayeux server on uvicorn (memory engine unless told otherwise)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from faye.gc_tuning import SERVER_THRESHOLDS, parse_thresholds
from faye.transport.uvicorn_websocket import COMPRESSION_SETTINGS

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _gc_thresholds(text: str) -> tuple[int, ...] | None:
    try:
        return parse_thresholds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faye", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the Bayeux server")
    serve.add_argument("--host", default=os.environ.get("FAYE_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("FAYE_PORT", "8000")))
    serve.add_argument("--mount", default=os.environ.get("FAYE_MOUNT", "/faye"))
    serve.add_argument(
        "--timeout",
        type=float,
        default=_env_float("FAYE_TIMEOUT", 25.0),
        help="seconds a /meta/connect is held (default 25)",
    )
    serve.add_argument(
        "--ping",
        type=float,
        default=_env_float("FAYE_PING", 0.0) or None,
        help="seconds between WebSocket pings and EventSource keep-alives",
    )
    serve.add_argument(
        "--redis",
        default=os.environ.get("FAYE_REDIS_URL"),
        help="redis:// or rediss:// URL of the Redis engine (default: memory engine)",
    )
    serve.add_argument("--namespace", default=os.environ.get("FAYE_NAMESPACE"))
    serve.add_argument(
        "--engine-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Redis engine option (gc_interval=30, pool_size=10, ...); VALUE is JSON or text",
    )
    serve.add_argument(
        "--client-script",
        default=os.environ.get("FAYE_CLIENT_JS"),
        help="path to faye-browser-min.js, served at <mount>/client.js",
    )
    serve.add_argument(
        "--max-request-size",
        type=int,
        default=int(os.environ.get("FAYE_MAX_REQUEST_SIZE", 1 << 20)),
    )
    serve.add_argument(
        "--gc-thresholds",
        default=os.environ.get("FAYE_GC_THRESHOLDS", ",".join(map(str, SERVER_THRESHOLDS))),
        type=_gc_thresholds,
        help="the cyclic GC's thresholds for this server process, or 'python' for "
        "CPython's defaults (see faye.gc_tuning)",
    )
    serve.add_argument(
        "--ws-compression",
        choices=COMPRESSION_SETTINGS,
        default=os.environ.get("FAYE_WS_COMPRESSION", "off"),
        help="what a WebSocket client's permessage-deflate offer gets (default off; "
        "'on' costs about 37 KB per connection, see docs/benchmarks.md)",
    )
    serve.add_argument(
        "--log-level", choices=LOG_LEVELS, default=os.environ.get("FAYE_LOG_LEVEL", "info")
    )
    gc = commands.add_parser("gc", help="collect expired clients once (for cron)")
    gc.add_argument("--redis", default=os.environ.get("FAYE_REDIS_URL"), required=False)
    gc.add_argument("--namespace", default=os.environ.get("FAYE_NAMESPACE"))
    gc.add_argument(
        "--timeout",
        type=float,
        default=_env_float("FAYE_TIMEOUT", 25.0),
        help="the servers' --timeout; clients idle for twice as long are collected",
    )
    return parser


def engine_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; VALUE is read as JSON when it is JSON (numbers, false, {...})."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--engine-option expects NAME=VALUE, got {pair!r}")
        try:
            options[name] = json.loads(raw)
        except ValueError:
            options[name] = raw
    return options


def make_adapter(args: argparse.Namespace) -> Any:
    from faye.adapter import ASGIAdapter

    engine: Any = None
    if args.redis:
        engine = {"type": "redis", "url": args.redis, **engine_options(args.engine_option)}
        if args.namespace:
            engine["namespace"] = args.namespace
    elif args.engine_option:
        raise SystemExit("--engine-option needs --redis")
    return ASGIAdapter(
        mount=args.mount,
        timeout=args.timeout,
        engine=engine,
        ping=args.ping,
        client_script=args.client_script,
        max_request_size=args.max_request_size,
        ws_compression=args.ws_compression,
    )


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from faye.gc_tuning import tune_for_server
    from faye.transport.uvicorn_websocket import FayeWebSocketProtocol

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    adapter = make_adapter(args)
    tune_for_server(args.gc_thresholds)
    uvicorn.run(
        adapter,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=args.max_request_size,
        ws_ping_interval=args.ping,
        ws_ping_timeout=args.ping,
        timeout_keep_alive=max(5, int(args.timeout) + 5),
        lifespan="on",
        ws=FayeWebSocketProtocol,
    )


def collect(args: argparse.Namespace) -> None:
    """The seed's rake task: one garbage collection, e.g. from cron."""
    import asyncio

    if not args.redis:
        raise SystemExit("faye gc needs --redis URL (or FAYE_REDIS_URL)")
    from faye.redis import collect_garbage

    count = asyncio.run(collect_garbage(args.redis, args.namespace, server_timeout=args.timeout))
    print(f"collected {count} expired client(s)")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            serve(args)
        elif args.command == "gc":
            collect(args)
    except ValueError as exc:  # bad options: say so plainly, no traceback
        sys.exit(f"faye: {exc}")

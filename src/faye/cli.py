"""``faye serve``: run a Bayeux server on uvicorn (memory engine unless told otherwise)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from faye import __version__
from faye.extras import MissingExtra
from faye.gc_tuning import SERVER_THRESHOLDS, parse_thresholds

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

#: Options whose default comes from the environment, and the variable it comes from.
ENVIRONMENT = {
    "--host": "FAYE_HOST",
    "--port": "FAYE_PORT",
    "--mount": "FAYE_MOUNT",
    "--timeout": "FAYE_TIMEOUT",
    "--ping": "FAYE_PING",
    "--redis": "FAYE_REDIS_URL",
    "--namespace": "FAYE_NAMESPACE",
    "--client-script": "FAYE_CLIENT_JS",
    "--max-request-size": "FAYE_MAX_REQUEST_SIZE",
    "--gc-thresholds": "FAYE_GC_THRESHOLDS",
    "--log-level": "FAYE_LOG_LEVEL",
    "--workers": "FAYE_WORKERS",
}


def _env(option: str, default: str | None = None) -> str | None:
    """The option's default from its environment variable (checked by the option's
    ``type`` like a value given on the command line); empty counts as unset."""
    return os.environ.get(ENVIRONMENT[option]) or default


class Parser(argparse.ArgumentParser):
    """Bad arguments or environment values: one line and exit code 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        for option, variable in ENVIRONMENT.items():
            if f"argument {option}" in message and os.environ.get(variable):
                message += f" (from {variable})"
                break
        self.exit(2, f"{self.prog}: error: {message}\n")


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise ValueError(text)
    return value


_seconds.__name__ = "seconds"  # argparse says: invalid seconds value: 'abc'


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(LOG_LEVELS)})"
        )
    return text.lower()


def _gc_thresholds(text: str) -> tuple[int, ...] | None:
    try:
        return parse_thresholds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _engine_option(text: str) -> tuple[str, Any]:
    """``NAME=VALUE``; VALUE is read as JSON when it is JSON (numbers, false, {...})."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def _redis_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--redis",
        default=_env("--redis"),
        help="redis:// or rediss:// URL of the Redis engine (default: memory engine)",
    )
    command.add_argument("--namespace", default=_env("--namespace"))
    command.add_argument(
        "--engine-option",
        action="append",
        default=[],
        type=_engine_option,
        metavar="NAME=VALUE",
        help="a Redis engine option (gc_interval=30, pool_size=10, ...); VALUE is JSON or text",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="faye", description=__doc__)
    parser.add_argument("--version", action="version", version=f"faye-redis-ng {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    serve = commands.add_parser("serve", help="run the Bayeux server")
    serve.add_argument("--host", default=_env("--host", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=_env("--port", "8000"))
    serve.add_argument("--mount", default=_env("--mount", "/faye"))
    serve.add_argument(
        "--timeout",
        type=_seconds,
        default=_env("--timeout", "25"),
        help="seconds a /meta/connect is held (default 25)",
    )
    serve.add_argument(
        "--ping",
        type=_seconds,
        default=_env("--ping", "0"),
        help="seconds between WebSocket pings and EventSource keep-alives (0: none)",
    )
    _redis_arguments(serve)
    serve.add_argument(
        "--client-script",
        default=_env("--client-script"),
        help="path to faye-browser-min.js, served at <mount>/client.js",
    )
    serve.add_argument(
        "--max-request-size", type=int, default=_env("--max-request-size", str(1 << 20))
    )
    serve.add_argument(
        "--gc-thresholds",
        default=_env("--gc-thresholds", ",".join(map(str, SERVER_THRESHOLDS))),
        type=_gc_thresholds,
        help="the cyclic GC's thresholds for this server process, or 'python' for "
        "CPython's defaults (see faye.gc_tuning)",
    )
    serve.add_argument(
        "--log-level",
        type=_log_level,
        default=_env("--log-level", "info"),
        help=f"one of {', '.join(LOG_LEVELS)}",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=_env("--workers", "1"),
        help="server processes sharing the port (uvicorn's multiprocess mode); more than one "
        "needs --redis, which lets them share clients",
    )
    gc = commands.add_parser("gc", help="collect expired clients once (for cron)")
    _redis_arguments(gc)
    gc.add_argument(
        "--timeout",
        type=_seconds,
        default=_env("--timeout", "25"),
        help="the servers' --timeout; clients idle for twice as long are collected",
    )
    return parser


def engine_options(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """The ``--engine-option`` pairs as a mapping (the last of a name wins)."""
    return dict(pairs)


def redis_engine(args: argparse.Namespace) -> dict[str, Any]:
    """The Redis engine's options from ``--redis``, ``--namespace`` and ``--engine-option``."""
    engine: dict[str, Any] = {"type": "redis", "url": args.redis}
    engine.update(engine_options(args.engine_option))
    if args.namespace:
        engine["namespace"] = args.namespace
    return engine


def make_adapter(args: argparse.Namespace) -> Any:
    from faye.adapter import ASGIAdapter

    engine: Any = None
    if args.redis:
        engine = redis_engine(args)
    elif args.engine_option:
        raise ConfigError("--engine-option needs --redis")
    return ASGIAdapter(
        mount=args.mount,
        timeout=args.timeout,
        engine=engine,
        ping=args.ping or None,
        client_script=args.client_script,
        max_request_size=args.max_request_size,
    )


#: ``faye serve --workers N`` hands its parsed options to the worker processes here.
WORKER_ARGS_VARIABLE = "_FAYE_SERVE_ARGS"


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from faye.gc_tuning import tune_for_server
    from faye.transport.uvicorn_websocket import FayeWebSocketProtocol

    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    if args.workers > 1 and not args.redis:
        raise ValueError(
            "--workers needs the Redis engine (--redis URL): with the memory engine each "
            "worker would hold its own clients, and a client's requests reach any worker"
        )
    _configure_logging(args.log_level)
    adapter = make_adapter(args)  # bad options stop here, before any worker starts
    settings: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "ws_max_size": args.max_request_size,
        "ws_ping_interval": args.ping or None,
        "ws_ping_timeout": args.ping or None,
        "timeout_keep_alive": max(5, int(args.timeout) + 5),
        "lifespan": "on",
        "ws": FayeWebSocketProtocol,
    }
    if args.workers == 1:
        tune_for_server(args.gc_thresholds)
        uvicorn.run(adapter, **settings)
        return
    # uvicorn spawns fresh interpreters that import the app; each builds its own adapter
    # (its own engine and Redis connections) from the options passed in the environment.
    os.environ[WORKER_ARGS_VARIABLE] = json.dumps(vars(args))
    uvicorn.run("faye.cli:worker_app", factory=True, workers=args.workers, **settings)


def worker_app() -> Any:
    """The ASGI app of one ``faye serve --workers N`` process (a uvicorn app factory)."""
    from faye.gc_tuning import tune_for_server

    args = argparse.Namespace(**json.loads(os.environ[WORKER_ARGS_VARIABLE]))
    if args.gc_thresholds is not None:
        args.gc_thresholds = tuple(args.gc_thresholds)
    _configure_logging(args.log_level)
    tune_for_server(args.gc_thresholds)
    return make_adapter(args)


def collect(args: argparse.Namespace) -> None:
    """The seed's rake task: one garbage collection, e.g. from cron."""
    import asyncio

    from faye.engine import EngineError

    if not args.redis:
        raise ConfigError("faye gc needs --redis URL (or FAYE_REDIS_URL)")
    from faye.redis import collect_garbage

    try:
        count = asyncio.run(collect_garbage(redis_engine(args), server_timeout=args.timeout))
    except EngineError as exc:  # Redis unreachable, refused us, ...: one line for cron
        print(f"faye gc: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"collected {count} expired client(s)")


class ConfigError(ValueError):
    """A bad combination of arguments."""


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            serve(args)
        elif args.command == "gc":
            collect(args)
    except ValueError as exc:  # bad options: say so plainly, no traceback
        print(f"faye {args.command}: {exc}", file=sys.stderr)
        sys.exit(2)
    except MissingExtra as exc:  # installed without the extra the options need
        print(f"faye {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)

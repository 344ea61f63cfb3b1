"""``faye serve``: run a Bayeux server on uvicorn (memory engine unless told otherwise)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from faye import __version__
from faye.extras import MissingExtra
from faye.gc_tuning import SERVER_THRESHOLDS, parse_thresholds
from faye.transport.uvicorn_websocket import COMPRESSION_SETTINGS

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
    "--drain-timeout": "FAYE_DRAIN_TIMEOUT",
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
        "--extension",
        action="append",
        default=[e for e in os.environ.get("FAYE_EXTENSIONS", "").split(",") if e],
        metavar="MODULE:FACTORY",
        help="server extensions: FACTORY() in MODULE (importable, e.g. on PYTHONPATH) "
        "returns one or a list; repeatable, added in order",
    )
    serve.add_argument(
        "--health-path",
        default=os.environ.get("FAYE_HEALTH_PATH", "healthz"),
        help="liveness probe path, under the mount unless it starts with / ('' turns it off)",
    )
    serve.add_argument(
        "--ready-path",
        default=os.environ.get("FAYE_READY_PATH", "readyz"),
        help="readiness probe path (the engine answers), as --health-path",
    )
    serve.add_argument(
        "--metrics-path",
        default=os.environ.get("FAYE_METRICS_PATH") or None,
        help="serve Prometheus metrics at this path, under the mount unless it starts "
        "with / (default: off)",
    )
    serve.add_argument(
        "--metrics-token",
        default=os.environ.get("FAYE_METRICS_TOKEN") or None,
        help="require 'Authorization: Bearer TOKEN' on the metrics path",
    )
    serve.add_argument(
        "--admin-token",
        default=os.environ.get("FAYE_ADMIN_TOKEN") or None,
        help="serve the admin page at <mount>/admin to this token (HTTP Basic password, "
        "or 'Authorization: Bearer TOKEN'); default: off",
    )
    add_limit_arguments(serve)
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
    serve.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=_env("--drain-timeout", "10"),
        help="on SIGTERM, seconds to answer held connects, close sockets and finish "
        "writes before exiting (default 10; see docs/deployment.md)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("FAYE_LOG_FORMAT", "text"),
        help="json: one JSON object per line (ts, level, logger, message, exception)",
    )
    serve.add_argument(
        "--ws-compression",
        choices=COMPRESSION_SETTINGS,
        default=os.environ.get("FAYE_WS_COMPRESSION", "off"),
        help="what a WebSocket client's permessage-deflate offer gets (default off; "
        "'on' keeps two zlib contexts per connection: docs/benchmarks.md has their memory)",
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


def _env_number(name: str, default: float, kind: type[int] | type[float]) -> Any:
    """A limit's default from its environment variable; a bad value is one line, exit 2."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        number = -1
    if number < 0:
        print(
            f"faye: error: {name}: expected a non-negative number, got {value!r}", file=sys.stderr
        )
        sys.exit(2)  # as argparse's own errors
    return number


def _env_int(name: str, default: int) -> int:
    return int(_env_number(name, default, int))


def _env_float(name: str, default: float) -> float:
    return float(_env_number(name, default, float))


@dataclass(frozen=True)
class Limit:
    """One abuse limit of ``faye serve`` (docs/security.md): its flag, environment
    variable, type, default and help, from which the flag and its option are built."""

    flag: str
    env: str
    kind: type[int] | type[float]
    #: None: unset unless given (``shown`` says what applies then); 0 from the
    #: environment also counts as unset.
    default: float | None
    help: str
    #: Who takes it: an ASGIAdapter keyword (``adapter``), the engine (``engine``) or
    #: uvicorn (``uvicorn``, by serve()).
    applies: str = "adapter"
    #: What 0 means, when it means something ("off", "no cap").
    zero: str = ""
    #: The default as the help shows it, when ``default`` does not say it.
    shown: str = ""

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    def initial(self) -> float | None:
        """The default, or its environment variable's value (a bad one: exit 2)."""
        if self.default is None:
            return _env_number(self.env, 0, self.kind) or None
        return self.kind(_env_number(self.env, self.default, self.kind))

    def help_text(self) -> str:
        default = self.shown or (
            f"{self.default:g}" if self.kind is float else str(int(self.default or 0))
        )
        return f"{self.help} (default {default}{'; 0: ' + self.zero if self.zero else ''})"


def limit_table() -> tuple[Limit, ...]:
    """Every limit flag, in the order ``faye serve --help`` lists them."""
    from faye import limits as caps
    from faye.protocol.channels import DEFAULT_MAX_LENGTH, DEFAULT_MAX_SEGMENTS
    from faye.transport.uvicorn_http import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_HEADER_BYTES

    return (
        Limit(
            "--max-channel-length",
            "FAYE_MAX_CHANNEL_LENGTH",
            int,
            DEFAULT_MAX_LENGTH,
            "longest channel name a client may use",
        ),
        Limit(
            "--max-channel-segments",
            "FAYE_MAX_CHANNEL_SEGMENTS",
            int,
            DEFAULT_MAX_SEGMENTS,
            "most segments in a channel name",
        ),
        Limit(
            "--max-subscriptions",
            "FAYE_MAX_SUBSCRIPTIONS",
            int,
            caps.DEFAULT_MAX_SUBSCRIPTIONS,
            "subscriptions per client",
            zero="no cap",
        ),
        Limit(
            "--publish-rate",
            "FAYE_PUBLISH_RATE",
            float,
            caps.DEFAULT_PUBLISH_RATE,
            "publishes per second per client",
            zero="off",
        ),
        Limit(
            "--publish-burst",
            "FAYE_PUBLISH_BURST",
            int,
            caps.DEFAULT_PUBLISH_BURST,
            "publishes a client may make at once",
        ),
        Limit(
            "--handshake-rate",
            "FAYE_HANDSHAKE_RATE",
            float,
            caps.DEFAULT_HANDSHAKE_RATE,
            "handshakes per second per source address",
            zero="off",
        ),
        Limit(
            "--handshake-burst",
            "FAYE_HANDSHAKE_BURST",
            int,
            caps.DEFAULT_HANDSHAKE_BURST,
            "handshakes an address may make at once",
        ),
        Limit(
            "--max-outbox-bytes",
            "FAYE_MAX_OUTBOX_BYTES",
            int,
            caps.DEFAULT_MAX_OUTBOX_BYTES,
            "bytes of deliveries a WebSocket/EventSource client may fall behind before it "
            "is dropped",
        ),
        Limit(
            "--max-client-queue",
            "FAYE_MAX_CLIENT_QUEUE",
            int,
            None,
            "messages queued per client while it has no connection, on either engine; "
            "the oldest are dropped",
            applies="engine",
            shown="1000",
        ),
        Limit(
            "--max-header-size",
            "FAYE_MAX_HEADER_SIZE",
            int,
            DEFAULT_MAX_HEADER_BYTES,
            "bytes of HTTP request headers accepted; more gets 431",
            applies="uvicorn",
        ),
        Limit(
            "--header-timeout",
            "FAYE_HEADER_TIMEOUT",
            float,
            DEFAULT_HEADER_TIMEOUT,
            "seconds a connection may take to send a request's headers",
            applies="uvicorn",
            zero="no limit",
        ),
        Limit(
            "--max-connections",
            "FAYE_MAX_CONNECTIONS",
            int,
            None,
            "open connections (HTTP and WebSocket) before new requests get 503",
            applies="uvicorn",
            shown="the open-file limit less 64",
        ),
    )


def add_limit_arguments(serve: argparse.ArgumentParser) -> None:
    """Flags for the abuse limits (docs/security.md), from :func:`limit_table`."""
    from faye import limits as caps

    limits = serve.add_argument_group("limits (see docs/security.md)")
    for limit in limit_table():
        limits.add_argument(
            limit.flag, type=limit.kind, default=limit.initial(), help=limit.help_text()
        )
    limits.add_argument(
        "--handshake-exempt",
        action="append",
        metavar="CIDR",
        default=[n for n in os.environ["FAYE_HANDSHAKE_EXEMPT"].split(",")]
        if "FAYE_HANDSHAKE_EXEMPT" in os.environ
        else None,
        help="a network whose handshakes are not rate limited (repeatable; default "
        f"{', '.join(caps.DEFAULT_HANDSHAKE_EXEMPT)}; '' for none)",
    )
    origins = serve.add_argument_group("origins (see docs/security.md)")
    origins.add_argument(
        "--allow-origin",
        action="append",
        metavar="PATTERN",
        default=[o for o in os.environ.get("FAYE_ALLOW_ORIGINS", "").split(",") if o] or None,
        help="a web origin allowed to use the endpoint, shell-style pattern "
        "(https://*.example.com); repeatable. Default: every origin, as Faye",
    )
    origins.add_argument(
        "--strict-origin",
        action="store_true",
        default=os.environ.get("FAYE_STRICT_ORIGIN", "") not in ("", "0"),
        help="also refuse requests with neither Origin nor Referer (non-browser clients)",
    )


def load_extension(spec: str) -> list[Any]:
    """``module:factory`` -> ``factory()``: an extension, or a list of extensions that
    share state; an attribute that is not callable is used as is."""
    import importlib

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"faye: --extension expects MODULE:FACTORY, got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"faye: cannot load extension {spec!r}: {exc}") from None
    made = target() if callable(target) else target
    return list(made) if isinstance(made, list | tuple) else [made]


def make_adapter(args: argparse.Namespace) -> Any:
    from faye import limits as caps
    from faye.adapter import ASGIAdapter

    engine: Any = None
    if args.redis:
        engine = redis_engine(args)
    elif args.engine_option:
        raise ConfigError("--engine-option needs --redis")
    if args.max_client_queue is not None:
        engine = {"type": "memory"} if engine is None else engine
        engine["max_queue"] = args.max_client_queue
    return ASGIAdapter(
        mount=args.mount,
        timeout=args.timeout,
        engine=engine,
        ping=args.ping or None,
        client_script=args.client_script,
        max_request_size=args.max_request_size,
        handshake_exempt=caps.DEFAULT_HANDSHAKE_EXEMPT
        if args.handshake_exempt is None
        else [n for n in args.handshake_exempt if n],
        **{
            limit.dest: getattr(args, limit.dest)
            for limit in limit_table()
            if limit.applies == "adapter"
        },
        extensions=[ext for spec in args.extension for ext in load_extension(spec)],
        metrics_path=args.metrics_path,
        metrics_token=args.metrics_token,
        admin_token=args.admin_token,
        health_path=args.health_path or None,
        ready_path=args.ready_path or None,
        allow_origins=args.allow_origin,
        strict_origin=args.strict_origin,
        ws_compression=args.ws_compression,
    )


#: ``faye serve --workers N`` hands its parsed options to the worker processes here.
WORKER_ARGS_VARIABLE = "_FAYE_SERVE_ARGS"


def serve(args: argparse.Namespace) -> None:
    from uvicorn.config import LOGGING_CONFIG

    from faye import drain
    from faye.events import log_events
    from faye.gc_tuning import tune_for_server
    from faye.logs import configure as configure_logging
    from faye.transport.uvicorn_http import default_max_connections, limited_http_protocol
    from faye.transport.uvicorn_websocket import FayeWebSocketProtocol

    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    if args.workers > 1 and not args.redis:
        raise ValueError(
            "--workers needs the Redis engine (--redis URL): with the memory engine each "
            "worker would hold its own clients, and a client's requests reach any worker"
        )
    configure_logging(args.log_level, args.log_format)
    adapter = make_adapter(args)  # bad options stop here, before any worker starts
    if args.log_level == "debug":
        log_events(adapter.proxy)
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
        "http": limited_http_protocol(args.max_header_size, args.header_timeout),
        "limit_concurrency": args.max_connections or default_max_connections(),
        # JSON: uvicorn's loggers go through ours (configured above) instead of its own.
        "log_config": None if args.log_format == "json" else LOGGING_CONFIG,
    }
    if args.workers == 1:
        tune_for_server(args.gc_thresholds)
        drain.run(adapter, args.drain_timeout, **settings)
        return
    # uvicorn spawns fresh interpreters that import the app; each builds its own adapter
    # (its own engine and Redis connections) from the options passed in the environment.
    os.environ[WORKER_ARGS_VARIABLE] = json.dumps(vars(args))
    drain.run(
        "faye.cli:worker_app",
        args.drain_timeout,
        factory=True,
        workers=args.workers,
        **settings,
    )


def worker_app() -> Any:
    """The ASGI app of one ``faye serve --workers N`` process (a uvicorn app factory)."""
    from faye.events import log_events
    from faye.gc_tuning import tune_for_server
    from faye.logs import configure as configure_logging

    args = argparse.Namespace(**json.loads(os.environ[WORKER_ARGS_VARIABLE]))
    if args.gc_thresholds is not None:
        args.gc_thresholds = tuple(args.gc_thresholds)
    configure_logging(args.log_level, args.log_format)
    tune_for_server(args.gc_thresholds)
    adapter = make_adapter(args)
    if args.log_level == "debug":
        log_events(adapter.proxy)
    return adapter


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

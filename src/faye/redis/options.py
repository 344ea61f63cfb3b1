"""The Redis engine's options: the seed's names and defaults, checked once at construction.

Everything the engine reads from its options goes through :class:`RedisOptions`, so a
typo or a nonsense value fails at start-up with a message naming the option instead
of surfacing later as a strange Redis error.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: ``log_level`` names and the :mod:`logging` thresholds they stand for.
LOG_LEVELS: dict[str, int] = {
    "silent": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.\-/]+")


@dataclass(frozen=True)
class SSLOptions:
    """``ssl: {enabled, cert_file, key_file, ca_file}``; paths to PEM files."""

    enabled: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    #: Check that the server certificate names the host we connect to.
    check_hostname: bool = True


@dataclass(frozen=True)
class RedisOptions:
    """All engine options with their defaults (times are in seconds)."""

    host: str = "localhost"
    port: int = 6379
    database: int = 0
    password: str | None = None
    username: str | None = None
    url: str | None = None
    pool_size: int = 5
    pool_timeout: float = 5.0
    connect_timeout: float = 1.0
    read_timeout: float = 1.0
    write_timeout: float = 1.0
    #: Total attempts for idempotent commands (as in faye-redis-ng); 0 or 1: no retry.
    max_retries: int = 3
    retry_delay: float = 1.0
    #: How long a publish waits through a Redis stall or outage (retrying, each call
    #: made idempotent by a token) before it fails; 0: one attempt, no token.
    stall_timeout: float = 10.0
    #: None: liveness follows the server timeout (1.6x to exist, 2x to be collected).
    client_timeout: float | None = None
    message_ttl: float = 3600.0
    #: None: subscription keys never expire on their own (the GC removes them).
    subscription_ttl: float | None = 3600.0
    #: None/0/False: no automatic GC (run ``faye gc`` from cron instead).
    gc_interval: float | None = 60.0
    log_level: str = "info"
    namespace: str = "faye"
    ssl: SSLOptions = field(default_factory=SSLOptions)
    #: Longest per-client queue; older messages are trimmed.
    max_queue: int = 1000
    #: How often a server refreshes its heartbeat; it counts as dead after 3 intervals.
    heartbeat_interval: float = 2.0
    #: Number of key partitions (hash-tag groups). All servers must agree on it.
    #: None: 1 on a single Redis or behind Sentinel, ``CLUSTER_PARTITIONS`` on a Cluster.
    partitions: int | None = None
    #: Redis Cluster startup nodes ("host:port"); set: the engine speaks Cluster.
    cluster: tuple[str, ...] | None = None
    #: Sentinel addresses ("host:port"); set: the master is found through Sentinel.
    sentinels: tuple[str, ...] | None = None
    #: The Sentinel service (``sentinel monitor <name> ...``); ``master_name`` is an alias.
    service_name: str | None = None
    sentinel_password: str | None = None
    sentinel_username: str | None = None
    #: Key layout: 1 (per-client queues) or 2 (channel logs, faye.redis.layout2). Servers
    #: of one namespace must agree; each refuses a namespace the other layout uses.
    #: None (``auto``): the layout the namespace's servers use, or for a new namespace 2
    #: (1 on a Cluster or with ``partitions`` above 1), see :meth:`layout_for`.
    layout: int | None = None
    #: Layout 2: how often (seconds) a server records how far the clients it holds
    #: were written, at most; the duplicates a killed server leaves are bounded by it.
    cursor_interval: float = 0.25

    # -- derived --------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``single``, ``sentinel`` or ``cluster``."""
        if self.cluster:
            return "cluster"
        if self.sentinels:
            return "sentinel"
        return "single"

    @property
    def partition_count(self) -> int:
        if self.partitions is not None:
            return self.partitions
        return CLUSTER_PARTITIONS if self.mode == "cluster" and self.layout != 2 else 1

    def layout_for(self, recorded: str | None) -> int:
        """The layout to run given the one recorded for the namespace (None: a new one).

        A given ``layout`` wins (a mismatch is refused at start-up). With ``auto``, a
        server joins what the namespace's servers run, so it never splits a fleet; a
        new namespace gets channel logs, unless its keys are to be spread over
        partitions, which only layout 1 does.
        """
        if self.layout is not None:
            return self.layout
        if recorded in ("1", "2"):
            return int(recorded)
        return 1 if self.mode == "cluster" or (self.partitions or 1) > 1 else 2

    def addresses(self, which: str) -> list[tuple[str, int]]:
        """``cluster`` or ``sentinels`` as (host, port) pairs."""
        entries = self.cluster if which == "cluster" else self.sentinels
        default = SENTINEL_PORT if which == "sentinels" else 6379
        return [_host_port(which, entry, default) for entry in entries or ()]

    @property
    def answer_timeout(self) -> float:
        """How long a command waits for Redis's answer: a command is written and read
        on one connection, and its clients (redis-py's included) have one timeout."""
        return max(self.read_timeout, self.write_timeout)

    @property
    def log_threshold(self) -> int:
        return LOG_LEVELS[self.log_level]

    @property
    def dead_server_after(self) -> float:
        """A server whose heartbeat is older than this is dead (its in-flight is recovered)."""
        return 3 * self.heartbeat_interval

    @property
    def gc_enabled(self) -> bool:
        return bool(self.gc_interval)

    # -- parsing ----------------------------------------------------------------------

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None) -> RedisOptions:
        """Validate a mapping of options; raise ValueError naming the first bad one."""
        raw = dict(options or {})
        if "master_name" in raw:
            if raw.get("service_name") not in (None, raw["master_name"]):
                raise ValueError("service_name and master_name are the same option; give one")
            raw["service_name"] = raw.pop("master_name")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(
                f"unknown Redis engine option(s): {', '.join(map(str, unknown))} "
                f"(known: {', '.join(sorted(known))})"
            )
        values: dict[str, Any] = {}
        for name, value in raw.items():
            values[name] = _CHECKS[name](name, value)
        result = cls(**values)
        if result.url is not None:
            result = result._with_url(result.url)
        result._check_relations()
        return result

    def _with_url(self, url: str) -> RedisOptions:
        """``redis://[user[:password]@]host[:port][/db]`` or ``rediss://`` (TLS).

        Also ``redis+cluster://[user[:password]@]host:port,host:port`` (Redis Cluster
        startup nodes) and ``redis+sentinel://[user[:password]@]host:port,host:port/
        service[/db]`` (Sentinel addresses and the service name); the credentials are
        the data nodes'. ``rediss+cluster`` and ``rediss+sentinel`` turn TLS on.
        """
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme in ("redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel"):
            return self._with_multi_url(url, scheme)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("redis", "rediss"):
            raise ValueError(
                f"url: unsupported scheme {parts.scheme!r} (use redis://, rediss://, "
                "redis+cluster:// or redis+sentinel://)"
            )
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"url: bad port in {url!r}") from exc
        changes: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "port": port or 6379,
        }
        if parts.username:
            changes["username"] = unquote(parts.username)
        if parts.password:
            changes["password"] = unquote(parts.password)
        path = parts.path.strip("/")
        query = parse_qs(parts.query)
        db_text = path or (query.get("db", [""])[0])
        if db_text:
            if not db_text.isdigit():
                raise ValueError(f"url: database must be a number, got {db_text!r}")
            changes["database"] = int(db_text)
        if scheme == "rediss":
            changes["ssl"] = replace(self.ssl, enabled=True)
        return replace(self, **changes)

    def _with_multi_url(self, url: str, scheme: str) -> RedisOptions:
        rest = url.split("://", 1)[1]
        rest, _, query = rest.partition("?")
        netloc, _, path = rest.partition("/")
        userinfo, at, hosts = netloc.rpartition("@")
        if not at:
            hosts, userinfo = netloc, ""
        changes: dict[str, Any] = {}
        if userinfo:
            user, colon, password = userinfo.partition(":")
            if user:
                changes["username"] = unquote(user)
            if colon and password:
                changes["password"] = unquote(password)
        entries = tuple(h.strip() for h in hosts.split(",") if h.strip())
        if not entries:
            raise ValueError(f"url: no host:port in {url!r}")
        segments = [unquote(s) for s in path.split("/") if s]
        params = parse_qs(query)
        if scheme.endswith("+cluster"):
            for entry in entries:
                _host_port("url", entry, 6379)
            if segments and segments != ["0"]:
                raise ValueError("url: Redis Cluster has only database 0")
            changes["cluster"] = entries
        else:
            for entry in entries:
                _host_port("url", entry, SENTINEL_PORT)
            if not segments:
                raise ValueError(
                    "url: redis+sentinel:// needs the service name: "
                    "redis+sentinel://host:port,host:port/service_name[/db]"
                )
            if len(segments) > 2:
                raise ValueError(f"url: too many path parts in {url!r}")
            changes["sentinels"] = entries
            changes["service_name"] = segments[0]
            if len(segments) == 2:
                if not segments[1].isdigit():
                    raise ValueError(f"url: database must be a number, got {segments[1]!r}")
                changes["database"] = int(segments[1])
            for name in ("sentinel_password", "sentinel_username"):
                if params.get(name):
                    changes[name] = params[name][0]
        if scheme.startswith("rediss"):
            changes["ssl"] = replace(self.ssl, enabled=True)
        return replace(self, **changes)

    def _check_relations(self) -> None:
        if self.layout == 2 and (self.partitions or 1) > 1:
            raise ValueError("partitions: layout 2 keeps a namespace in one partition")
        if (self.ssl.cert_file is None) != (self.ssl.key_file is None):
            raise ValueError("ssl: cert_file and key_file go together (a client certificate)")
        if self.cluster and self.sentinels:
            raise ValueError("cluster and sentinels exclude each other (Cluster has no Sentinel)")
        if self.cluster and self.database != 0:
            raise ValueError("database: Redis Cluster has only database 0")
        if self.sentinels and not self.service_name:
            raise ValueError("sentinels need service_name (the name Sentinel monitors)")
        if self.service_name and not self.sentinels:
            raise ValueError("service_name needs sentinels (their host:port addresses)")

    def liveness(self, bayeux_timeout: float) -> tuple[float, float]:
        """(seconds a client counts as existing, seconds after which the GC collects it),
        given the Bayeux server's ``timeout`` (how long it holds a ``/meta/connect``)."""
        if self.client_timeout is not None:
            return self.client_timeout, self.client_timeout
        return 1.6 * bayeux_timeout, 2 * bayeux_timeout


# -- value checks ------------------------------------------------------------------------


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _opt_str(name: str, value: Any) -> str | None:
    return None if value is None else _str(name, value)


def _int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def _seconds(name: str, value: Any, *, positive: bool = True) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if math.isnan(number) or math.isinf(number) or number < 0 or (positive and number == 0):
        need = "positive" if positive else "zero or positive"
        raise ValueError(f"{name} must be a {need} number of seconds, got {value!r}")
    return number


_OFF = ("", "none", "null", "false", "off", "no")


def _is_off(value: Any) -> bool:
    """None/False, or their spelling in a command-line or environment value."""
    return value is None or value is False or (isinstance(value, str) and value.lower() in _OFF)


def _opt_seconds(name: str, value: Any) -> float | None:
    return None if _is_off(value) else _seconds(name, value)


def _gc_interval(name: str, value: Any) -> float | None:
    if _is_off(value) or (not isinstance(value, bool) and value in (0, "0")):
        return None
    return _seconds(name, value)


def _log_level(name: str, value: Any) -> str:
    level = value.lower() if isinstance(value, str) else value
    if level not in LOG_LEVELS:
        raise ValueError(f"{name} must be one of silent, error, info, debug; got {value!r}")
    return str(level)


def _namespace(name: str, value: Any) -> str:
    text = _str(name, value)
    if not _NAMESPACE_RE.fullmatch(text):
        raise ValueError(
            f"{name} may only hold letters, digits and _ . - / "
            f"(no ':', '{{' or '}}'), got {value!r}"
        )
    return text


def _port(name: str, value: Any) -> int:
    return _int(name, value, 1, 65535)


def _ssl(name: str, value: Any) -> SSLOptions:
    if isinstance(value, SSLOptions):
        return value
    if value is None or value is False:
        return SSLOptions()
    if value is True:
        return SSLOptions(enabled=True)
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping {{enabled, cert_file, key_file, ca_file}}")
    allowed = {"enabled", "cert_file", "key_file", "ca_file", "check_hostname"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {', '.join(map(str, unknown))}")
    if "enabled" not in value:
        raise ValueError(f"{name} needs enabled: true (or false) to say whether TLS is on")
    enabled = value["enabled"]
    if not isinstance(enabled, bool):
        raise ValueError(f"{name}.enabled must be true or false, got {enabled!r}")
    check_hostname = value.get("check_hostname", True)
    if not isinstance(check_hostname, bool):
        raise ValueError(f"{name}.check_hostname must be true or false")
    files = {k: _opt_str(f"{name}.{k}", value.get(k)) for k in ("cert_file", "key_file", "ca_file")}
    if not enabled and any(files.values()):
        raise ValueError(f"{name}: certificate files are given but enabled is false")
    return SSLOptions(enabled=enabled, check_hostname=check_hostname, **files)


def _url(name: str, value: Any) -> str | None:
    return None if value is None else _str(name, value)


#: Default partition count on a Redis Cluster: enough to spread over a few masters.
CLUSTER_PARTITIONS = 16
SENTINEL_PORT = 26379


def _host_port(name: str, entry: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port``."""
    text = entry.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else tail
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(f"{name}: no host in {entry!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{name}: bad port in {entry!r}")
    return host, int(port_text)


def _addresses(name: str, value: Any) -> tuple[str, ...] | None:
    """A list of "host:port" (or one comma-separated string); empty means unset."""
    if value is None or value is False:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, Mapping) or not isinstance(items, list | tuple):
        raise ValueError(f'{name} must be a list of "host:port", got {value!r}')
    entries = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f'{name} must be a list of "host:port", got {value!r}')
        if item.strip():
            _host_port(name, item, 6379)
            entries.append(item.strip())
    return tuple(entries) or None


_CHECKS: dict[str, Any] = {
    "host": _str,
    "port": _port,
    "database": lambda n, v: _int(n, v, 0),
    "password": _opt_str,
    "username": _opt_str,
    "url": _url,
    "pool_size": lambda n, v: _int(n, v, 1),
    "pool_timeout": _seconds,
    "connect_timeout": _seconds,
    "read_timeout": _seconds,
    "write_timeout": _seconds,
    "max_retries": lambda n, v: _int(n, v, 0, 100),
    "retry_delay": lambda n, v: _seconds(n, v, positive=False),
    "stall_timeout": lambda n, v: _seconds(n, v, positive=False),
    "client_timeout": _opt_seconds,
    "message_ttl": _seconds,
    "subscription_ttl": _opt_seconds,
    "gc_interval": _gc_interval,
    "log_level": _log_level,
    "namespace": _namespace,
    "ssl": _ssl,
    "max_queue": lambda n, v: _int(n, v, 1),
    "heartbeat_interval": _seconds,
    "partitions": lambda n, v: None if v is None else _int(n, v, 1, 16384),
    "layout": lambda n, v: None if v is None or v == "auto" else _int(n, v, 1, 2),
    "cursor_interval": _seconds,
    "cluster": _addresses,
    "sentinels": _addresses,
    "service_name": _opt_str,
    "sentinel_password": _opt_str,
    "sentinel_username": _opt_str,
}

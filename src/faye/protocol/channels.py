"""Bayeux channel grammar: names, wildcard patterns and their expansion.

Routing never matches patterns against names at publish time. Instead a published
name is *expanded* into every subscription key that can match it, so an engine only
has to look up a handful of exact keys (and a Redis engine can do one SUNION).
"""

from __future__ import annotations

import re
from functools import lru_cache

HANDSHAKE = "/meta/handshake"
CONNECT = "/meta/connect"
SUBSCRIBE = "/meta/subscribe"
UNSUBSCRIBE = "/meta/unsubscribe"
DISCONNECT = "/meta/disconnect"

META_CHANNELS = frozenset({HANDSHAKE, CONNECT, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT})

_SEGMENT = r"[A-Za-z0-9\-_!~()$@]+"
_NAME_RE = re.compile(rf"(?:/{_SEGMENT})+")
_PATTERN_RE = re.compile(rf"(?:/{_SEGMENT})*/\*{{1,2}}")


def is_name(channel: object) -> bool:
    """A concrete channel that may be published to (no wildcards)."""
    return isinstance(channel, str) and _NAME_RE.fullmatch(channel) is not None


def is_pattern(channel: object) -> bool:
    """A wildcard subscription: ``*`` or ``**`` as the last segment only."""
    return isinstance(channel, str) and _PATTERN_RE.fullmatch(channel) is not None


def is_valid(channel: object) -> bool:
    return is_name(channel) or is_pattern(channel)


def _first_segment(channel: str) -> str:
    return channel.split("/", 2)[1] if channel.startswith("/") else ""


def is_meta(channel: object) -> bool:
    return isinstance(channel, str) and is_valid(channel) and _first_segment(channel) == "meta"


def is_service(channel: object) -> bool:
    return isinstance(channel, str) and is_valid(channel) and _first_segment(channel) == "service"


def is_subscribable(channel: object) -> bool:
    """What a remote client may subscribe to: valid, and neither /meta nor /service."""
    return is_valid(channel) and not is_meta(channel) and not is_service(channel)


@lru_cache(maxsize=65536)
def expand(name: str) -> tuple[str, ...]:
    """Every subscription key that matches the published channel ``name``.

    ``/foo/bar/qux`` -> ``/**``, the name, ``/foo/bar/*``, ``/foo/**``, ``/foo/bar/**``.
    Cached because a hot channel is published to over and over.
    """
    segments = name.split("/")[1:]
    keys = ["/**", name, "/" + "/".join([*segments[:-1], "*"])]
    for i in range(1, len(segments)):
        keys.append("/" + "/".join([*segments[:i], "**"]))
    return tuple(keys)


def matches(pattern: str, name: str) -> bool:
    """Whether subscription ``pattern`` (or exact name) receives a publish to ``name``."""
    return pattern in expand(name)

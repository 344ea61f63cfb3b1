"""Bayeux channel grammar: names, wildcard patterns and their expansion.

Routing never matches patterns against names at publish time. Instead a published
name is *expanded* into every subscription key that can match it, so an engine only
has to look up a handful of exact keys (and a Redis engine can do one SUNION).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HANDSHAKE = "/meta/handshake"
CONNECT = "/meta/connect"
SUBSCRIBE = "/meta/subscribe"
UNSUBSCRIBE = "/meta/unsubscribe"
DISCONNECT = "/meta/disconnect"

META_CHANNELS = frozenset({HANDSHAKE, CONNECT, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT})

#: Defaults for :class:`ChannelLimits`. Real channel names are a few segments and well
#: under a hundred characters; these leave room for ids and tokens in names.
DEFAULT_MAX_LENGTH = 1024
DEFAULT_MAX_SEGMENTS = 32

#: Bytes (roughly) the expansion cache may hold, whatever the names published.
EXPAND_CACHE_BYTES = 8 * 1024 * 1024

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
    # The prefix test first: every publish asks, and the grammar's regex costs more.
    return (
        isinstance(channel, str)
        and channel.startswith("/meta")
        and is_valid(channel)
        and _first_segment(channel) == "meta"
    )


def is_service(channel: object) -> bool:
    return (
        isinstance(channel, str)
        and channel.startswith("/service")
        and is_valid(channel)
        and _first_segment(channel) == "service"
    )


def is_subscribable(channel: object) -> bool:
    """What a remote client may subscribe to: valid, and neither /meta nor /service."""
    return is_valid(channel) and not is_meta(channel) and not is_service(channel)


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """Caps on a channel name a client may use (publish, subscribe, unsubscribe).

    Expanding a name costs its length times its segments, so both are capped: past
    either cap a name is answered ``405:<channel>:Invalid channel``.
    """

    max_length: int = DEFAULT_MAX_LENGTH
    max_segments: int = DEFAULT_MAX_SEGMENTS

    def __post_init__(self) -> None:
        if self.max_length <= 0 or self.max_segments <= 0:
            raise ValueError("channel limits must be positive")

    def allow(self, channel: object) -> bool:
        """Within both caps (the length is checked first, in constant time)."""
        if not isinstance(channel, str) or len(channel) > self.max_length:
            return False
        return channel.count("/") <= self.max_segments


UNLIMITED = ChannelLimits(max_length=2**62, max_segments=2**62)


class _ExpansionCache:
    """Expansions of recently published names, bounded by their size in bytes.

    Eviction is first in, first out: a hot name that falls out is recomputed once, at
    a cost the channel limits bound. A name whose expansion alone would take more
    than a sixty-fourth of the budget is never kept.
    """

    __slots__ = ("_entries", "budget", "size")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._entries: dict[str, tuple[tuple[str, ...], int]] = {}

    def get(self, name: str) -> tuple[str, ...] | None:
        entry = self._entries.get(name)
        return None if entry is None else entry[0]

    def put(self, name: str, keys: tuple[str, ...]) -> None:
        cost = _cost(name, keys)
        if cost * 64 > self.budget or name in self._entries:
            return
        self._entries[name] = (keys, cost)
        self.size += cost
        while self.size > self.budget:
            oldest = next(iter(self._entries))
            self.size -= self._entries.pop(oldest)[1]

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0

    def __len__(self) -> int:
        return len(self._entries)


#: Per string: CPython's object header and hash (about 50 bytes) plus its characters.
_STRING_OVERHEAD = 56


def _cost(name: str, keys: tuple[str, ...]) -> int:
    return sum(len(k) for k in keys) + len(name) + _STRING_OVERHEAD * (len(keys) + 2)


expand_cache = _ExpansionCache(EXPAND_CACHE_BYTES)


def expand(name: str) -> tuple[str, ...]:
    """Every subscription key that matches the published channel ``name``.

    ``/foo/bar/qux`` -> ``/**``, the name, ``/foo/bar/*``, ``/foo/**``, ``/foo/bar/**``.
    The keys are prefixes of the name, so the work is its length times its segments:
    callers cap both (:class:`ChannelLimits`) before expanding what a client sent.
    Cached because a hot channel is published to over and over.
    """
    cached = expand_cache.get(name)
    if cached is not None:
        return cached
    keys = ["/**", name, name[: name.rfind("/")] + "/*"]
    end = name.find("/", 1)
    while end != -1:
        keys.append(name[:end] + "/**")
        end = name.find("/", end + 1)
    result = tuple(keys)
    expand_cache.put(name, result)
    return result


def matches(pattern: str, name: str) -> bool:
    """Whether subscription ``pattern`` (or exact name) receives a publish to ``name``."""
    return pattern in expand(name)

"""Caps that keep one client (or one address) from taking the whole process.

Every cap has a default that a well-behaved Faye or CometD client never reaches, an
:class:`~faye.adapter.ASGIAdapter` option and a ``faye serve`` flag; docs/security.md
lists them with the error each answers. Rates are token buckets kept in this process:
behind a load balancer each server process enforces its own share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from faye.protocol.channels import ChannelLimits

#: Subscriptions one client may hold through one server process.
DEFAULT_MAX_SUBSCRIPTIONS = 1000
#: Publishes per second one client may make (sustained), and the burst allowed above it.
DEFAULT_PUBLISH_RATE = 1000.0
DEFAULT_PUBLISH_BURST = 5000
#: Handshakes per second from one source address, and the burst allowed above it.
DEFAULT_HANDSHAKE_RATE = 20.0
DEFAULT_HANDSHAKE_BURST = 200
#: Source networks whose handshakes are never rate limited: a local reverse proxy that
#: does not pass the client's address on, and local tools, would otherwise share one bucket.
DEFAULT_HANDSHAKE_EXEMPT = ("127.0.0.0/8", "::1/128")
#: Bytes of deliveries a WebSocket or EventSource connection may fall behind.
DEFAULT_MAX_OUTBOX_BYTES = 16 * 1024 * 1024
#: Source addresses whose exemption is remembered at most.
EXEMPT_SEEN_MAX = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-client and per-address caps the Bayeux server enforces.

    A rate of 0 (or a cap of 0) turns that limit off. The in-process client (``request
    is None``) is the application itself and is never limited, except for channel names.
    """

    channels: ChannelLimits = field(default_factory=ChannelLimits)
    max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS
    publish_rate: float = DEFAULT_PUBLISH_RATE
    publish_burst: int = DEFAULT_PUBLISH_BURST
    handshake_rate: float = DEFAULT_HANDSHAKE_RATE
    handshake_burst: int = DEFAULT_HANDSHAKE_BURST
    handshake_exempt: tuple[str, ...] = DEFAULT_HANDSHAKE_EXEMPT
    _exempt_networks: tuple[IPv4Network | IPv6Network, ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    #: Answers by address (parsing one costs 3.6 us, a handshake's whole share of this
    #: check); emptied when full, so a crowd of addresses cannot grow it.
    _exempt_seen: dict[str, bool] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def exempt(self, address: str) -> bool:
        """Whether handshakes from ``address`` skip the rate limit."""
        if not self._exempt_networks:
            return False
        seen = self._exempt_seen.get(address)
        if seen is not None:
            return seen
        try:
            ip = ip_address(address)
        except ValueError:
            answer = False
        else:
            answer = any(ip in network for network in self._exempt_networks)
        if len(self._exempt_seen) >= EXEMPT_SEEN_MAX:
            self._exempt_seen.clear()
        self._exempt_seen[address] = answer
        return answer

    def __post_init__(self) -> None:
        networks = tuple(ip_network(n, strict=False) for n in self.handshake_exempt)
        object.__setattr__(self, "_exempt_networks", networks)
        for name in (
            "max_subscriptions",
            "publish_rate",
            "publish_burst",
            "handshake_rate",
            "handshake_burst",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


class TokenBuckets:
    """One token bucket per key (a client id, an address), refilled at ``rate`` per second.

    Memory stays bounded: past ``max_keys`` buckets, the full ones (keys idle long
    enough to have refilled) are forgotten, and if that is not enough, the oldest.
    """

    __slots__ = ("_buckets", "_clock", "burst", "max_keys", "rate")

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_keys = max_keys
        self._clock = clock
        # key -> (tokens, time of the last update)
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, key: str, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket if it has them."""
        if not self.enabled:
            return True
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._prune(now)
        self._buckets[key] = (tokens, now)
        return allowed

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        excess = len(self._buckets) - self.max_keys // 2
        if excess > 0:
            for key in list(self._buckets)[:excess]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)

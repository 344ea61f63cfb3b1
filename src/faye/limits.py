"""Caps that keep one client (or one address) from taking the whole process.

Every cap has a default that a well-behaved Faye or CometD client never reaches, an
:class:`~faye.adapter.ASGIAdapter` option and a ``faye serve`` flag; docs/security.md
lists them with the error each answers. Rates are token buckets kept in this process:
behind a load balancer each server process enforces its own share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from faye.protocol.channels import ChannelLimits


@dataclass(frozen=True, slots=True)
class Limits:
    """The caps the Bayeux server enforces on what clients send."""

    channels: ChannelLimits = field(default_factory=ChannelLimits)

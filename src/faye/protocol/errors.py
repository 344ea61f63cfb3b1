"""Bayeux error strings, ``CODE:ARG1,ARG2:Text``, exactly as Faye spells them."""

from __future__ import annotations

from collections.abc import Iterable

VERSION_MISMATCH = (300, "Version mismatch")
CONNTYPE_MISMATCH = (301, "Connection types not supported")
EXT_MISMATCH = (302, "Extension mismatch")
BAD_REQUEST = (400, "Bad request")
CLIENT_UNKNOWN = (401, "Unknown client")
PARAMETER_MISSING = (402, "Missing required parameter")
CHANNEL_FORBIDDEN = (403, "Forbidden channel")
CHANNEL_UNKNOWN = (404, "Unknown channel")
CHANNEL_INVALID = (405, "Invalid channel")
EXT_UNKNOWN = (406, "Unknown extension")
PUBLISH_FAILED = (407, "Failed to publish")
SERVER_ERROR = (500, "Internal server error")

# Not Faye's: the server's abuse limits (docs/security.md). Clients treat them as any
# other failure of the message (a handshake is retried after the client's interval).
TOO_MANY_SUBSCRIPTIONS = (429, "Too many subscriptions")
PUBLISH_RATE_EXCEEDED = (429, "Publish rate exceeded")
HANDSHAKE_RATE_EXCEEDED = (429, "Handshake rate exceeded")


def _arg(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return ",".join(_arg(v) for v in value)
    return str(value)


def render(kind: tuple[int, str], *args: object) -> str:
    """Build an error string; a missing argument renders empty (``405::Invalid channel``)."""
    code, text = kind
    return f"{code}:{','.join(_arg(a) for a in args)}:{text}"


def client_unknown(client_id: object) -> str:
    return render(CLIENT_UNKNOWN, client_id)


def parameter_missing(name: str) -> str:
    return render(PARAMETER_MISSING, name)


def conntype_mismatch(types: object) -> str:
    return render(CONNTYPE_MISMATCH, types)


def channel_forbidden(channel: object) -> str:
    return render(CHANNEL_FORBIDDEN, channel)


def channel_invalid(channel: object) -> str:
    return render(CHANNEL_INVALID, channel)


def server_error(detail: object = None) -> str:
    return render(SERVER_ERROR, detail)

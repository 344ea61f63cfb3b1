"""Pure Bayeux message validation and reply building.

Nothing here does I/O: the server asks the engine the facts a check needs (does the
client exist?) and passes them in, so every rule can be tested with plain dicts.

Faye assigns validation errors in sequence and the *last* failing check wins; an
error set by an incoming extension is the weakest of all. The functions below keep
that order on purpose, even where it reads oddly.
"""

from __future__ import annotations

from typing import Any, Final

from faye.protocol import channels, errors

Message = dict[str, Any]

BAYEUX_VERSION: Final = "1.0"
DEFAULT_LIMITS: Final = channels.ChannelLimits()
CONNECTION_TYPES: Final = (
    "long-polling",
    "cross-origin-long-polling",
    "callback-polling",
    "websocket",
    "eventsource",
    "in-process",
)


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness, which Faye's checks use (``if (message.clientId)``).

    Unlike Python, ``[]`` and ``{}`` are true; ``None``, ``False``, ``0``, NaN and
    ``""`` are false.
    """
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return value != ""
    if isinstance(value, int | float):
        return value == value and value != 0
    return True


def reply_skeleton(message: Message) -> Message:
    """The fields every reply starts from; nothing else of the request is echoed.

    Like Faye, a field is copied only when it is truthy: ``clientId: null`` is not
    echoed.
    """
    reply: Message = {}
    for field in ("id", "clientId", "channel", "error"):
        value = message.get(field)
        if js_truthy(value):
            reply[field] = value
    reply["successful"] = "error" not in reply
    return reply


def _fail(reply: Message, error: str) -> None:
    reply["error"] = error
    reply["successful"] = False


def check_handshake(message: Message, reply: Message) -> bool:
    """Validate a handshake into ``reply``; True means: create a client."""
    reply["version"] = BAYEUX_VERSION
    reply["supportedConnectionTypes"] = list(CONNECTION_TYPES)
    if not js_truthy(message.get("version")):
        _fail(reply, errors.parameter_missing("version"))
    offered = message.get("supportedConnectionTypes")
    if js_truthy(offered):
        offered_list = offered if isinstance(offered, list) else [offered]
        if not any(isinstance(t, str) and t in CONNECTION_TYPES for t in offered_list):
            _fail(reply, errors.conntype_mismatch(offered_list))
    else:
        _fail(reply, errors.parameter_missing("supportedConnectionTypes"))
    return bool(reply["successful"])


def check_connect(message: Message, reply: Message, exists: bool) -> bool:
    client_id = message.get("clientId")
    connection_type = message.get("connectionType")
    if not exists:
        _fail(reply, errors.client_unknown(client_id))
    if not js_truthy(client_id):
        _fail(reply, errors.parameter_missing("clientId"))
    if connection_type not in CONNECTION_TYPES:
        _fail(reply, errors.conntype_mismatch(connection_type))
    if not js_truthy(connection_type):
        _fail(reply, errors.parameter_missing("connectionType"))
    if not reply["successful"]:
        reply.pop("clientId", None)
    return bool(reply["successful"])


def check_disconnect(message: Message, reply: Message, exists: bool) -> bool:
    client_id = message.get("clientId")
    if not exists:
        _fail(reply, errors.client_unknown(client_id))
    if not js_truthy(client_id):
        _fail(reply, errors.parameter_missing("clientId"))
    if not reply["successful"]:
        reply.pop("clientId", None)
    return bool(reply["successful"])


def check_subscription(message: Message, reply: Message, exists: bool) -> list[Any] | None:
    """Validate (un)subscribe; return the channels to act on, in request order.

    The engine acts on the returned channels only; when a channel is refused the
    ones before it are still returned (Faye's partial success) and ``reply`` is a
    failure naming the first refused channel.
    """
    client_id = message.get("clientId")
    subscription = message.get("subscription")
    given = js_truthy(subscription)
    reply["subscription"] = subscription if given else []
    if not exists:
        _fail(reply, errors.client_unknown(client_id))
    if not js_truthy(client_id):
        _fail(reply, errors.parameter_missing("clientId"))
    if not given:
        _fail(reply, errors.parameter_missing("subscription"))
    if not reply["successful"]:
        return None
    return subscription if isinstance(subscription, list) else [subscription]


def check_channels(
    requested: list[Any],
    reply: Message,
    local: bool,
    limits: channels.ChannelLimits = DEFAULT_LIMITS,
) -> list[str]:
    """The leading run of channels a client may (un)subscribe; records the first refusal.

    A name past the limits is invalid (405) before any grammar work is done on it.
    """
    accepted: list[str] = []
    for channel in requested:
        error: str | None = None
        # 405 wins over 403 for the same channel, as in Faye.
        if not limits.allow(channel) or not channels.is_valid(channel):
            error = errors.channel_invalid(channel)
        elif not local and not channels.is_subscribable(channel):
            error = errors.channel_forbidden(channel)
        if error is not None:
            _fail(reply, error)
            break
        accepted.append(channel)
    return accepted


def check_publish(
    message: Message, reply: Message, limits: channels.ChannelLimits = DEFAULT_LIMITS
) -> bool:
    channel = message.get("channel")
    if not limits.allow(channel) or not channels.is_name(channel):
        _fail(reply, errors.channel_invalid(channel))
    if "data" not in message:
        _fail(reply, errors.parameter_missing("data"))
    return bool(reply["successful"])


def forbid_unknown_meta(reply: Message, channel: str) -> None:
    """Meta dispatch is by exact name; ``/meta/subscribe/x`` must never subscribe."""
    _fail(reply, errors.channel_forbidden(channel))


def add_advice(reply: Message, timeout_ms: int, interval_ms: int, connection_type: Any) -> None:
    """Advice is only for handshake and connect replies; failures say: handshake again."""
    if reply.get("channel") not in (channels.HANDSHAKE, channels.CONNECT):
        return
    if not reply.get("successful"):
        reply["advice"] = {"reconnect": "handshake"}
    elif connection_type == "eventsource":
        reply["advice"] = {"reconnect": "retry", "interval": timeout_ms, "timeout": 0}
    else:
        reply["advice"] = {"reconnect": "retry", "interval": interval_ms, "timeout": timeout_ms}


def requested_hold(message: Message, default: float) -> float:
    """Seconds to hold a connect: the client's ``advice.timeout`` (ms) if given.

    Faye and CometD clients send ``timeout: 0`` on batched and first connects and
    expect an immediate answer. Eventsource connects are never held.
    """
    if message.get("connectionType") == "eventsource":
        return 0.0
    advice = message.get("advice")
    if isinstance(advice, dict) and "timeout" in advice:
        value = advice["timeout"]
        if value is None:
            return 0.0
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return min(float(value) / 1000.0, default * 4)
        return default
    return default

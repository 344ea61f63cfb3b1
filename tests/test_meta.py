"""The pure rules in faye.protocol.meta and faye.protocol.errors (spec §1.2-§1.12)."""

from __future__ import annotations

from typing import Any

import pytest

from faye.protocol import errors, meta
from faye.protocol.meta import (
    CONNECTION_TYPES,
    add_advice,
    check_channels,
    check_connect,
    check_disconnect,
    check_handshake,
    check_publish,
    check_subscription,
    forbid_unknown_meta,
    reply_skeleton,
    requested_hold,
)

ALL_TYPES = [
    "long-polling",
    "cross-origin-long-polling",
    "callback-polling",
    "websocket",
    "eventsource",
    "in-process",
]
EXT_ERROR = "invalid"


def skel(message: dict[str, Any]) -> dict[str, Any]:
    return reply_skeleton(message)


# -- errors ----------------------------------------------------------------------------------


def test_error_rendering() -> None:
    assert errors.client_unknown("abc") == "401:abc:Unknown client"
    assert errors.parameter_missing("data") == "402:data:Missing required parameter"
    assert errors.conntype_mismatch(["iframe", "flash"]) == (
        "301:iframe,flash:Connection types not supported"
    )
    assert errors.conntype_mismatch([]) == "301::Connection types not supported"
    assert errors.conntype_mismatch(None) == "301::Connection types not supported"
    assert errors.channel_forbidden("/meta/p") == "403:/meta/p:Forbidden channel"
    assert errors.channel_invalid(None) == "405::Invalid channel"
    assert errors.server_error("EngineError") == "500:EngineError:Internal server error"
    assert errors.render(errors.PUBLISH_FAILED, "/a") == "407:/a:Failed to publish"
    assert errors.client_unknown(12) == "401:12:Unknown client"


# -- reply skeleton ----------------------------------------------------------------------------


def test_skeleton_copies_only_id_client_channel_error() -> None:
    message = {
        "id": "7",
        "clientId": "c",
        "channel": "/a",
        "data": 1,
        "ext": {"x": 1},
        "advice": {"timeout": 0},
        "version": "1.0",
        "other": True,
    }
    assert skel(message) == {"id": "7", "clientId": "c", "channel": "/a", "successful": True}


def test_skeleton_extension_error_makes_it_unsuccessful() -> None:
    assert skel({"channel": "/a", "error": EXT_ERROR}) == {
        "channel": "/a",
        "error": EXT_ERROR,
        "successful": False,
    }


@pytest.mark.parametrize("falsy", [0, "", None, False])
def test_skeleton_skips_falsy_fields(falsy: Any) -> None:
    """Faye's _makeResponse copies each field only `if (message[field])` (JS truthiness)."""
    message = {"id": falsy, "clientId": falsy, "channel": falsy, "error": falsy}
    assert skel(message) == {"successful": True}


def test_skeleton_empty_message() -> None:
    assert skel({}) == {"successful": True}


def test_js_truthy() -> None:
    for value in (None, False, 0, 0.0, "", float("nan")):
        assert not meta.js_truthy(value), value
    for value in ([], {}, "0", 1, -1, True, "x", [0]):
        assert meta.js_truthy(value), value


# -- handshake ---------------------------------------------------------------------------------


def handshake(**fields: Any) -> dict[str, Any]:
    return {"channel": "/meta/handshake", **fields}


def test_handshake_valid() -> None:
    msg = handshake(version="1.0", supportedConnectionTypes=["long-polling"], id="foo")
    reply = skel(msg)
    assert check_handshake(msg, reply) is True
    assert reply == {
        "id": "foo",
        "channel": "/meta/handshake",
        "successful": True,
        "version": "1.0",
        "supportedConnectionTypes": ALL_TYPES,
    }
    assert list(CONNECTION_TYPES) == ALL_TYPES


def test_handshake_version_value_is_not_compared() -> None:
    msg = handshake(version="99.banana", supportedConnectionTypes=["websocket"])
    assert check_handshake(msg, skel(msg)) is True


def test_handshake_reply_lists_every_type_not_the_intersection() -> None:
    msg = handshake(version="1.0", supportedConnectionTypes=["websocket", "iframe"])
    reply = skel(msg)
    assert check_handshake(msg, reply)
    assert reply["supportedConnectionTypes"] == ALL_TYPES


@pytest.mark.parametrize("version", [None, ""])
def test_handshake_missing_version(version: Any) -> None:
    msg = handshake(supportedConnectionTypes=["long-polling"])
    if version is not None:
        msg["version"] = version
    reply = skel(msg)
    assert check_handshake(msg, reply) is False
    assert reply == {
        "channel": "/meta/handshake",
        "successful": False,
        "error": "402:version:Missing required parameter",
        "version": "1.0",
        "supportedConnectionTypes": ALL_TYPES,
    }


def test_handshake_missing_connection_types() -> None:
    msg = handshake(version="1.0")
    reply = skel(msg)
    assert not check_handshake(msg, reply)
    assert reply["error"] == "402:supportedConnectionTypes:Missing required parameter"
    assert reply["version"] == "1.0"
    assert reply["supportedConnectionTypes"] == ALL_TYPES


def test_handshake_unsupported_connection_types() -> None:
    msg = handshake(version="1.0", supportedConnectionTypes=["iframe", "flash"])
    reply = skel(msg)
    assert not check_handshake(msg, reply)
    assert reply["error"] == "301:iframe,flash:Connection types not supported"


def test_handshake_empty_connection_type_list() -> None:
    msg = handshake(version="1.0", supportedConnectionTypes=[])
    reply = skel(msg)
    assert not check_handshake(msg, reply)
    assert reply["error"] == "301::Connection types not supported"


def test_handshake_last_check_wins() -> None:
    """Missing version then bad types: the connection-type error (checked last) wins."""
    msg = handshake(supportedConnectionTypes=["flash"])
    reply = skel(msg)
    assert not check_handshake(msg, reply)
    assert reply["error"] == "301:flash:Connection types not supported"
    msg = handshake()
    reply = skel(msg)
    check_handshake(msg, reply)
    assert reply["error"] == "402:supportedConnectionTypes:Missing required parameter"


def test_handshake_extension_error_is_weakest() -> None:
    ok = handshake(version="1.0", supportedConnectionTypes=["long-polling"], error=EXT_ERROR)
    reply = skel(ok)
    assert check_handshake(ok, reply) is False
    assert reply["error"] == EXT_ERROR
    assert reply["version"] == "1.0"
    assert reply["supportedConnectionTypes"] == ALL_TYPES
    bad = handshake(supportedConnectionTypes=["long-polling"], error=EXT_ERROR)
    reply = skel(bad)
    check_handshake(bad, reply)
    assert reply["error"] == "402:version:Missing required parameter"


# -- connect -----------------------------------------------------------------------------------


def connect(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channel": "/meta/connect",
        "clientId": "fakeclientid",
        "connectionType": "long-polling",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def test_connect_valid_keeps_client_id() -> None:
    msg = connect(id="foo")
    reply = skel(msg)
    assert check_connect(msg, reply, exists=True) is True
    assert reply == {
        "channel": "/meta/connect",
        "clientId": "fakeclientid",
        "id": "foo",
        "successful": True,
    }


@pytest.mark.parametrize("connection_type", ALL_TYPES)
def test_connect_accepts_every_server_type(connection_type: str) -> None:
    msg = connect(connectionType=connection_type)
    assert check_connect(msg, skel(msg), exists=True)


def test_connect_unknown_client_drops_client_id() -> None:
    msg = connect()
    reply = skel(msg)
    assert check_connect(msg, reply, exists=False) is False
    assert reply == {
        "channel": "/meta/connect",
        "successful": False,
        "error": "401:fakeclientid:Unknown client",
    }


def test_connect_missing_client_id() -> None:
    msg = connect(clientId=None)
    reply = skel(msg)
    assert not check_connect(msg, reply, exists=False)
    assert reply["error"] == "402:clientId:Missing required parameter"


def test_connect_missing_connection_type_beats_everything() -> None:
    """(e) > (d) > (c) > (b) > (a): missing connectionType wins over all other errors."""
    msg = connect(clientId=None, connectionType=None, error=EXT_ERROR)
    reply = skel(msg)
    assert not check_connect(msg, reply, exists=False)
    assert reply["error"] == "402:connectionType:Missing required parameter"
    assert "clientId" not in reply


def test_connect_unsupported_type() -> None:
    msg = connect(connectionType="flash")
    reply = skel(msg)
    assert not check_connect(msg, reply, exists=True)
    assert reply["error"] == "301:flash:Connection types not supported"
    assert "clientId" not in reply


def test_connect_bad_type_beats_unknown_client() -> None:
    msg = connect(connectionType="flash")
    reply = skel(msg)
    check_connect(msg, reply, exists=False)
    assert reply["error"] == "301:flash:Connection types not supported"


def test_connect_missing_client_beats_unknown_and_extension_error() -> None:
    msg = connect(clientId=None, error=EXT_ERROR)
    reply = skel(msg)
    check_connect(msg, reply, exists=False)
    assert reply["error"] == "402:clientId:Missing required parameter"


def test_connect_extension_error_alone() -> None:
    msg = connect(error=EXT_ERROR)
    reply = skel(msg)
    assert check_connect(msg, reply, exists=True) is False
    assert reply == {"channel": "/meta/connect", "successful": False, "error": EXT_ERROR}


def test_connect_unknown_client_beats_extension_error() -> None:
    msg = connect(error=EXT_ERROR)
    reply = skel(msg)
    check_connect(msg, reply, exists=False)
    assert reply["error"] == "401:fakeclientid:Unknown client"


# -- disconnect --------------------------------------------------------------------------------


def disconnect(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"channel": "/meta/disconnect", "clientId": "fakeclientid"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def test_disconnect_valid() -> None:
    msg = disconnect(id="9")
    reply = skel(msg)
    assert check_disconnect(msg, reply, exists=True)
    assert reply == {
        "channel": "/meta/disconnect",
        "clientId": "fakeclientid",
        "id": "9",
        "successful": True,
    }


def test_disconnect_unknown_client() -> None:
    msg = disconnect()
    reply = skel(msg)
    assert not check_disconnect(msg, reply, exists=False)
    assert reply == {
        "channel": "/meta/disconnect",
        "successful": False,
        "error": "401:fakeclientid:Unknown client",
    }


def test_disconnect_missing_client_id_beats_unknown() -> None:
    msg = disconnect(clientId=None, error=EXT_ERROR)
    reply = skel(msg)
    assert not check_disconnect(msg, reply, exists=False)
    assert reply["error"] == "402:clientId:Missing required parameter"


def test_disconnect_extension_error() -> None:
    msg = disconnect(error=EXT_ERROR)
    reply = skel(msg)
    assert not check_disconnect(msg, reply, exists=True)
    assert reply == {"channel": "/meta/disconnect", "successful": False, "error": EXT_ERROR}


# -- subscribe / unsubscribe -------------------------------------------------------------------


def sub(channel: str = "/meta/subscribe", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"channel": channel, "clientId": "fakeclientid", "subscription": "/foo"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(params=["/meta/subscribe", "/meta/unsubscribe"])
def sub_channel(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_subscription_string_echo(sub_channel: str) -> None:
    msg = sub(sub_channel)
    reply = skel(msg)
    assert check_subscription(msg, reply, exists=True) == ["/foo"]
    assert check_channels(["/foo"], reply, local=False) == ["/foo"]
    assert reply == {
        "channel": sub_channel,
        "clientId": "fakeclientid",
        "subscription": "/foo",
        "successful": True,
    }


def test_subscription_list_echo(sub_channel: str) -> None:
    msg = sub(sub_channel, subscription=["/foo", "/bar"])
    reply = skel(msg)
    assert check_subscription(msg, reply, exists=True) == ["/foo", "/bar"]
    assert reply["subscription"] == ["/foo", "/bar"]


def test_subscription_unknown_client_keeps_client_id(sub_channel: str) -> None:
    msg = sub(sub_channel)
    reply = skel(msg)
    assert check_subscription(msg, reply, exists=False) is None
    assert reply == {
        "channel": sub_channel,
        "successful": False,
        "error": "401:fakeclientid:Unknown client",
        "clientId": "fakeclientid",
        "subscription": "/foo",
    }


def test_subscription_missing_client_id(sub_channel: str) -> None:
    msg = sub(sub_channel, clientId=None)
    reply = skel(msg)
    assert check_subscription(msg, reply, exists=False) is None
    assert reply["error"] == "402:clientId:Missing required parameter"
    assert reply["subscription"] == "/foo"
    assert "clientId" not in reply


def test_subscription_missing_subscription_wins(sub_channel: str) -> None:
    msg = sub(sub_channel, subscription=None, clientId=None, error=EXT_ERROR)
    reply = skel(msg)
    assert check_subscription(msg, reply, exists=False) is None
    assert reply["error"] == "402:subscription:Missing required parameter"
    assert reply["subscription"] == []


def test_subscription_missing_subscription_keeps_client(sub_channel: str) -> None:
    msg = sub(sub_channel, subscription=None)
    reply = skel(msg)
    assert check_subscription(msg, reply, exists=True) is None
    assert reply["clientId"] == "fakeclientid"
    assert reply["subscription"] == []


def test_subscription_empty_string_is_missing(sub_channel: str) -> None:
    """Faye tests `!message.subscription`: "" is missing and echoed as []."""
    msg = sub(sub_channel, subscription="")
    reply = skel(msg)
    assert check_subscription(msg, reply, exists=True) is None
    assert reply["error"] == "402:subscription:Missing required parameter"
    assert reply["subscription"] == []


def test_subscription_empty_list_succeeds(sub_channel: str) -> None:
    """`[]` is truthy in JS: no 402, nothing to do, successful."""
    msg = sub(sub_channel, subscription=[])
    reply = skel(msg)
    assert check_subscription(msg, reply, exists=True) == []
    assert check_channels([], reply, local=False) == []
    assert reply["successful"] is True
    assert reply["subscription"] == []


def test_subscription_extension_error_does_nothing(sub_channel: str) -> None:
    msg = sub(sub_channel, error=EXT_ERROR)
    reply = skel(msg)
    assert check_subscription(msg, reply, exists=True) is None
    assert reply == {
        "channel": sub_channel,
        "successful": False,
        "error": EXT_ERROR,
        "clientId": "fakeclientid",
        "subscription": "/foo",
    }


def _channels_reply(requested: list[Any], local: bool) -> tuple[list[str], dict[str, Any]]:
    reply = skel(sub())
    return check_channels(requested, reply, local), reply


def test_check_channels_invalid() -> None:
    accepted, reply = _channels_reply(["foo"], local=False)
    assert accepted == []
    assert reply["error"] == "405:foo:Invalid channel"
    assert reply["successful"] is False


def test_check_channels_invalid_beats_forbidden() -> None:
    """`/meta/**/x` is neither subscribable nor valid: 405 overrides 403 for one channel."""
    _, reply = _channels_reply(["/meta/**/x"], local=False)
    assert reply["error"] == "405:/meta/**/x:Invalid channel"


@pytest.mark.parametrize("channel", ["/meta/foo", "/meta/**", "/service/x", "/service/**"])
def test_check_channels_forbidden_for_remote(channel: str) -> None:
    accepted, reply = _channels_reply([channel], local=False)
    assert accepted == []
    assert reply["error"] == f"403:{channel}:Forbidden channel"


@pytest.mark.parametrize("channel", ["/meta/foo", "/meta/**", "/service/x", "/service/**"])
def test_check_channels_allowed_for_local(channel: str) -> None:
    accepted, reply = _channels_reply([channel], local=True)
    assert accepted == [channel]
    assert reply["successful"] is True


def test_check_channels_local_still_needs_valid_channels() -> None:
    accepted, reply = _channels_reply(["/a", "nope", "/b"], local=True)
    assert accepted == ["/a"]
    assert reply["error"] == "405:nope:Invalid channel"


def test_check_channels_stops_at_first_refusal() -> None:
    accepted, reply = _channels_reply(["/a", "/meta/x", "/b", "bad"], local=False)
    assert accepted == ["/a"]
    assert reply["error"] == "403:/meta/x:Forbidden channel"


@pytest.mark.parametrize("channel", ["/**", "/*", "/foo/**", "/foo/*"])
def test_check_channels_wildcards_allowed(channel: str) -> None:
    accepted, reply = _channels_reply([channel], local=False)
    assert accepted == [channel]
    assert reply["successful"]


def test_check_channels_non_string() -> None:
    accepted, reply = _channels_reply([5], local=False)
    assert accepted == []
    assert reply["error"] == "405:5:Invalid channel"


# -- publish -----------------------------------------------------------------------------------


def test_publish_valid_with_and_without_client_id() -> None:
    msg = {"channel": "/some/channel", "data": "publish"}
    reply = skel(msg)
    assert check_publish(msg, reply)
    assert reply == {"channel": "/some/channel", "successful": True}
    msg = {"channel": "/a", "data": 1, "clientId": "whoever", "id": "3", "ext": {"a": 1}}
    reply = skel(msg)
    assert check_publish(msg, reply)
    assert reply == {"channel": "/a", "successful": True, "clientId": "whoever", "id": "3"}


def test_publish_data_null_is_accepted() -> None:
    msg = {"channel": "/a", "data": None}
    assert check_publish(msg, skel(msg))


@pytest.mark.parametrize("channel", ["channel", "/invalid/*", "/a/**", None, "", 7])
def test_publish_invalid_channel(channel: Any) -> None:
    msg = {"channel": channel, "data": "x"}
    reply = skel(msg)
    assert not check_publish(msg, reply)
    rendered = "" if channel is None else str(channel)
    assert reply["error"] == f"405:{rendered}:Invalid channel"


def test_publish_missing_data_beats_invalid_channel() -> None:
    msg = {"channel": "channel", "error": EXT_ERROR}
    reply = skel(msg)
    assert not check_publish(msg, reply)
    assert reply == {
        "channel": "channel",
        "successful": False,
        "error": "402:data:Missing required parameter",
    }


def test_publish_extension_error_alone() -> None:
    msg = {"channel": "/a", "data": 1, "error": EXT_ERROR}
    reply = skel(msg)
    assert not check_publish(msg, reply)
    assert reply["error"] == EXT_ERROR


def test_publish_empty_message() -> None:
    reply = skel({})
    assert not check_publish({}, reply)
    assert reply == {"successful": False, "error": "402:data:Missing required parameter"}


def test_forbid_unknown_meta() -> None:
    reply = skel({"channel": "/meta/p", "id": "1"})
    forbid_unknown_meta(reply, "/meta/p")
    assert reply == {
        "channel": "/meta/p",
        "id": "1",
        "successful": False,
        "error": "403:/meta/p:Forbidden channel",
    }


# -- advice ------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["/meta/handshake", "/meta/connect"])
def test_advice_success(channel: str) -> None:
    reply = {"channel": channel, "successful": True}
    add_advice(reply, timeout_ms=60000, interval_ms=0, connection_type="long-polling")
    assert reply["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 60000}


@pytest.mark.parametrize("channel", ["/meta/handshake", "/meta/connect"])
def test_advice_failure_is_handshake_only(channel: str) -> None:
    reply = {"channel": channel, "successful": False, "error": "x"}
    add_advice(reply, timeout_ms=60000, interval_ms=0, connection_type="eventsource")
    assert reply["advice"] == {"reconnect": "handshake"}


def test_advice_eventsource() -> None:
    reply = {"channel": "/meta/connect", "successful": True}
    add_advice(reply, timeout_ms=45000, interval_ms=300, connection_type="eventsource")
    assert reply["advice"] == {"reconnect": "retry", "interval": 45000, "timeout": 0}


@pytest.mark.parametrize(
    "channel", ["/meta/subscribe", "/meta/unsubscribe", "/meta/disconnect", "/meta/p", "/a", None]
)
def test_no_advice_elsewhere(channel: Any) -> None:
    for successful in (True, False):
        reply = {"channel": channel, "successful": successful}
        add_advice(reply, timeout_ms=1, interval_ms=1, connection_type=None)
        assert "advice" not in reply


# -- hold time ---------------------------------------------------------------------------------


def hold(message: dict[str, Any], default: float = 30.0) -> float:
    return requested_hold({"channel": "/meta/connect", **message}, default)


def test_hold_defaults_to_server_timeout() -> None:
    assert hold({}) == 30.0
    assert hold({"advice": {}}) == 30.0
    assert hold({"advice": None}) == 30.0
    assert hold({"advice": {"interval": 5}}) == 30.0


def test_hold_from_advice_milliseconds() -> None:
    assert hold({"advice": {"timeout": 1500}}) == pytest.approx(1.5)
    assert hold({"advice": {"timeout": 0}}) == 0.0
    assert hold({"advice": {"timeout": 0.0}}) == 0.0


def test_hold_null_timeout_means_zero() -> None:
    """JS tests `timeout !== undefined`, so null / 1000 = 0."""
    assert hold({"advice": {"timeout": None}}) == 0.0


def test_hold_clamped_to_four_times_server_timeout() -> None:
    """OUR deviation: Faye does not clamp; we cap the hold at 4 x the server timeout."""
    assert hold({"advice": {"timeout": 10_000_000}}, default=2.0) == 8.0
    assert hold({"advice": {"timeout": 7999}}, default=2.0) == pytest.approx(7.999)


@pytest.mark.parametrize("bad", ["500", True, -5, [1], {"a": 1}])
def test_hold_ignores_unusable_values(bad: Any) -> None:
    """OUR choice: a non-numeric or negative advice.timeout falls back to the server timeout."""
    assert hold({"advice": {"timeout": bad}}) == 30.0


def test_hold_eventsource_is_zero() -> None:
    assert hold({"connectionType": "eventsource"}) == 0.0
    assert hold({"connectionType": "eventsource", "advice": {"timeout": 5000}}) == 0.0


@pytest.mark.parametrize("offered", ["", None, 0, False])
def test_handshake_falsy_connection_types_are_missing(offered: Any) -> None:
    """Faye tests `if (message.supportedConnectionTypes)`: a falsy value is a 402, not a 301."""
    msg = handshake(version="1.0", supportedConnectionTypes=offered)
    reply = skel(msg)
    assert not check_handshake(msg, reply)
    assert reply["error"] == "402:supportedConnectionTypes:Missing required parameter"

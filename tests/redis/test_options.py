"""Option parsing and rejection, URL parsing, key layout: no Redis needed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from redis.crc import key_slot

from faye.adapter import resolve_engine
from faye.proxy import EngineProxy
from faye.redis import Keys, RedisEngine, RedisOptions, SSLOptions


def test_defaults_are_the_seeds() -> None:
    o = RedisOptions.parse({})
    assert (o.host, o.port, o.database, o.password, o.username) == (
        "localhost",
        6379,
        0,
        None,
        None,
    )
    assert (o.pool_size, o.pool_timeout) == (5, 5.0)
    assert (o.connect_timeout, o.read_timeout, o.write_timeout) == (1.0, 1.0, 1.0)
    assert (o.max_retries, o.retry_delay) == (3, 1.0)
    assert o.stall_timeout == 10.0  # a publish waits out a Redis stall this long
    assert o.client_timeout is None
    assert (o.message_ttl, o.subscription_ttl, o.gc_interval) == (3600.0, 3600.0, 60.0)
    assert (o.log_level, o.namespace, o.max_queue) == ("info", "faye", 1000)
    assert o.ssl == SSLOptions(enabled=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hots": "x"}, "unknown Redis engine option"),
        ({"port": 0}, "port"),
        ({"port": "http"}, "port"),
        ({"database": -1}, "database"),
        ({"pool_size": 0}, "pool_size"),
        ({"pool_timeout": -1}, "pool_timeout"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"read_timeout": "soon"}, "read_timeout"),
        ({"write_timeout": float("nan")}, "write_timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"retry_delay": -0.5}, "retry_delay"),
        ({"stall_timeout": -1}, "stall_timeout"),
        ({"stall_timeout": "long"}, "stall_timeout"),
        ({"client_timeout": -3}, "client_timeout"),
        ({"message_ttl": 0}, "message_ttl"),
        ({"subscription_ttl": -1}, "subscription_ttl"),
        ({"gc_interval": -5}, "gc_interval"),
        ({"log_level": "loud"}, "log_level"),
        ({"namespace": ""}, "namespace"),
        ({"namespace": "a{b}"}, "namespace"),
        ({"namespace": "a:b"}, "namespace"),
        ({"max_queue": 0}, "max_queue"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"partitions": 0}, "partitions"),
        ({"ssl": {"cert_file": "c.pem"}}, "enabled"),
        ({"ssl": {"enabled": "yes"}}, "enabled"),
        ({"ssl": {"enabled": False, "ca_file": "ca.pem"}}, "enabled is false"),
        ({"ssl": {"enabled": True, "cert_file": "c.pem"}}, "cert_file and key_file"),
        ({"ssl": {"enabled": True, "verify": False}}, "unknown key"),
        ({"ssl": "on"}, "ssl"),
        ({"url": "http://localhost"}, "scheme"),
        ({"url": "redis://localhost/zero"}, "database"),
        ({"host": 5}, "host"),
    ],
)
def test_nonsense_is_rejected_with_the_options_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisOptions.parse(options)


@pytest.mark.parametrize("value", [0, False, None, "0", "false", "none"])
def test_gc_can_be_disabled(value: Any) -> None:
    assert not RedisOptions.parse({"gc_interval": value}).gc_enabled


def test_url_overrides_connection_options() -> None:
    o = RedisOptions.parse(
        {"host": "h", "port": 1, "url": "redis://alice:p%40ss@redis.example:6380/4"}
    )
    assert (o.host, o.port, o.database) == ("redis.example", 6380, 4)
    assert (o.username, o.password) == ("alice", "p@ss")
    assert not o.ssl.enabled


def test_url_forms() -> None:
    o = RedisOptions.parse({"url": "rediss://:secret@10.0.0.1"})
    assert (o.host, o.port, o.database, o.username, o.password) == (
        "10.0.0.1",
        6379,
        0,
        None,
        "secret",
    )
    assert o.ssl.enabled
    tls = RedisOptions.parse({"url": "rediss://h", "ssl": {"enabled": True, "ca_file": "ca.pem"}})
    assert tls.ssl == SSLOptions(enabled=True, ca_file="ca.pem")
    assert RedisOptions.parse({"url": "redis://h?db=7"}).database == 7


def test_command_line_strings_are_understood() -> None:
    o = RedisOptions.parse(
        {"port": "6380", "gc_interval": "1.5", "subscription_ttl": "none", "pool_size": "7"}
    )
    assert (o.port, o.gc_interval, o.subscription_ttl, o.pool_size) == (6380, 1.5, None, 7)


def test_liveness_follows_the_server_timeout_unless_client_timeout_is_set() -> None:
    assert RedisOptions.parse({}).liveness(10) == (16.0, 20.0)
    assert RedisOptions.parse({"client_timeout": 45}).liveness(10) == (45.0, 45.0)


class _Host:
    timeout = 60.0

    def has_connection(self, client_id: str) -> bool:
        return False

    def deliver(self, client_id: str, messages: Any) -> bool:
        return False

    def on_close(self, client_id: str) -> None:
        pass

    async def destroy_client(self, client_id: str) -> None:
        pass


def test_engine_rejects_a_subscription_ttl_shorter_than_the_gc_window() -> None:
    with pytest.raises(ValueError, match="subscription_ttl"):
        RedisEngine.create(_Host(), {"subscription_ttl": 100})  # collected after 120 s
    RedisEngine.create(_Host(), {"subscription_ttl": None})
    RedisEngine.create(_Host(), {"subscription_ttl": 120})


def test_engine_rejects_unknown_options_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown Redis engine option"):
        RedisEngine.create(_Host(), {"hostname": "x"})


def test_adapter_selects_the_engine_by_url_name_or_class() -> None:
    import faye

    for spec in (
        "redis://127.0.0.1:1/0",
        {"type": "redis", "url": "redis://127.0.0.1:1/0"},
        {"type": faye.Redis, "host": "127.0.0.1", "port": 1},
    ):
        factory, options = resolve_engine(spec)
        proxy = EngineProxy(factory, options, timeout=5)
        assert isinstance(proxy.backend, RedisEngine)
        assert proxy.backend.config.port == 1


def test_log_level_silences_an_engine(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="faye.redis")
    quiet = RedisEngine.create(_Host(), {"log_level": "silent"})
    loud = RedisEngine.create(_Host(), {"log_level": "debug"})
    quiet.log.error("hidden")
    loud.log.debug("shown")
    assert [r.getMessage() for r in caplog.records] == ["shown"]


def test_keys_of_one_client_share_one_cluster_slot() -> None:
    keys = Keys("faye", partitions=8)
    client_id = "abc123"
    p = keys.partition(client_id)
    assert keys.partition(client_id) == p  # stable
    names = [
        keys.clients(p),
        keys.servers(p),
        keys.owner(p),
        keys.subscriptions(p, client_id),
        keys.channel(p, "/foo/**"),
        keys.queue(p, client_id),
        keys.in_flight(p, client_id, "server-1"),
        keys.flights(p, client_id),
        keys.flying(p, "server-1"),
        keys.notify_channel(p, "server-1"),
        keys.close_channel(p),
    ]
    assert all(name.startswith(f"faye:{{{p}}}:") for name in names)
    assert len({key_slot(name.encode()) for name in names}) == 1
    assert {Keys("faye").partition(f"c{n}") for n in range(50)} == {0}
    assert len({keys.partition(f"c{n}") for n in range(200)}) == 8

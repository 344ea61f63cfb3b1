"""What a publisher refuses, and how it fails when Redis is not there or does not answer.

Redis being unreachable is caused for real: a loopback port nobody listens on (refused at
once), and a socket that accepts connections and never answers (a hung Redis).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from faye.redis import ChannelError, Publisher, PublishError, SyncPublisher
from tests.support.redis_server import free_port

# stall_timeout 0: fail at once instead of waiting out what could be a short stall.
FAST = {"connect_timeout": 0.5, "read_timeout": 0.5, "pool_timeout": 0.5, "stall_timeout": 0}


@pytest.fixture
def refused_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A listening socket that accepts and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


async def test_an_unreachable_redis_is_a_publish_error_at_once(refused_url: str) -> None:
    async with Publisher({"url": refused_url, **FAST}) as publisher:
        started = time.monotonic()
        with pytest.raises(PublishError, match="unreachable") as caught:
            await publisher.publish("/a", 1)
        assert time.monotonic() - started < 1.5
        assert caught.value.failed == (0,)
        with pytest.raises(PublishError) as caught:
            await publisher.publish_many([("/a", 1), ("/b", 2)])
        assert caught.value.failed == (0, 1)


def test_the_sync_publisher_fails_the_same_way(refused_url: str) -> None:
    with SyncPublisher({"url": refused_url, **FAST}) as publisher:
        started = time.monotonic()
        with pytest.raises(PublishError, match="unreachable"):
            publisher.publish("/a", 1)
        assert time.monotonic() - started < 1.5


async def test_a_redis_that_never_answers_is_a_publish_error_in_bounded_time(
    silent_url: str,
) -> None:
    async with Publisher({"url": silent_url, **FAST}) as publisher:
        started = time.monotonic()
        with pytest.raises(PublishError, match="in time"):
            await publisher.publish("/a", 1)
        assert time.monotonic() - started < 2  # read_timeout, not wait_limit


def test_a_hung_redis_does_not_hang_a_sync_caller(silent_url: str) -> None:
    publisher = SyncPublisher({"url": silent_url, **FAST})
    started = time.monotonic()
    with pytest.raises(PublishError):
        publisher.publish("/a", 1)
    assert time.monotonic() - started < publisher.wait_limit
    publisher.close()


BAD_CHANNELS: list[tuple[Any, str]] = [
    ("/meta/connect", "/meta"),
    ("/meta/subscribe", "/meta"),
    ("/meta", "/meta"),
    ("/chat/*", "wildcard"),
    ("/chat/**", "wildcard"),
    ("/**", "wildcard"),
    ("chat", "not a channel name"),
    ("", "not a channel name"),
    ("/", "not a channel name"),
    ("/chat/", "not a channel name"),
    ("/chat room", "not a channel name"),
    ("/chat/*/x", "not a channel name"),
    (None, "string"),
    (7, "string"),
]


@pytest.mark.parametrize(("channel", "why"), BAD_CHANNELS)
async def test_channels_are_checked_before_any_io(refused_url: str, channel: Any, why: str) -> None:
    """Against an unreachable Redis: the channel error comes first, not a PublishError."""
    async with Publisher(refused_url) as publisher:
        with pytest.raises(ChannelError, match=why):
            await publisher.publish(channel, 1)
        with pytest.raises(ChannelError, match=why):
            await publisher.publish_many([("/fine", 1), (channel, 2)])
    with SyncPublisher(refused_url) as sync:
        with pytest.raises(ChannelError, match=why):
            sync.publish(channel, 1)
        assert sync._thread is None  # nothing was started for it


async def test_data_json_cannot_carry_is_a_type_error(refused_url: str) -> None:
    async with Publisher(refused_url) as publisher:
        with pytest.raises(TypeError):
            await publisher.publish("/a", {"when": object()})
    with SyncPublisher(refused_url) as sync, pytest.raises(TypeError):
        sync.publish("/a", {1, 2})


def test_options_are_the_engines() -> None:
    spec = {"type": "redis", "url": "redis://10.0.0.5:6380/2", "namespace": "app", "partitions": 4}
    publisher = Publisher(spec)
    assert publisher.namespace == "app"
    assert publisher.engine.config.port == 6380
    assert publisher.engine.keys.partitions == 4
    assert Publisher("redis://x:1/0", namespace="other").namespace == "other"
    with pytest.raises(ValueError, match="not 'memory'"):
        Publisher({"type": "memory"})
    with pytest.raises(ValueError, match="unknown Redis engine option"):
        Publisher({"hots": "x"})
    with pytest.raises(ValueError, match="pool_size"):
        SyncPublisher({"pool_size": 0})
    assert Publisher("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").engine.config.mode == (
        "cluster"
    )
    sentinel = Publisher("redis+sentinel://127.0.0.1:26379/mymaster")
    assert sentinel.engine.config.mode == "sentinel"


def test_a_publisher_belongs_to_one_event_loop(refused_url: str) -> None:
    publisher = Publisher({"url": refused_url, **FAST})

    async def publish() -> None:
        await publisher.publish("/a", 1)

    with pytest.raises(PublishError):
        asyncio.run(publish())
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(publish())


async def test_a_closed_publisher_refuses(refused_url: str) -> None:
    publisher = Publisher(refused_url)
    await publisher.close()
    with pytest.raises(PublishError, match="closed"):
        await publisher.publish("/a", 1)
    sync = SyncPublisher(refused_url)
    sync.close()
    with pytest.raises(PublishError, match="closed"):
        sync.publish("/a", 1)
    sync.close()  # twice is fine


def test_a_publish_waits_out_a_short_stall() -> None:
    """SIGSTOP stops a real redis-server for 1.5 s: the publish, sent while it is stopped,
    completes after SIGCONT instead of failing (that its copies queue the message once
    is the engine's token, tested in tests/redis/test_faults.py)."""
    import signal
    import threading

    from tests.support.redis_server import running_redis

    with running_redis() as server:
        assert server.process is not None
        options = {**FAST, "read_timeout": 0.3, "write_timeout": 0.3, "stall_timeout": 5.0}
        with SyncPublisher({"url": server.url, **options}, namespace="stall") as publisher:
            publisher.publish("/warm", 0)  # connections and the function library in place
            server.process.send_signal(signal.SIGSTOP)
            resume = threading.Timer(1.5, server.process.send_signal, (signal.SIGCONT,))
            resume.start()
            try:
                started = time.monotonic()
                publisher.publish("/a", 1)
                waited = time.monotonic() - started
            finally:
                resume.join()
        assert 1.2 < waited < 5.0

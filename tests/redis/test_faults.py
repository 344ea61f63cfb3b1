"""Redis outages, credentials and TLS, on private redis-server processes."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from faye.engine import EngineError
from faye.server import Server
from tests.redis.conftest import Fleet, engine_of
from tests.support.engines import attach, data
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for

FAST = {
    "retry_delay": 0.05,
    "max_retries": 2,
    "connect_timeout": 0.5,
    "read_timeout": 0.5,
    "write_timeout": 0.5,
    "heartbeat_interval": 0.2,
    # A publish waits this long through an outage before it fails.
    "stall_timeout": 1.0,
}


#: The outage tests run on both key layouts (the ``layout`` option).
LAYOUTS = pytest.mark.parametrize("layout", [1, 2], ids=["layout1", "layout2"])


def fast(layout: int) -> dict[str, Any]:
    return {**FAST, "layout": layout}


async def eventually(action: Any, timeout: float = 10.0) -> Any:
    """Retry an engine call until Redis answers again."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await action()
        except EngineError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always").start()
    try:
        yield server
    finally:
        server.cleanup()


@LAYOUTS
async def test_redis_restart_mid_stream(persistent_redis: RedisServer, layout: int) -> None:
    fleet = Fleet(persistent_redis.url)
    try:
        a = await fleet.proxy(**fast(layout))
        b = await fleet.proxy(**fast(layout))
        alice = await a.create_client()
        await a.subscribe(alice, "/live")
        inbox = await attach(a, alice)
        await b.publish({"channel": "/live", "data": "before"})
        await wait_for(lambda: len(inbox.messages) == 1)

        persistent_redis.stop()
        with pytest.raises(EngineError):
            await b.publish({"channel": "/live", "data": "lost"})
        with pytest.raises(EngineError):
            await a.client_exists(alice)
        with pytest.raises(EngineError):
            await b.create_client()

        persistent_redis.start()
        await eventually(lambda: b.publish({"channel": "/live", "data": "after"}))
        # a's listener reconnects by itself and the message reaches the held socket.
        await wait_for(lambda: len(inbox.messages) == 2, timeout=10)
        assert data(inbox.messages) == ["before", "after"]
        assert await a.client_exists(alice)
        bob = await b.create_client()
        assert await a.client_exists(bob)
    finally:
        await fleet.close()


@LAYOUTS
async def test_redis_restart_without_persistence_forgets_clients(layout: int) -> None:
    server = RedisServer().start()
    fleet = Fleet(server.url)
    try:
        a = await fleet.proxy(**fast(layout))
        alice = await a.create_client()
        server.stop()
        with pytest.raises(EngineError):
            await a.client_exists(alice)
        server.start()
        # The client is unknown (it will re-handshake); everything else works again.
        assert not await eventually(lambda: a.client_exists(alice))
        bob = await a.create_client()
        await a.subscribe(bob, "/again")
        await a.publish({"channel": "/again", "data": 1})
        assert data(await a.connect(bob, hold=1.0)) == [1]
    finally:
        await fleet.close()
        server.cleanup()


@LAYOUTS
async def test_held_clients_redis_forgot_are_told_at_once(
    own_redis: RedisServer, layout: int
) -> None:
    """After a restart without persistence, a socket-bound client (WebSocket,
    EventSource) is closed and a held long-poll answered within seconds, not when its
    hold ends: their next connect gets 401 and they handshake again."""
    fleet = Fleet(own_redis.url)
    try:
        a = await fleet.proxy(timeout=60.0, **fast(layout))
        closed: list[str] = []
        a.bind("close", closed.append)
        alice = await a.create_client()
        socket = await attach(a, alice)
        bob = await a.create_client()
        held = asyncio.ensure_future(a.connect(bob, hold=60.0))
        await asyncio.sleep(0.2)
        own_redis.stop(kill=True)
        own_redis.start()
        assert await asyncio.wait_for(held, 5) == []
        await wait_for(lambda: socket.closed, timeout=5)
        assert sorted(closed) == sorted([alice, bob])
        assert not await a.client_exists(alice)
        # A new handshake works at once.
        carol = await a.create_client()
        await a.subscribe(carol, "/again")
        await a.publish({"channel": "/again", "data": "yes"})
        assert data(await a.connect(carol, hold=1.0)) == ["yes"]
    finally:
        await fleet.close()


@LAYOUTS
async def test_engine_starts_while_redis_is_down_and_catches_up(layout: int) -> None:
    server = RedisServer()
    fleet = Fleet(server.url)
    try:
        a = await fleet.proxy(**fast(layout))  # start() logs and carries on
        with pytest.raises(EngineError):
            await a.create_client()
        server.start()
        alice = await eventually(a.create_client)
        await a.subscribe(alice, "/late")
        inbox = await attach(a, alice)
        await a.publish({"channel": "/late", "data": "ok"})
        await wait_for(lambda: inbox.messages)
        # The code was loaded on first use: as the function library Redis 7 has.
        assert engine_of(a).redis.functions
    finally:
        await fleet.close()
        server.cleanup()


# -- stalls (SIGSTOP) ------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        server.cleanup()


def stall(server: RedisServer, stopped: bool) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP if stopped else signal.SIGCONT)


@LAYOUTS
async def test_publishes_wait_out_a_stall_and_arrive_once_in_order(
    own_redis: RedisServer,
    layout: int,
) -> None:
    """Each publish is sent again after every read timeout of the stall (five or so
    copies of each call reach the stopped Redis); its token makes the copies no-ops."""
    fleet = Fleet(own_redis.url)
    try:
        options = {**fast(layout), "read_timeout": 0.3, "write_timeout": 0.3, "stall_timeout": 5.0}
        a = await fleet.proxy(**options)
        b = await fleet.proxy(**options)
        alice = await a.create_client()
        await a.subscribe(alice, "/stall")
        inbox = await attach(a, alice)
        await b.publish({"channel": "/stall", "data": "before"})
        await wait_for(lambda: len(inbox.messages) == 1)

        stall(own_redis, True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        during = [
            asyncio.ensure_future(b.publish({"channel": "/stall", "data": n})) for n in range(5)
        ]
        await asyncio.sleep(0.2)
        during += [
            asyncio.ensure_future(a.publish({"channel": "/stall", "data": n})) for n in range(5, 10)
        ]
        await asyncio.sleep(1.5)
        assert not any(f.done() for f in during)
        stall(own_redis, False)
        await asyncio.wait_for(asyncio.gather(*during), 5)
        assert 1.5 < loop.time() - started < 5
        await wait_for(lambda: len(inbox.messages) >= 11, timeout=5)
        await asyncio.sleep(0.5)  # nothing more comes: no copy ran twice
        assert data(inbox.messages) == ["before", *range(10)]
    finally:
        await fleet.close()


@LAYOUTS
async def test_a_publish_call_sent_again_does_nothing_and_a_server_keeps_one_token_key(
    own_redis: RedisServer,
    layout: int,
) -> None:
    """A retry carries the number of its call. Redis ran it already when that number is
    not above the server's latest: the copy does nothing, also when it arrives after a
    later call (an abandoned call running late), which must not lower the record."""
    fleet = Fleet(own_redis.url)
    raw = Redis.from_url(own_redis.url)
    try:
        a = await fleet.proxy(**fast(layout))
        alice = await a.create_client()
        await a.subscribe(alice, "/t")
        for n in range(20):
            await a.publish({"channel": "/t", "data": n})
        # One key per server, not one per call.
        tokens = [k async for k in raw.scan_iter(match="*:published:*")]
        tokens += [k async for k in raw.scan_iter(match="*:token:*")]
        assert len(tokens) == 1, tokens
        (key,) = tokens
        latest = int(await raw.get(key))
        assert latest >= 1
        assert 0 < await raw.pttl(key) <= (FAST["stall_timeout"] + 30.0) * 1000

        engine = engine_of(a)
        redis = engine.redis
        message = b'{"channel":"/t","data":"again","id":"x1"}'
        if layout == 2:
            prefix = engine.functions.keys.prefix
            head = [prefix, 100, 60_000, engine.server_id]
            tail = [60_000, message, "/t", 1, "/t"]
            name = "log_publish"
        else:
            prefix = engine.keys.prefix(engine.keys.home("/t"))
            head = [prefix, engine.server_id, 0, 0, 100, 60_000, "1"]
            tail = [60_000, "M", message, 1, "/t"]
            name = "publish"

        async def call(number: int) -> Any:
            args = [*head, str(number), *tail]
            (result,) = await redis.run_scripts(
                name, [([f"{prefix}clients"], args)], idempotent=False
            )
            return result

        assert await call(latest) == [-2]  # the latest call, sent again
        assert await call(latest - 1) == [-2]  # an older one, late
        assert int(await raw.get(key)) == latest
        assert await call(latest + 1) != [-2]  # a new call runs
        assert int(await raw.get(key)) == latest + 1
    finally:
        await raw.aclose()
        await fleet.close()


@LAYOUTS
async def test_a_stall_past_the_bound_fails_the_publish_and_loses_nothing_acknowledged(
    own_redis: RedisServer,
    layout: int,
) -> None:
    fleet = Fleet(own_redis.url)
    try:
        options = {**fast(layout), "read_timeout": 0.3, "write_timeout": 0.3, "stall_timeout": 0.8}
        a = await fleet.proxy(**options)
        alice = await a.create_client()
        await a.subscribe(alice, "/bound")
        inbox = await attach(a, alice)
        await a.publish({"channel": "/bound", "data": "acknowledged"})
        stall(own_redis, True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(EngineError):
            await a.publish({"channel": "/bound", "data": "refused"})
        # Failed at the bound (plus at most the attempt under way), not before it.
        assert 0.8 <= loop.time() - started < 0.8 + 0.3 + 0.5
        stall(own_redis, False)
        await eventually(lambda: a.publish({"channel": "/bound", "data": "after"}))
        await wait_for(lambda: "after" in data(inbox.messages), timeout=5)
        got = data(inbox.messages)
        # What the publisher was told succeeded arrived, once each, in order; the
        # refused publish may have run after all (Redis read it before it stopped).
        assert [d for d in got if d != "refused"] == ["acknowledged", "after"]
    finally:
        await fleet.close()


async def connect_during_stall(own_redis: RedisServer, stall_for: float) -> tuple[Any, float]:
    """A connect sent as Redis stops, to a server holding connects for 1.5 s: its
    reply and how long it took. The lookup is retried through the stall (each try
    waits 0.5 s for Redis, 0.3 s apart)."""
    fleet = Fleet(own_redis.url)
    try:
        options = {**FAST, "max_retries": 20, "retry_delay": 0.3}
        proxy = await fleet.proxy(timeout=1.5, **options)
        server = Server(proxy)
        alice = await proxy.create_client()
        connect = {"channel": "/meta/connect", "clientId": alice, "connectionType": "long-polling"}
        loop = asyncio.get_running_loop()
        stall(own_redis, True)
        started = loop.time()
        answer = asyncio.ensure_future(server.process([connect], None))
        answered: list[float] = []
        answer.add_done_callback(lambda _: answered.append(loop.time()))
        try:
            await asyncio.sleep(stall_for)
        finally:
            stall(own_redis, False)
        replies = await asyncio.wait_for(answer, 10)
        return replies[0], answered[0] - started
    finally:
        await fleet.close()


async def test_a_connect_is_answered_within_its_timeout_of_arrival_through_a_stall(
    own_redis: RedisServer,
) -> None:
    """Redis answers the lookup after 1 s; the hold counts from the connect's arrival,
    so the answer comes at 1.5 s, not 1 + 1.5 s: a Faye client gives up 1.2 x the
    timeout after sending (and then closes its WebSocket)."""
    reply, took = await connect_during_stall(own_redis, 1.0)
    assert reply["successful"] is True, reply
    assert 1.0 < took < 1.5 * 1.2, took


async def test_a_connect_whose_lookup_outlasts_its_timeout_fails_with_retry_advice(
    own_redis: RedisServer,
) -> None:
    reply, took = await connect_during_stall(own_redis, 3.0)
    assert reply["successful"] is False, reply
    assert reply["advice"]["reconnect"] == "retry", reply
    assert 1.5 <= took < 1.5 * 1.2, took


async def test_clients_stay_known_through_a_stall_longer_than_their_liveness(
    own_redis: RedisServer,
) -> None:
    """No client can ping while Redis is stopped: the 1.6 x timeout liveness window is
    lengthened by the outage, so after it a live client is neither unknown (which would
    send it to handshake again, losing what was queued for it) nor skipped by publishes."""
    fleet = Fleet(own_redis.url)
    try:
        a = await fleet.proxy(timeout=1.0, **FAST)  # a client exists 1.6 s after a ping
        alice = await a.create_client()
        await a.subscribe(alice, "/long")
        inbox = await attach(a, alice)
        stall(own_redis, True)
        try:
            with pytest.raises(EngineError):
                await a.client_exists(alice)
            await asyncio.sleep(1.5)
        finally:
            stall(own_redis, False)
        # Its last ping is 2.5 s old now.
        assert await eventually(lambda: a.client_exists(alice)) is True
        await a.publish({"channel": "/long", "data": "after"})
        await wait_for(lambda: "after" in data(inbox.messages), timeout=5)
    finally:
        await fleet.close()


# -- what the log says -----------------------------------------------------------------


def engine_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "faye.redis"]


def count(lines: list[str], text: str) -> int:
    return sum(text in line for line in lines)


@LAYOUTS
async def test_a_redis_restart_is_logged_once_each_way(
    persistent_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
    layout: int,
) -> None:
    own_redis = persistent_redis
    caplog.set_level(logging.INFO, logger="faye.redis")
    fleet = Fleet(own_redis.url)
    try:
        a = await fleet.proxy(**{**fast(layout), "log_level": "info"})
        alice = await a.create_client()
        await a.subscribe(alice, "/logged")
        inbox = await attach(a, alice)
        own_redis.stop()
        # Many calls fail while Redis is away (every request of every client would).
        for _ in range(5):
            with pytest.raises(EngineError):
                await a.client_exists(alice)
        with pytest.raises(EngineError):
            await a.publish({"channel": "/logged", "data": "refused"})
        own_redis.start()
        await eventually(lambda: a.publish({"channel": "/logged", "data": "back"}))
        await wait_for(lambda: data(inbox.messages) == ["back"], timeout=5)
        await wait_for(lambda: count(engine_lines(caplog), "listener resubscribed") == 1)
        lines = engine_lines(caplog)
        assert count(lines, "Redis connection lost") == 1, lines
        assert count(lines, "Redis reconnected; service was degraded for") == 1, lines
        warned = [r for r in caplog.records if "Redis connection lost" in r.getMessage()]
        assert warned[0].levelno == logging.WARNING
    finally:
        await fleet.close()


@LAYOUTS
async def test_a_redis_stall_is_logged_with_how_long_it_lasted(
    own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
    layout: int,
) -> None:
    caplog.set_level(logging.INFO, logger="faye.redis")
    fleet = Fleet(own_redis.url)
    try:
        options = {**fast(layout), "log_level": "info", "read_timeout": 0.3, "stall_timeout": 5.0}
        a = await fleet.proxy(**options)
        stall(own_redis, True)
        pending = asyncio.ensure_future(a.publish({"channel": "/x", "data": 1}))
        await asyncio.sleep(1.5)
        stall(own_redis, False)
        await asyncio.wait_for(pending, 5)
        await wait_for(lambda: count(engine_lines(caplog), "Redis reconnected") == 1)
        lines = engine_lines(caplog)
        assert count(lines, "Redis connection lost during") == 1, lines
        (back,) = [line for line in lines if "Redis reconnected" in line]
        degraded = float(back.rsplit("for ", 1)[1].split(" s")[0])
        # From the first call that failed (a read timeout into the stall) to the first
        # answer after it.
        assert 0.5 <= degraded <= 2.5, back
        # The listener's connection survived the stall: nothing to resubscribe.
        assert count(lines, "listener resubscribed") == 0, lines
    finally:
        await fleet.close()


# -- credentials -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def acl_redis() -> Iterator[RedisServer]:
    # The default user is off; "faye" may only touch keys and channels of namespace "acl".
    server = RedisServer(
        "--user",
        "default",
        "off",
        "--user",
        "faye",
        "on",
        ">s3cret",
        "~acl:*",
        "&acl:*",
        "+@all",
    ).start()
    try:
        yield server
    finally:
        server.cleanup()


async def test_acl_user_and_password(acl_redis: RedisServer) -> None:
    url = f"redis://faye:s3cret@127.0.0.1:{acl_redis.port}/0"
    fleet = Fleet(url, namespace="acl")
    try:
        a = await fleet.proxy(timeout=0.2, gc_interval=0.1)
        b = await fleet.proxy(
            host="127.0.0.1", port=acl_redis.port, url=None, username="faye", password="s3cret"
        )
        alice = await a.create_client()
        await a.subscribe(alice, "/secure/*")
        inbox = await attach(a, alice)
        await b.publish({"channel": "/secure/x", "data": "inside"})
        await wait_for(lambda: inbox.messages)
        # Every key and channel stays inside the namespace (the ACL would refuse others),
        # GC and its lock included.
        closed: list[Any] = []
        a.bind("disconnect", lambda cid: closed.append(cid))
        bob = await b.create_client()
        await wait_for(lambda: bob in closed, timeout=5)
    finally:
        await fleet.close()


async def test_wrong_password_fails_at_start(acl_redis: RedisServer) -> None:
    fleet = Fleet(f"redis://faye:wrong@127.0.0.1:{acl_redis.port}/0", namespace="acl")
    try:
        with pytest.raises(EngineError, match="credentials"):
            await fleet.proxy()
    finally:
        await fleet.close()


async def test_namespace_outside_the_acl_fails_clearly(acl_redis: RedisServer) -> None:
    fleet = Fleet(f"redis://faye:s3cret@127.0.0.1:{acl_redis.port}/0", namespace="other")
    try:
        with pytest.raises(EngineError):
            proxy = await fleet.proxy()
            await proxy.create_client()
    finally:
        await fleet.close()


# -- TLS -------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=faye test CA",
        cwd=directory,
    )
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN=faye test {name}",
            cwd=directory,
        )
        extra = ["-extfile", "server.ext"] if name == "server" else []
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.crt",
            *extra,
            cwd=directory,
        )
    return {
        n: directory / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    }


class TLSRedisServer(RedisServer):
    """redis-server listening only on a TLS port that requires client certificates."""

    def __init__(self, certs: dict[str, Path]) -> None:
        super().__init__()
        self.certs = certs

    def listen_args(self) -> list[str]:
        certs = self.certs
        return [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(certs["server.crt"]),
            "--tls-key-file", str(certs["server.key"]),
            "--tls-ca-cert-file", str(certs["ca.crt"]),
            "--tls-auth-clients", "yes",
        ]  # fmt: skip

    def open_probe(self) -> socket.socket:
        context = ssl.create_default_context(cafile=str(self.certs["ca.crt"]))
        context.load_cert_chain(str(self.certs["client.crt"]), str(self.certs["client.key"]))
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
        return context.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSRedisServer]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    certs = make_certificates(tmp_path_factory.mktemp("tls"))
    server = TLSRedisServer(certs)
    try:
        server.start()
    except RuntimeError as exc:
        if "tls" in str(exc).lower():
            pytest.skip(f"this redis-server has no TLS support: {exc}")
        raise
    try:
        yield server
    finally:
        server.cleanup()


async def test_tls_with_ca_and_client_certificate(tls_redis: TLSRedisServer) -> None:
    certs = tls_redis.certs
    ssl_options = {
        "enabled": True,
        "ca_file": str(certs["ca.crt"]),
        "cert_file": str(certs["client.crt"]),
        "key_file": str(certs["client.key"]),
    }
    fleet = Fleet(f"rediss://127.0.0.1:{tls_redis.port}/0")
    try:
        a = await fleet.proxy(ssl=ssl_options)
        b = await fleet.proxy(url=None, host="127.0.0.1", port=tls_redis.port, ssl=ssl_options)
        alice = await a.create_client()
        await a.subscribe(alice, "/tls")
        inbox = await attach(a, alice)
        await b.publish({"channel": "/tls", "data": "encrypted"})
        await wait_for(lambda: inbox.messages)
        assert data(inbox.messages) == ["encrypted"]
    finally:
        await fleet.close()


async def test_tls_without_client_certificate_fails_at_start(tls_redis: TLSRedisServer) -> None:
    """Redis requires a client certificate and none is given: no retry mends that."""
    fleet = Fleet(f"rediss://127.0.0.1:{tls_redis.port}/0")
    try:
        with pytest.raises(EngineError, match=r"requires a client certificate: set ssl\.cert_file"):
            await fleet.proxy(ssl={"enabled": True, "ca_file": str(tls_redis.certs["ca.crt"])})
    finally:
        await fleet.close()


async def test_tls_without_the_right_ca_fails_at_start(tls_redis: TLSRedisServer) -> None:
    certs = tls_redis.certs
    fleet = Fleet(f"rediss://127.0.0.1:{tls_redis.port}/0")
    try:
        with pytest.raises(EngineError, match=r"ssl\.ca_file \(not set.*does not verify"):
            await fleet.proxy(
                ssl={
                    "enabled": True,
                    "cert_file": str(certs["client.crt"]),
                    "key_file": str(certs["client.key"]),
                }
            )
        # The client certificate's file given as the CA: it verifies nothing either.
        with pytest.raises(EngineError, match=re.escape(f"ssl.ca_file ({certs['client.crt']})")):
            await fleet.proxy(ssl={"enabled": True, "ca_file": str(certs["client.crt"])})
    finally:
        await fleet.close()


def test_faye_serve_says_what_is_wrong_with_tls_in_one_line(tls_redis: TLSRedisServer) -> None:
    """The real CLI: start-up fails with the option named, and no traceback."""
    ca = tls_redis.certs["ca.crt"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "faye",
            "serve",
            "--port",
            "0",
            "--redis",
            f"rediss://127.0.0.1:{tls_redis.port}/0",
            "--engine-option",
            f'ssl={{"enabled": true, "ca_file": "{ca}"}}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "engine failed to start" in x]
    assert "requires a client certificate: set ssl.cert_file and ssl.key_file" in line

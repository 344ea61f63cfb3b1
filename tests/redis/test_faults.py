"""Redis outages, credentials and TLS, on private redis-server processes."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faye.engine import EngineError
from tests.redis.conftest import Fleet, engine_of
from tests.redis.test_behaviour import data, wait_for
from tests.support.engines import attach
from tests.support.redis_server import RedisServer

FAST = {
    "retry_delay": 0.05,
    "max_retries": 2,
    "connect_timeout": 0.5,
    "read_timeout": 0.5,
    "write_timeout": 0.5,
    "heartbeat_interval": 0.2,
}


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


async def test_redis_restart_mid_stream(persistent_redis: RedisServer) -> None:
    fleet = Fleet(persistent_redis.url)
    try:
        a = await fleet.proxy(**FAST)
        b = await fleet.proxy(**FAST)
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


async def test_redis_restart_without_persistence_forgets_clients() -> None:
    server = RedisServer().start()
    fleet = Fleet(server.url)
    try:
        a = await fleet.proxy(**FAST)
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


async def test_engine_starts_while_redis_is_down_and_catches_up() -> None:
    server = RedisServer()
    fleet = Fleet(server.url)
    try:
        a = await fleet.proxy(**FAST)  # start() logs and carries on
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


async def test_tls_without_client_certificate_is_refused(tls_redis: TLSRedisServer) -> None:
    fleet = Fleet(f"rediss://127.0.0.1:{tls_redis.port}/0")
    try:
        proxy = await fleet.proxy(
            ssl={"enabled": True, "ca_file": str(tls_redis.certs["ca.crt"])}, **FAST
        )
        with pytest.raises(EngineError):
            await proxy.create_client()
    finally:
        await fleet.close()

"""The ``faye`` command line, run for real in a subprocess: bad values get one line on
stderr and exit code 2, ``faye gc`` takes the engine options of ``faye serve`` and says
in one line when Redis is unreachable."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faye.redis.engine import make_engine
from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


def faye(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAYE_")}
    return subprocess.run(
        [sys.executable, "-m", "faye", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["serve"], {"FAYE_PORT": "abc"}, "invalid int value: 'abc' (from FAYE_PORT)"),
        (["serve"], {"FAYE_TIMEOUT": "soon"}, "(from FAYE_TIMEOUT)"),
        (["serve", "--timeout", "-1"], {}, "argument --timeout"),
        (["serve"], {"FAYE_PING": "nan"}, "(from FAYE_PING)"),
        (["serve"], {"FAYE_MAX_REQUEST_SIZE": "1MB"}, "(from FAYE_MAX_REQUEST_SIZE)"),
        (["serve"], {"FAYE_LOG_LEVEL": "loud"}, "invalid choice: 'loud'"),
        (["serve", "--port", "80x"], {}, "argument --port: invalid int value: '80x'"),
        (["serve", "--gc-thresholds", "1,x"], {}, "argument --gc-thresholds"),
        (["serve", "--engine-option", "pool_size"], {}, "expected NAME=VALUE"),
        (["serve", "--engine-option", "pool_size=3"], {}, "--engine-option needs --redis"),
        (
            ["serve", "--redis", "redis://127.0.0.1:1", "--engine-option", "pool_size=0"],
            {},
            "pool_size",
        ),
        (
            ["serve", "--redis", "redis://127.0.0.1:1", "--engine-option", "colour=blue"],
            {},
            "unknown Redis engine option(s): colour",
        ),
        (["serve", "--redis", "http://127.0.0.1:1"], {}, "unsupported scheme"),
        (["gc"], {}, "faye gc needs --redis"),
        (["gc", "--redis", "redis://127.0.0.1:1", "--engine-option", "x"], {}, "NAME=VALUE"),
        (["gc", "--redis", "redis://127.0.0.1:1"], {"FAYE_TIMEOUT": "x"}, "(from FAYE_TIMEOUT)"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_code_2(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    result = faye(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert expected in one_line(result)


def test_a_missing_tls_file_names_the_option_and_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    result = faye(
        "serve",
        "--redis",
        "rediss://127.0.0.1:1",
        "--engine-option",
        f'ssl={{"enabled": true, "ca_file": "{missing}"}}',
    )
    assert result.returncode == 2
    line = one_line(result)
    assert f"ssl.ca_file: cannot read {missing}" in line


def test_a_tls_file_that_is_no_pem_names_the_option(tmp_path: Path) -> None:
    bogus = tmp_path / "cert.pem"
    bogus.write_text("not a certificate\n")
    result = faye(
        "gc",
        "--redis",
        "rediss://127.0.0.1:1",
        "--engine-option",
        f'ssl={{"enabled": true, "cert_file": "{bogus}", "key_file": "{bogus}"}}',
    )
    assert result.returncode == 2
    assert f"ssl.cert_file, ssl.key_file: {bogus}" in one_line(result)


def test_gc_on_an_unreachable_redis_is_one_line() -> None:
    port = free_port()  # nothing listens there
    result = faye("gc", "--redis", f"redis://127.0.0.1:{port}", "--engine-option", "max_retries=1")
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("faye gc: Redis is unreachable"), line
    assert str(port) in line
    assert result.stdout == ""


def test_gc_takes_the_engine_options_of_serve(redis_server: RedisServer) -> None:
    """A client of a fleet with 4 partitions, expired: only a GC that knows the fleet's
    partitions finds it."""
    namespace = f"cli-{os.getpid()}"
    options = {"url": redis_server.url, "namespace": namespace, "partitions": 4}

    class Host:
        timeout = 0.1

        def has_connection(self, client_id: str) -> bool:
            return False

        def deliver(self, client_id: str, messages: object) -> bool:
            return False

        def on_close(self, client_id: str) -> None:
            pass

        async def destroy_client(self, client_id: str) -> None:
            pass

    async def make_client() -> str:
        engine = make_engine(Host(), {**options, "log_level": "silent"}, background=False)
        try:
            await engine.redis.load_scripts()
            while True:
                client_id = await engine.create_client()
                if engine.keys.partition(client_id) != 0:  # where a 1-partition GC looks
                    break
                await engine.destroy_client(client_id)
            await engine.subscribe(client_id, "/somewhere")
            return client_id
        finally:
            await engine.close()

    asyncio.run(make_client())
    common = ["gc", "--redis", redis_server.url, "--namespace", namespace, "--timeout", "0.1"]
    asyncio.run(asyncio.sleep(0.3))  # the client expires (2 x timeout)
    assert faye(*common).stdout.strip() == "collected 0 expired client(s)"
    result = faye(*common, "--engine-option", "partitions=4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "collected 1 expired client(s)"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_version_is_the_package_version() -> None:
    import faye as package

    result = faye("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"faye-redis-ng {package.__version__}"


def test_version_matches_the_installed_metadata() -> None:
    from importlib.metadata import version

    import faye as package

    assert version("faye-redis-ng") == package.__version__


def test_memory_server_does_not_import_redis() -> None:
    # What `faye serve` loads for the memory engine: redis-py must stay optional.
    result = run_python(
        "import sys, faye.cli\n"
        "from faye.transport.uvicorn_websocket import FayeWebSocketProtocol\n"
        "args = faye.cli.build_parser().parse_args(['serve'])\n"
        "faye.cli.make_adapter(args)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'hiredis')))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_limit_flag_comes_from_the_table_with_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faye.cli import build_parser, limit_table, make_adapter

    table = limit_table()
    security = (ROOT / "docs" / "security.md").read_text()
    for limit in table:
        assert f"`{limit.flag}` (`{limit.env}`)" in security, limit.flag
    defaults = build_parser().parse_args(["serve"])
    for limit in table:
        value = getattr(defaults, limit.dest)
        assert value == limit.default, limit.flag
        monkeypatch.setenv(limit.env, "7")
    args = build_parser().parse_args(["serve"])
    assert all(getattr(args, limit.dest) == 7 for limit in table)
    adapter = make_adapter(args)
    assert adapter.limits.max_subscriptions == 7 and adapter.limits.publish_rate == 7.0
    assert adapter.limits.channels.max_length == 7 and adapter.max_outbox_bytes == 7
    assert adapter.proxy.backend.max_queue == 7  # --max-client-queue, for the engine
    flagged = build_parser().parse_args(["serve", "--publish-burst", "9"])
    assert flagged.publish_burst == 9  # the flag wins over the variable


def test_a_bad_limit_variable_is_one_line_and_exit_code_2() -> None:
    result = faye("serve", env={"FAYE_HANDSHAKE_RATE": "fast"})
    assert result.returncode == 2
    assert "FAYE_HANDSHAKE_RATE: expected a non-negative number" in one_line(result)

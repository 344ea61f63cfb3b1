"""The load generator's worker processes and the runner's handles on them.

Forked processes (so that they share the delivery counters in shared memory), each
running one :class:`bench.generator.Worker` on a uvloop event loop and answering one
command at a time over a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from bench.generator import Worker


async def _serve(worker: Worker, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()

    def read_pipe() -> None:
        # A thread with blocking reads: an event-loop reader would make the pipe
        # non-blocking, and a large reply (latency arrays) would then fail half-sent.
        for _ in range(1_000_000):
            try:
                item = conn.recv()
            except (EOFError, OSError):
                item = ("exit", None)
            loop.call_soon_threadsafe(inbox.put_nowait, item)
            if item[0] == "exit":
                return

    threading.Thread(target=read_pipe, daemon=True).start()
    tasks: set[asyncio.Task[None]] = set()

    async def run(name: str, spec: Any) -> None:
        try:
            handler = getattr(worker, name)
            result = handler(spec) if name == "begin" else await handler(spec)
            conn.send(("ok", result))
        except Exception:
            conn.send(("error", traceback.format_exc()))

    for _ in range(1_000_000):
        name, spec = await inbox.get()
        if name == "exit":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.close_all({"abrupt": True}), 5)
            await asyncio.sleep(0.2)
            conn.send(("ok", {}))
            return
        if name == "begin":
            spec = spec or ""
        task = asyncio.ensure_future(run(name, spec))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def worker_main(
    index: int, conn: Connection, counters: list[Any], publishers: list[Any], cpu: int | None
) -> None:
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    worker = Worker(index, counters, publishers)
    try:
        import uvloop

        uvloop.run(_serve(worker, conn))
    except ImportError:
        asyncio.run(_serve(worker, conn))


class WorkerHandle:
    """The runner's side of one worker process."""

    def __init__(
        self,
        ctx: Any,
        index: int,
        counters: list[Any],
        publishers: list[Any],
        cpu: int | None,
    ) -> None:
        self.index = index
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=worker_main,
            args=(index, child, counters, publishers, cpu),
            daemon=True,
        )
        self.process.start()
        child.close()
        self.busy = False

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def send(self, name: str, spec: Any = None) -> None:
        assert not self.busy, "one command at a time per worker"
        self.conn.send((name, spec))
        self.busy = True

    def reply(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"worker {self.index} did not answer within {timeout:.0f} s")
        self.busy = False
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"worker {self.index} failed:\n{value}")
        return value

    def call(self, name: str, spec: Any = None, timeout: float = 60.0) -> Any:
        self.send(name, spec)
        return self.reply(timeout)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.process.is_alive():
                self.conn.send(("exit", None))
                self.conn.poll(3)
        self.process.join(3)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(3)


class WorkerPool:
    def __init__(self, size: int, cpus: list[int | None]) -> None:
        ctx = mp.get_context("fork")
        self.counters = [ctx.RawValue("q", 0) for _ in range(size)]
        self.publishers = [ctx.RawValue("q", 0) for _ in range(size)]
        self.workers = [
            WorkerHandle(ctx, i, self.counters, self.publishers, cpus[i % len(cpus)])
            for i in range(size)
        ]

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

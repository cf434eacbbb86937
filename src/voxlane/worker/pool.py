"""Job processes and a pool of pre-warmed ones.

A job process is ``python -m voxlane.worker.job`` started with ``create_subprocess_exec``
(a fresh interpreter: no fork of a running event loop) and one end of a ``socketpair``
inherited as its IPC channel. Starting one costs an interpreter plus imports plus loading
the agent file; the pool pays that ahead of time: it keeps ``size`` processes that have
said ``Ready``, hands one out per job and starts a replacement at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import TaskOwner
from voxlane.errors import VoxlaneError
from voxlane.worker.ipc import CloseRequest, Decoder, Message, Ready, encode

log = logging.getLogger("voxlane.worker")
READ_SIZE = 65536


class JobStartError(VoxlaneError):
    """A job process did not come up (exited, or no ``Ready`` in time)."""


class JobProcess:
    """One job process and its IPC channel. ``send`` never blocks; ``receive`` may."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        spawned_at: float,
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.reader, self.writer = reader, writer
        self.decoder = Decoder()
        self.spawned_at = spawned_at
        self.ready_at: float | None = None
        self.prewarmed = False

    @classmethod
    async def spawn(
        cls, agent_file: Path, *, extra_args: Sequence[str] = (), clock: Clock = DEFAULT_CLOCK
    ) -> JobProcess:
        """Start a job process (it then loads and sends ``Ready``: see ``wait_ready``)."""
        parent, child = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "voxlane.worker.job",
                "--fd",
                str(child.fileno()),
                "--agent",
                str(agent_file),
                *extra_args,
                pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()  # the child has its copy
        reader, writer = await asyncio.open_connection(sock=parent)
        return cls(proc, reader, writer, clock.now())

    def send(self, message: Message) -> None:
        """Queue ``message`` for the job (dropped if the channel is already closed)."""
        if not self.writer.is_closing():
            self.writer.write(encode(message))

    async def receive(self) -> list[Message] | None:
        """The next messages from the job; None at EOF. Raises ``IPCProtocolError``."""
        try:
            data = await self.reader.read(READ_SIZE)
        except (ConnectionError, OSError) as exc:
            log.warning("job process %s: channel error %r", self.pid, exc)
            return None
        return self.decoder.feed(data) if data else None

    async def wait_ready(self, timeout: float, clock: Clock = DEFAULT_CLOCK) -> None:
        """Wait (bounded) for ``Ready``. Raises ``JobStartError`` on EOF or timeout."""
        deadline = clock.now() + timeout
        while self.ready_at is None:
            read = asyncio.ensure_future(self.receive())
            done, _ = await asyncio.wait({read}, timeout=max(0.0, deadline - clock.now()))
            if not done:
                read.cancel()
                raise JobStartError(f"job process {self.pid}: not ready after {timeout} s")
            messages = read.result()
            if messages is None:
                raise JobStartError(f"job process {self.pid} exited while starting")
            if any(isinstance(m, Ready) for m in messages):
                self.ready_at = clock.now()

    @property
    def exited(self) -> bool:
        return self.proc.returncode is not None

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to this PID if it has not been reaped yet (no PID reuse possible
        before the reap). Returns whether it was sent."""
        if self.proc.returncode is not None:
            return False
        try:
            self.proc.send_signal(sig)
        except ProcessLookupError:
            return False
        return True

    async def stop(self, timeout: float) -> None:
        """End an idle process: ask, then SIGKILL; reap, all within ``timeout``."""
        self.send(CloseRequest("pool_closing"))
        self.writer.close()
        waiter = asyncio.ensure_future(self.proc.wait())
        _, pending = await asyncio.wait({waiter}, timeout=timeout / 2)
        if pending:
            self.signal(signal.SIGKILL)
            await asyncio.wait({waiter}, timeout=timeout / 2)
        waiter.cancel()

    def close_channel(self) -> None:
        self.writer.close()


@dataclass
class PoolStats:
    spawned: int = 0
    handed_prewarmed: int = 0
    handed_cold: int = 0
    failed: int = 0
    start_latencies: list[float] = field(default_factory=list)


class ProcessPool:
    """Keeps ``size`` ready job processes. ``acquire`` hands one out (or starts one cold if
    none is ready) and starts a replacement; ``aclose`` stops the idle ones, bounded."""

    def __init__(
        self,
        agent_file: Path,
        *,
        size: int,
        spawn_timeout: float = 30.0,
        job_args: Sequence[str] = (),
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        self.agent_file = agent_file
        self.size = size
        self.spawn_timeout = spawn_timeout
        self.job_args = list(job_args)
        self._clock = clock
        self._idle: list[JobProcess] = []
        self._dying: list[JobProcess] = []
        self._warming = 0
        self._ready = asyncio.Event()
        self._owner = TaskOwner("pool", on_error=self._on_error, clock=clock)
        self.stats = PoolStats()

    def start(self) -> None:
        """Begin warming ``size`` processes (returns at once)."""
        self._refill()

    async def wait_warm(self, timeout: float) -> bool:
        """Wait (bounded) until ``size`` processes are ready. Returns whether they are;
        returns early (False) as soon as one fails to start (e.g. a broken agent file)."""
        deadline = self._clock.now() + timeout
        failed = self.stats.failed
        while (
            len(self._idle) < self.size
            and self._clock.now() < deadline
            and self.stats.failed == failed
        ):
            self._ready.clear()
            waiter = asyncio.ensure_future(self._ready.wait())
            await asyncio.wait({waiter}, timeout=max(0.0, deadline - self._clock.now()))
            waiter.cancel()
        return len(self._idle) >= self.size

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def idle_pids(self) -> list[int]:
        """PIDs of the ready processes (for measurements; they may exit any time)."""
        return [p.pid for p in self._idle]

    async def acquire(self) -> JobProcess:
        """A ready job process, owned by the caller from now on. Raises ``JobStartError``."""
        while self._idle:
            proc = self._idle.pop(0)
            if not proc.exited:
                self.stats.handed_prewarmed += 1
                proc.prewarmed = True
                self._refill()
                return proc
        self._refill()
        proc = await self._spawn_ready()
        self.stats.handed_cold += 1
        return proc

    async def _spawn_ready(self) -> JobProcess:
        t0 = self._clock.now()
        proc = await JobProcess.spawn(self.agent_file, extra_args=self.job_args, clock=self._clock)
        self.stats.spawned += 1
        try:
            await proc.wait_ready(self.spawn_timeout, self._clock)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.stats.failed += 1  # wait_warm returns early on a failure
            proc.signal(signal.SIGKILL)
            proc.close_channel()
            self._dying.append(proc)  # reaped (bounded) by aclose
            raise
        self.stats.start_latencies.append(self._clock.now() - t0)
        return proc

    def _refill(self) -> None:
        if self._owner.closed:
            return
        for _ in range(self.size - len(self._idle) - self._warming):
            self._warming += 1
            self._owner.spawn(self._warm_one(), name="warm")

    async def _warm_one(self) -> None:
        try:
            proc = await self._spawn_ready()
        finally:
            self._warming -= 1
            self._ready.set()  # wake wait_warm: ready, or failed
        if self._owner.closed:
            await proc.stop(2.0)
            return
        self._idle.append(proc)
        self._ready.set()

    def _on_error(self, task: asyncio.Task[object], exc: BaseException) -> None:
        log.warning("pool: warming a job process failed: %r", exc)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop warming and stop every idle process; returns within ``timeout``."""
        deadline = self._clock.now() + timeout
        await self._owner.shutdown(self._clock.now() + timeout / 2)
        idle, self._idle = self._idle, []
        dying, self._dying = [p for p in self._dying if not p.exited], []
        remaining = max(0.1, deadline - self._clock.now())
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(p.stop(remaining)) for p in idle}
        waits |= {asyncio.ensure_future(p.proc.wait()) for p in dying}
        if waits:
            _, pending = await asyncio.wait(waits, timeout=remaining)
            for task in pending:
                task.cancel()

"""The job process: ``python -m voxlane.worker.job --fd N --agent FILE``.

Lifecycle: import everything and load the agent file (pre-warm), send ``Ready``, wait for
``StartJob``; build the call (by its kind: synthetic, or SIP with the job's own RTP
socket, whose port goes to the worker in a ``CallEvent``); run an ``AgentSession`` with the
user's agent; send heartbeats from the event loop (a blocked loop stops them: the
supervisor notices); forward ``ParticipantDisconnected``/``CloseRequest`` to the
room/session. When the session has closed: release the call's media, run the shutdown
callbacks (bounded), send ``JobReport`` then ``JobExited`` and end the process with
``os._exit`` — never through ``asyncio.run()``'s teardown, which would wait for every
abandoned task (DESIGN §2).

SIGINT is ignored (a terminal's Ctrl-C reaches the whole process group; the worker decides);
SIGTERM keeps its default action, so the supervisor's SIGTERM ends a job even when its loop
is blocked.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import resource
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.ledger import LEDGER
from voxlane.room import Room
from voxlane.runners.loader import load_agent_factory
from voxlane.voice.agent import Agent
from voxlane.voice.session import AgentSession
from voxlane.worker.context import JobContext
from voxlane.worker.ipc import (
    CallEvent,
    CloseRequest,
    Decoder,
    Heartbeat,
    JobExited,
    JobReport,
    Message,
    ParticipantDisconnected,
    Ready,
    StartJob,
    encode,
)
from voxlane.worker.logs import JobIdsFilter, setup_logging
from voxlane.worker.sip_job import open_sip_job
from voxlane.worker.synthetic import build_synthetic_call

log = logging.getLogger("voxlane.job")
_IDS = JobIdsFilter()
READ_SIZE = 65536
FLUSH_TIMEOUT = 2.0


class _Channel:
    """The job's end of the socketpair: framed writes, decoded reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = Decoder()
        self._pending: deque[Message] = deque()

    def send(self, message: Message) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(message))

    async def receive(self) -> Message | None:
        """The next message; None at EOF (the worker is gone). One read may bring several
        messages: the rest wait here for the next call, whoever makes it.

        A broken channel is EOF too: when the worker dies, a heartbeat's failed write can
        reach the reader before the EOF does (asyncio hands the write error to the reader),
        and a job that took that for a crash of its own would never end its call."""
        while not self._pending:
            try:
                data = await self.reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                return None
            if not data:
                return None
            self._pending.extend(self.decoder.feed(data))
        return self._pending.popleft()

    async def flush_and_wait_eof(self, timeout: float) -> None:
        """Hand everything written to the kernel, then wait for the worker to close its end
        (it does on ``JobExited``), all within ``timeout``. Exiting earlier could lose the
        report: ``drain()`` alone returns while data is still in the transport's buffer, and
        closing a socket with unread input resets the connection."""

        async def finish() -> None:
            self.writer.transport.set_write_buffer_limits(high=0)
            await self.writer.drain()
            while await self.reader.read(READ_SIZE):
                pass  # discard: nothing the worker says matters any more

        task = asyncio.ensure_future(finish())
        _, pending = await asyncio.wait({task}, timeout=timeout)
        for t in pending:
            t.cancel()


class JobCall(Protocol):
    """One call inside the job process, whatever its kind (synthetic, SIP)."""

    @property
    def room(self) -> Room: ...
    @property
    def session(self) -> AgentSession: ...

    def ready_event(self) -> tuple[str, dict[str, Any]] | None:
        """A ``CallEvent`` for the worker once the call is built (SIP: the RTP port)."""
        ...

    def hang_up(self, reason: str) -> None:
        """The worker says the caller left."""
        ...

    async def run(self) -> None:
        """What the call does beside the session (a synthetic caller; SIP: its time bound).
        Cancelled once the session has closed."""
        ...

    async def aclose(self, deadline: float) -> None:
        """Release the call's own resources (SIP: the RTP socket); bounded by ``deadline``."""
        ...

    def report_extra(self) -> dict[str, Any]:
        """Keys added to the session report (SIP: a ``"sip"`` block)."""
        ...


async def build_call(spec: dict[str, Any], clock: Clock, session_id: str) -> JobCall:
    """The job side of a call source's spec, chosen by its ``"kind"``."""
    kind = spec.get("kind")
    if kind == "synthetic":
        return build_synthetic_call(spec, clock, session_id)
    if kind == "sip":
        return await open_sip_job(spec, clock, session_id)
    raise ValueError(f"unknown call kind {kind!r}")


def _make_agent(factory: Callable[..., Agent], ctx: JobContext) -> Agent:
    """``create_agent(ctx)`` if the factory takes an argument, else ``create_agent()``."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return factory()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params if p.kind in kinds]
    takes_ctx = bool(positional) and positional[0].default is inspect.Parameter.empty
    return factory(ctx) if takes_ctx else factory()


async def _heartbeats(channel: _Channel, interval: float) -> None:
    seq = 0
    while True:
        seq += 1
        channel.send(Heartbeat(seq, LEDGER.count_open(), dict(LEDGER.reconnects)))
        await asyncio.sleep(interval)


async def _commands(channel: _Channel, call: JobCall, requests: list[str]) -> None:
    """Worker → job messages while the call runs. EOF: the worker is gone, end the call."""
    while True:
        m = await channel.receive()
        if m is None:
            requests.append("worker_gone")
            call.session.shutdown(drain=False)
            return
        if isinstance(m, ParticipantDisconnected):
            call.hang_up(m.reason)
        elif isinstance(m, CloseRequest):
            requests.append(m.reason)
            call.session.shutdown(drain=False)


async def _run_job(
    channel: _Channel, start: StartJob, factory: Callable[..., Agent], args: argparse.Namespace
) -> int:
    spec = start.spec
    call = await build_call(spec, DEFAULT_CLOCK, session_id=f"sess_{start.job_id}")
    _IDS.job_id, _IDS.session_id = start.job_id, call.session.id
    ctx = JobContext(start.job_id, call.room, metadata=spec.get("metadata"))
    ctx.make_current()
    # Session tasks (hooks, tools) run in copies of the session's own context, made when it
    # was built: make the job current there too, so current_job_context() works in tools.
    call.session.task_context.run(ctx.make_current)
    requests: list[str] = []
    loop = asyncio.get_running_loop()
    # Owned by this function; never awaited on the way out (the process ends instead).
    tasks = [loop.create_task(_heartbeats(channel, args.heartbeat_interval), name="job/heartbeats")]
    ready = call.ready_event()
    if ready is not None:  # first: the worker answers the caller on it (SIP 200 OK)
        channel.send(CallEvent(*ready))
    await call.session.start(_make_agent(factory, ctx), room=call.room)
    # Commands are read once the session runs: a close request then closes a started
    # session (until then they wait in the socket buffer).
    tasks.append(loop.create_task(_commands(channel, call, requests), name="job/commands"))
    tasks.append(loop.create_task(call.run(), name="job/call"))
    # No deadline here on purpose: a call lasts as long as the caller stays. The supervisor
    # in the worker bounds this process (close request → SIGTERM → SIGKILL).
    await call.session.wait_closed()
    tasks[-1].cancel()  # the call's own task
    await call.aclose(DEFAULT_CLOCK.now() + 1.0)
    shutdown_deadline = DEFAULT_CLOCK.now() + args.shutdown_timeout
    callbacks = await ctx.run_shutdown_callbacks(shutdown_deadline)
    report = call.session.report_dict()
    report.update(call.report_extra())
    report["job"] = {
        "job_id": start.job_id,
        "pid": os.getpid(),
        "close_requests": requests,
        "shutdown_callbacks": [c.to_dict() for c in callbacks],
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "reconnects": dict(LEDGER.reconnects),
    }
    channel.send(JobReport(report))
    for task in tasks:
        task.cancel()
    return 0


async def _serve(sock: socket.socket, args: argparse.Namespace) -> int:
    reader, writer = await asyncio.open_connection(sock=sock)
    channel = _Channel(reader, writer)
    factory = load_agent_factory(Path(args.agent))
    channel.send(Ready(os.getpid()))
    start: StartJob | None = None
    while start is None:  # idle in the pool: the worker owns our lifetime
        m = await channel.receive()
        if m is None or isinstance(m, CloseRequest):
            return 0
        if isinstance(m, StartJob):
            start = m
    code = 0
    try:
        code = await _run_job(channel, start, factory, args)
    except Exception as exc:
        log.exception("job %s failed", start.job_id)
        channel.send(JobReport({"error": f"{type(exc).__name__}: {exc}"[:2000]}))
        code = 1
    channel.send(JobExited(code))
    await channel.flush_and_wait_eof(FLUSH_TIMEOUT)
    return code


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m voxlane.worker.job")
    p.add_argument("--fd", type=int, required=True, help="inherited socket to the worker")
    p.add_argument("--agent", required=True, help="agent file")
    p.add_argument("--heartbeat-interval", type=float, default=0.25)
    p.add_argument("--shutdown-timeout", type=float, default=2.0)
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run one job, then end the process (never returns)."""
    args = _parse(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(args.log_level, args.log_format, _IDS)
    code = 1
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        sock = socket.socket(fileno=args.fd)
        code = loop.run_until_complete(_serve(sock, args))
    except BaseException:
        log.exception("job process failed")
    finally:
        # Abandoned tasks (stuck user code) may still be pending: do not wait for them, do
        # not even close the loop (closing cancels nothing and may warn). Just leave.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


if __name__ == "__main__":
    main()

"""Supervises one job process: drives the pure escalation ladder (core/supervision) with the
loop clock and carries out its commands — ask the job to close, SIGTERM, SIGKILL of that
PID — and always reaps it. The result says how it ended and when each rung was reached.

Every wait here has a deadline from the ladder; the only open-ended one is the call itself
while the job is RUNNING and keeps sending heartbeats (a call lasts as long as the caller).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.core.supervision import Command, JobOutcome, JobState, Ladder, LadderConfig
from voxlane.worker.ipc import (
    CallEvent,
    CloseRequest,
    Heartbeat,
    IPCProtocolError,
    JobExited,
    JobReport,
    ParticipantDisconnected,
    StartJob,
)
from voxlane.worker.pool import JobProcess

log = logging.getLogger("voxlane.worker")
READ_TAIL_TIMEOUT = 1.0


@dataclass
class SupervisionResult:
    job_id: str
    outcome: JobOutcome
    report: dict[str, Any] | None
    """The job's own session report, if it sent one."""
    supervisor: dict[str, Any] = field(default_factory=dict)
    """The ``"supervisor"`` block of the written report."""
    close_duration_s: float | None = None


class JobSupervisor:
    """Runs one job on ``process`` under the ladder. ``run`` returns when it was reaped (or
    could not be, after SIGKILL and ``sigkill_timeout``: recorded as ``reaped: false``).

    ``request_close``/``participant_disconnected`` are synchronous and may be called any
    time, also before ``run`` starts. ``on_call_event`` receives the job's ``CallEvent``s
    (name, data); an exception it raises is logged and ends the job through the ladder
    (the call cannot go on without its source).
    """

    def __init__(
        self,
        job_id: str,
        process: JobProcess,
        config: LadderConfig,
        *,
        clock: Clock = DEFAULT_CLOCK,
        on_call_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.job_id = job_id
        self._on_call_event = on_call_event
        self.process = process
        self.config = config
        self._clock = clock
        self.ladder = Ladder(config, started_at=clock.now())
        self._wake = asyncio.Event()
        self.report: dict[str, Any] | None = None
        self.exit_code_sent: int | None = None
        self.open_connections = 0
        self.reconnects: dict[str, int] = {}
        """The job's provider reconnects by ``kind:class``, as of its last heartbeat."""
        self.close_reasons: list[str] = []
        self.disconnected: str | None = None
        self.protocol_error: str | None = None
        self.first_heartbeat_at: float | None = None
        self._started = False
        self._close_pending: str | None = None

    # -- events from the worker ---------------------------------------------------------------
    def participant_disconnected(self, reason: str) -> None:
        """The caller left: tell the job's room, and expect the job to end within the close
        budget (the ladder starts counting now)."""
        if self.disconnected is None:
            self.disconnected = reason
            if self._started:  # else: sent right after StartJob
                self.process.send(ParticipantDisconnected(reason))
        self._close(f"participant_disconnected:{reason}")

    def request_close(self, reason: str = "job_shutdown") -> None:
        """Ask the job to end now; escalates if it does not within ``job_close_timeout``."""
        self._close(reason)

    def _close(self, reason: str) -> None:
        self.close_reasons.append(reason)
        self._execute(self.ladder.close(self._clock.now()), reason)
        self._wake.set()

    # -- running ----------------------------------------------------------------------------
    async def run(self, spec: dict[str, Any]) -> SupervisionResult:
        """Start the job with ``spec`` and supervise it until it is reaped."""
        self.process.send(StartJob(self.job_id, spec))
        self._started = True
        # What was asked before the job had started, in order (a job ignores it before).
        if self.disconnected is not None:
            self.process.send(ParticipantDisconnected(self.disconnected))
        if self._close_pending is not None:
            self.process.send(CloseRequest(self._close_pending))
        loop = asyncio.get_running_loop()
        waiter = loop.create_task(self.process.proc.wait(), name=f"job:{self.job_id}/wait")
        reader = loop.create_task(self._read(), name=f"job:{self.job_id}/read")
        reaped = True
        try:
            while True:
                if waiter.done():
                    break
                deadline = self.ladder.next_deadline()
                if deadline is None and self.ladder.state is JobState.SIGKILL_SENT:
                    reaped = False  # SIGKILLed and still not gone: record, stop waiting
                    break
                self._wake.clear()
                wake = asyncio.ensure_future(self._wake.wait())
                timeout = None if deadline is None else max(0.0, deadline - self._clock.now())
                await asyncio.wait(
                    {waiter, wake}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                wake.cancel()
                self._execute(self.ladder.poll(self._clock.now()), "deadline")
            if reaped:
                # The process is gone: its last messages (the report) may still be unread.
                await asyncio.wait({reader}, timeout=READ_TAIL_TIMEOUT)
        finally:
            reader.cancel()
            if not waiter.done():
                waiter.cancel()
            self.process.close_channel()
        now = self._clock.now()
        returncode = self.process.proc.returncode if reaped else None
        outcome = self.ladder.exited(now, returncode)
        return self._result(outcome, returncode, reaped, now)

    async def _read(self) -> None:
        while True:
            try:
                messages = await self.process.receive()
            except IPCProtocolError as exc:
                # A job that garbles its channel is broken: end it through the ladder.
                self.protocol_error = str(exc)
                self._close("protocol_error")
                return
            if messages is None:
                return  # EOF: the process is ending; the waiter sees the exit
            now = self._clock.now()
            for m in messages:
                if isinstance(m, Heartbeat):
                    if self.first_heartbeat_at is None:
                        self.first_heartbeat_at = now  # the job's call is running
                    self.ladder.on_heartbeat(now)
                    self.open_connections = m.open_connections
                    self.reconnects = m.reconnects
                elif isinstance(m, CallEvent):
                    self._call_event(m)
                elif isinstance(m, JobReport):
                    self.report = m.report
                    self.open_connections = 0
                    if "error" not in m.report:
                        self.ladder.on_report(now)
                elif isinstance(m, JobExited):
                    self.exit_code_sent = m.code
                    # Its last message: closing our end lets the job exit at once (it waits
                    # for our EOF so that nothing it wrote is lost).
                    self.process.close_channel()
            self._wake.set()

    def _call_event(self, event: CallEvent) -> None:
        if self._on_call_event is None:
            return
        try:
            self._on_call_event(event.name, event.data)
        except Exception:
            log.exception("job %s: call event %r failed", self.job_id, event.name)
            self._close("call_event_failed")

    def _execute(self, commands: list[Command], why: str) -> None:
        for command in commands:
            log.info(
                "job %s: %s (%s)", self.job_id, command.value, why, extra={"job_id": self.job_id}
            )
            if command is Command.SEND_CLOSE:
                reason = why if why != "deadline" else "job_shutdown"
                if self._started:
                    self.process.send(CloseRequest(reason))
                else:
                    self._close_pending = reason
            elif command is Command.SEND_SIGTERM:
                self.process.signal(signal.SIGTERM)
            elif command is Command.SEND_SIGKILL:
                self.process.signal(signal.SIGKILL)

    def _result(
        self, outcome: JobOutcome, returncode: int | None, reaped: bool, now: float
    ) -> SupervisionResult:
        times = self.ladder.rung_times
        asked = times.get(JobState.CLOSE_REQUESTED.value) or times.get(JobState.SIGTERM_SENT.value)
        close_duration = (now - asked) if asked is not None else None
        if close_duration is None and self.report is not None:
            close_ms = self.report.get("close", {}).get("duration_ms")
            close_duration = close_ms / 1000 if isinstance(close_ms, int | float) else None
        block = {
            "outcome": outcome.value,
            "rung_times_ms": self.ladder.rung_times_ms(),
            "pid": self.process.pid,
            "returncode": returncode,
            "reaped": reaped,
            "unresponsive": self.ladder.unresponsive,
            "reported": self.report is not None and "error" not in self.report,
            "close_requests": list(self.close_reasons),
            "close_duration_ms": None if close_duration is None else round(close_duration * 1e3, 3),
            "job_close_timeout_s": self.config.job_close_timeout,
            "prewarmed": self.process.prewarmed,
            "protocol_error": self.protocol_error,
            "reconnects": dict(self.reconnects),
        }
        return SupervisionResult(self.job_id, outcome, self.report, block, close_duration)

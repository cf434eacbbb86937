"""The job supervisor's escalation ladder (DESIGN I8), pure: no asyncio, no clock reads.

One ``Ladder`` per job process. The asyncio supervisor feeds it events with ``now`` (the
loop clock) and carries out the commands it returns; it sleeps until ``next_deadline()`` and
then calls ``poll(now)``. States and transitions are data::

    RUNNING ──close──▶ CLOSE_REQUESTED ──(job_close_timeout)──▶ SIGTERM_SENT
       │                                                         │ (sigterm_timeout)
       │ unresponsive (no heartbeat for heartbeat_timeout)       ▼
       └────────────────────────────────────────────────▶ SIGTERM_SENT ──▶ SIGKILL_SENT
    any state ──exited──▶ ENDED                         (sigkill_timeout: reap deadline)

A job that is not answering heartbeats cannot read a close request either, so
unresponsiveness skips the ask and goes straight to SIGTERM. The outcome is decided when the
process exits: ``closed`` if it exited by itself after reporting (or with code 0 before any
signal), ``killed_after_sigterm`` / ``killed_after_sigkill`` if it ended after that signal,
``crashed`` if it exited with no report and no signal from us.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum

from voxlane.core.states import StateMachine


class JobState(Enum):
    RUNNING = "running"
    CLOSE_REQUESTED = "close_requested"
    SIGTERM_SENT = "sigterm_sent"
    SIGKILL_SENT = "sigkill_sent"
    ENDED = "ended"


class JobEvent(Enum):
    CLOSE = "close"
    """Somebody wants the job to end (hangup, drain deadline, worker shutdown)."""
    ESCALATE = "escalate"
    """The current rung's deadline passed (or the job stopped answering heartbeats)."""
    EXITED = "exited"
    """The job process is gone (reaped)."""


class Command(Enum):
    SEND_CLOSE = "send_close"
    SEND_SIGTERM = "send_sigterm"
    SEND_SIGKILL = "send_sigkill"


class JobOutcome(StrEnum):
    CLOSED = "closed"
    KILLED_AFTER_SIGTERM = "killed_after_sigterm"
    KILLED_AFTER_SIGKILL = "killed_after_sigkill"
    CRASHED = "crashed"


_S, _E = JobState, JobEvent
LADDER_TRANSITIONS: dict[tuple[JobState, JobEvent], JobState] = {
    (_S.RUNNING, _E.CLOSE): _S.CLOSE_REQUESTED,
    (_S.RUNNING, _E.ESCALATE): _S.SIGTERM_SENT,
    (_S.RUNNING, _E.EXITED): _S.ENDED,
    (_S.CLOSE_REQUESTED, _E.CLOSE): _S.CLOSE_REQUESTED,
    (_S.CLOSE_REQUESTED, _E.ESCALATE): _S.SIGTERM_SENT,
    (_S.CLOSE_REQUESTED, _E.EXITED): _S.ENDED,
    (_S.SIGTERM_SENT, _E.CLOSE): _S.SIGTERM_SENT,
    (_S.SIGTERM_SENT, _E.ESCALATE): _S.SIGKILL_SENT,
    (_S.SIGTERM_SENT, _E.EXITED): _S.ENDED,
    (_S.SIGKILL_SENT, _E.CLOSE): _S.SIGKILL_SENT,
    (_S.SIGKILL_SENT, _E.ESCALATE): _S.SIGKILL_SENT,
    (_S.SIGKILL_SENT, _E.EXITED): _S.ENDED,
    (_S.ENDED, _E.CLOSE): _S.ENDED,
    (_S.ENDED, _E.ESCALATE): _S.ENDED,
}
"""``EXITED`` twice is illegal: a process is reaped once."""

_ENTRY_COMMAND = {
    JobState.CLOSE_REQUESTED: Command.SEND_CLOSE,
    JobState.SIGTERM_SENT: Command.SEND_SIGTERM,
    JobState.SIGKILL_SENT: Command.SEND_SIGKILL,
}


@dataclass(frozen=True, kw_only=True)
class LadderConfig:
    """Deadlines of each rung, in seconds.

    ``job_close_timeout`` is a little above the session's close budget (4 s): a healthy job
    closes its session and reports within it. ``sigterm_timeout``: how long a SIGTERMed
    process gets to die before SIGKILL. ``sigkill_timeout``: how long the supervisor waits to
    reap after SIGKILL before it gives up waiting (the kernel has the last word; we record it).
    """

    job_close_timeout: float = 5.0
    sigterm_timeout: float = 0.5
    sigkill_timeout: float = 2.0
    heartbeat_timeout: float = 3.0

    def __post_init__(self) -> None:
        for name in ("job_close_timeout", "sigterm_timeout", "sigkill_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.heartbeat_timeout <= 0:
            raise ValueError("heartbeat_timeout must be > 0")


@dataclass
class Ladder:
    """The escalation ladder of one job process. Every method is synchronous and never blocks.

    ``close(now)``/``poll(now)`` return the commands to carry out, in order. ``exited(now,
    returncode)`` records the end and returns the outcome. ``rung_times`` says when each
    rung was entered (loop-clock seconds), for the report.
    """

    config: LadderConfig
    started_at: float
    machine: StateMachine[JobState, JobEvent] = field(init=False)
    rung_times: dict[str, float] = field(default_factory=dict)
    last_heartbeat: float = field(init=False)
    reported: bool = False
    unresponsive: bool = False
    outcome: JobOutcome | None = None
    _deadline: float | None = None

    def __post_init__(self) -> None:
        self.machine = StateMachine("job", LADDER_TRANSITIONS, JobState.RUNNING)
        self.last_heartbeat = self.started_at

    @property
    def state(self) -> JobState:
        return self.machine.state

    def on_heartbeat(self, now: float) -> None:
        self.last_heartbeat = max(self.last_heartbeat, now)

    def on_report(self, now: float) -> None:
        """The job sent its session report: it is closing on its own."""
        self.reported = True
        self.rung_times.setdefault("report", now)

    def close(self, now: float) -> list[Command]:
        """Ask the job to end. Idempotent; never moves a job down the ladder."""
        return self._fire(JobEvent.CLOSE, now)

    def next_deadline(self) -> float | None:
        """When ``poll`` must next be called (None: only events can move the ladder)."""
        if self.state is JobState.ENDED:
            return None
        if self.state is JobState.RUNNING:
            return self.last_heartbeat + self.config.heartbeat_timeout
        return self._deadline

    def poll(self, now: float) -> list[Command]:
        """Escalate if the current rung's deadline (or the heartbeat deadline) has passed."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        if self.state is JobState.RUNNING:
            self.unresponsive = True
        if self.state is JobState.SIGKILL_SENT:
            self._deadline = None  # nothing above SIGKILL: wait for the reap, record it
            return []
        return self._fire(JobEvent.ESCALATE, now)

    def exited(self, now: float, returncode: int | None) -> JobOutcome:
        """The process is reaped: decide the outcome (see the module docstring)."""
        before = self.state
        self.machine.fire(JobEvent.EXITED)
        self.rung_times["ended"] = now
        self._deadline = None
        if before is JobState.SIGKILL_SENT:
            self.outcome = JobOutcome.KILLED_AFTER_SIGKILL
        elif before is JobState.SIGTERM_SENT:
            self.outcome = JobOutcome.KILLED_AFTER_SIGTERM
        elif self.reported or returncode == 0:
            self.outcome = JobOutcome.CLOSED
        else:
            self.outcome = JobOutcome.CRASHED
        return self.outcome

    def _fire(self, event: JobEvent, now: float) -> list[Command]:
        before = self.state
        after = self.machine.fire(event)
        if after is before:
            return []
        self.rung_times[after.value] = now
        self._deadline = now + self._rung_timeout(after)
        command = _ENTRY_COMMAND.get(after)
        return [command] if command is not None else []

    def _rung_timeout(self, state: JobState) -> float:
        if state is JobState.CLOSE_REQUESTED:
            return self.config.job_close_timeout
        if state is JobState.SIGTERM_SENT:
            return self.config.sigterm_timeout
        return self.config.sigkill_timeout

    def rung_times_ms(self) -> dict[str, float]:
        """Each rung's entry time in ms since the job started (for the report)."""
        return {k: round((v - self.started_at) * 1000, 3) for k, v in self.rung_times.items()}

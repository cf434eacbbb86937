"""The session's and its agents' lifecycles as pure machines (no asyncio, no clock reads).

Both machines take events with ``now`` (loop-clock seconds) and return the commands the
asyncio layer must carry out; ``next_deadline()`` says when ``poll(now)`` must be called.
Transitions are data (:data:`SESSION_TRANSITIONS`, :data:`ACTIVITY_TRANSITIONS`); an event
not in a table raises :class:`~voxlane.errors.IllegalTransition` naming machine, state and
event. Every deadline comes from one :class:`~voxlane.core.close_plan.Budget`.

Session (one ``AgentSession``)::

    NEW ──start──▶ STARTING ──started──▶ RUNNING ──drain──▶ DRAINING ──drained──▶ CLOSING
     │                │ drain ─────────────────────────────▶   │ drain_expired ──▶ CLOSING
     └──drain/close───┴──close──▶ CLOSING ◀──close── RUNNING   └─close─▶ CLOSING ──closed──▶ CLOSED

    CLOSING and CLOSED absorb further drain/close requests (every caller joins the one close).

Activity (one agent run by the session)::

    PENDING ──start──▶ ENTERING ──entered──▶ ACTIVE
       │                  │ drain               │ drain
       │                  ▼                     ▼
       │               DRAINING ──drained──▶ EXITING ──exited──▶ SETTLING ──settled──▶ RELEASING
       │ close          │ close / drain deadline  │ close / drain deadline  ▲        │ released
       ▼                ▼                         ▼                         │        ▼
    RELEASING        SETTLING ◀──────────────────┴─────────────────────────┘      CLOSED

A PENDING activity (a handoff target not started yet) that is closed never ran a hook: its
queued speech is reported undelivered. ENTERING/ACTIVE closed by force settle first (their
tasks are cancelled, ``on_exit`` runs if ``on_enter`` did, what is left is abandoned at the
settle deadline). A graceful end settles too, after ``on_exit``: what the agent left running
(an ``on_enter`` that never returned, a hook) is cancelled at once and abandoned if it will
not stop. RELEASING closes the activity's provider streams; CLOSED is final, and only then
may the session forget the activity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from voxlane.core.close_plan import Budget, ClosePlan, DrainPlan
from voxlane.core.states import CloseReason, SessionState, StateMachine

__all__ = [
    "ACTIVITY_TRANSITIONS",
    "SESSION_TRANSITIONS",
    "ActivityCommand",
    "ActivityEvent",
    "ActivityLifecycle",
    "ActivityState",
    "CloseReason",
    "SessionCommand",
    "SessionEvent",
    "SessionLifecycle",
    "SessionState",
]


# -- session ---------------------------------------------------------------------------------
class SessionEvent(Enum):
    START = "start"
    STARTED = "started"
    DRAIN = "drain"
    """A graceful close was requested (``shutdown(drain=True)``)."""
    CLOSE = "close"
    """A forced close was requested (any other entry point)."""
    DRAINED = "drained"
    DRAIN_EXPIRED = "drain_expired"
    CLOSED = "closed"


_SS, _SE = SessionState, SessionEvent
SESSION_TRANSITIONS: dict[tuple[SessionState, SessionEvent], SessionState] = {
    (_SS.NEW, _SE.START): _SS.STARTING,
    (_SS.NEW, _SE.DRAIN): _SS.CLOSING,  # nothing to drain yet
    (_SS.NEW, _SE.CLOSE): _SS.CLOSING,
    (_SS.STARTING, _SE.STARTED): _SS.RUNNING,
    (_SS.STARTING, _SE.DRAIN): _SS.DRAINING,
    (_SS.STARTING, _SE.CLOSE): _SS.CLOSING,
    (_SS.RUNNING, _SE.DRAIN): _SS.DRAINING,
    (_SS.RUNNING, _SE.CLOSE): _SS.CLOSING,
    (_SS.DRAINING, _SE.STARTED): _SS.DRAINING,
    (_SS.DRAINING, _SE.DRAIN): _SS.DRAINING,
    (_SS.DRAINING, _SE.CLOSE): _SS.CLOSING,
    (_SS.DRAINING, _SE.DRAINED): _SS.CLOSING,
    (_SS.DRAINING, _SE.DRAIN_EXPIRED): _SS.CLOSING,
    (_SS.CLOSING, _SE.DRAIN): _SS.CLOSING,
    (_SS.CLOSING, _SE.CLOSE): _SS.CLOSING,
    (_SS.CLOSING, _SE.CLOSED): _SS.CLOSED,
    (_SS.CLOSED, _SE.DRAIN): _SS.CLOSED,
    (_SS.CLOSED, _SE.CLOSE): _SS.CLOSED,
}


class SessionCommand(Enum):
    BEGIN_DRAIN = "begin_drain"
    """Start the closing task in its graceful part (deadline: ``drain_plan.deadline``)."""
    BEGIN_CLOSE = "begin_close"
    """Run the forced close now, on ``close_plan`` (start the closing task, or escalate it)."""


@dataclass
class SessionLifecycle:
    """The session's state, its close reason and every deadline of its end.

    The first close request fixes the reason and error; later ones only escalate (a forced
    request cuts a drain short). ``forced_at`` is when the forced part began: the close must
    be over by ``forced_at + close_timeout``.
    """

    budget: Budget
    machine: StateMachine[SessionState, SessionEvent] = field(init=False)
    reason: CloseReason | None = None
    error: str | None = None
    drain_plan: DrainPlan | None = None
    close_plan: ClosePlan | None = None
    escalations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.machine = StateMachine("session", SESSION_TRANSITIONS, SessionState.NEW)

    @property
    def state(self) -> SessionState:
        return self.machine.state

    @property
    def accepts_speech(self) -> bool:
        """Whether ``say``/``generate_reply`` may queue speech (a drain still plays it)."""
        return self.state in (_SS.STARTING, _SS.RUNNING, _SS.DRAINING)

    @property
    def replies_to_turns(self) -> bool:
        """Whether a completed user turn gets an automatic reply (not while draining)."""
        return self.state in (_SS.STARTING, _SS.RUNNING)

    @property
    def starts_agents(self) -> bool:
        """Whether a pending agent may start (a drain lets a pending handoff complete)."""
        return self.state in (_SS.STARTING, _SS.RUNNING, _SS.DRAINING)

    @property
    def closing(self) -> bool:
        return self.state in (_SS.CLOSING, _SS.CLOSED)

    def start(self, now: float) -> None:
        self.machine.fire(_SE.START)

    def started(self, now: float) -> None:
        """``start()`` has scheduled the first agent. A no-op once closing."""
        if self.state in (_SS.STARTING, _SS.DRAINING):
            self.machine.fire(_SE.STARTED)

    def request_close(
        self,
        now: float,
        reason: CloseReason,
        *,
        drain: bool,
        error: str | None = None,
        trailing_transcript: bool = False,
    ) -> list[SessionCommand]:
        """``trailing_transcript``: the user is mid-utterance (the close plan keeps more
        of the budget for their last words)."""
        if self.reason is None:
            self.reason, self.error = reason, error
        before = self.state
        after = self.machine.fire(_SE.DRAIN if drain else _SE.CLOSE)
        if before is _SS.DRAINING and after is _SS.CLOSING:
            self.escalations.append("drain: cut short by a forced close request")
        return self._entered(before, now, trailing_transcript)

    def drained(self, now: float, *, trailing_transcript: bool = False) -> list[SessionCommand]:
        """The drain completed: every agent played its speech and ran ``on_exit``."""
        before = self.state
        self.machine.fire(_SE.DRAINED)
        return self._entered(before, now, trailing_transcript)

    def next_deadline(self) -> float | None:
        if self.state is _SS.DRAINING and self.drain_plan is not None:
            return self.drain_plan.deadline
        if self.state is _SS.CLOSING and self.close_plan is not None:
            return self.close_plan.hard_deadline
        return None

    def poll(self, now: float, *, trailing_transcript: bool = False) -> list[SessionCommand]:
        """Escalate a drain whose deadline has passed."""
        plan = self.drain_plan
        if self.state is not _SS.DRAINING or plan is None or not plan.expired(now):
            return []
        self.machine.fire(_SE.DRAIN_EXPIRED)
        self.escalations.append("drain: not complete in time, escalated to forced close")
        return self._entered(_SS.DRAINING, now, trailing_transcript)

    def closed(self, now: float) -> None:
        self.machine.fire(_SE.CLOSED)

    def _entered(
        self, before: SessionState, now: float, trailing_transcript: bool
    ) -> list[SessionCommand]:
        after = self.state
        if after is before:
            return []
        if after is _SS.DRAINING:
            self.drain_plan = self.budget.drain(now)
            return [SessionCommand.BEGIN_DRAIN]
        if after is _SS.CLOSING:
            self.close_plan = self.budget.close(now, trailing_transcript=trailing_transcript)
            return [SessionCommand.BEGIN_CLOSE]
        return []


# -- activity --------------------------------------------------------------------------------
class ActivityState(Enum):
    PENDING = "pending"
    ENTERING = "entering"
    ACTIVE = "active"
    DRAINING = "draining"
    EXITING = "exiting"
    SETTLING = "settling"
    RELEASING = "releasing"
    CLOSED = "closed"


class ActivityEvent(Enum):
    START = "start"
    ENTERED = "entered"
    """``on_enter`` returned (or failed)."""
    DRAIN = "drain"
    DRAINED = "drained"
    """Draining: nothing is playing or queued any more."""
    EXITED = "exited"
    """Exiting: ``on_exit`` returned and what it queued has played."""
    CLOSE = "close"
    """Forced: interrupt, settle, abandon (also a drain whose deadline passed)."""
    SETTLED = "settled"
    RELEASED = "released"
    ABORTED = "aborted"
    """The end itself failed (a bug, not user code): streams aborted, tasks abandoned."""


_AS, _AE = ActivityState, ActivityEvent
_ENDING = (_AS.SETTLING, _AS.RELEASING, _AS.CLOSED)
ACTIVITY_TRANSITIONS: dict[tuple[ActivityState, ActivityEvent], ActivityState] = {
    (_AS.PENDING, _AE.START): _AS.ENTERING,
    (_AS.PENDING, _AE.CLOSE): _AS.RELEASING,
    (_AS.ENTERING, _AE.ENTERED): _AS.ACTIVE,
    (_AS.ENTERING, _AE.DRAIN): _AS.DRAINING,
    (_AS.ENTERING, _AE.CLOSE): _AS.SETTLING,
    (_AS.ACTIVE, _AE.DRAIN): _AS.DRAINING,
    (_AS.ACTIVE, _AE.CLOSE): _AS.SETTLING,
    (_AS.DRAINING, _AE.ENTERED): _AS.DRAINING,
    (_AS.DRAINING, _AE.DRAIN): _AS.DRAINING,
    (_AS.DRAINING, _AE.DRAINED): _AS.EXITING,
    (_AS.DRAINING, _AE.CLOSE): _AS.SETTLING,
    (_AS.EXITING, _AE.ENTERED): _AS.EXITING,
    (_AS.EXITING, _AE.DRAIN): _AS.EXITING,
    (_AS.EXITING, _AE.EXITED): _AS.SETTLING,
    (_AS.EXITING, _AE.CLOSE): _AS.SETTLING,
    (_AS.SETTLING, _AE.SETTLED): _AS.RELEASING,
    (_AS.RELEASING, _AE.RELEASED): _AS.CLOSED,
    # Ending states absorb late events: a hook that returns during the settle, a second
    # close request, a drain requested by a close that is already further along.
    **{(s, e): s for s in _ENDING for e in (_AE.ENTERED, _AE.DRAIN, _AE.CLOSE)},
    **{(s, _AE.ABORTED): _AS.CLOSED for s in ActivityState},
}


class ActivityCommand(Enum):
    ENTER = "enter"
    """Attach the agent, resume the speech queue, run ``on_enter`` (and deferred turns)."""
    RUN_ON_EXIT = "run_on_exit"
    INTERRUPT = "interrupt"
    """Stop accepting speech; pause the queue; interrupt every speech; cancel every task."""
    SETTLE = "settle"
    """Wait for tasks until ``plan.settle_wait_deadline``, cancel, abandon by settle deadline."""
    RELEASE = "release"
    """Close the activity's provider streams, newest first, each by its step deadline."""
    DETACH = "detach"


@dataclass
class ActivityLifecycle:
    """One agent's run. ``plan`` is the close plan its end runs on: the session's when the
    session closes, its own when a handoff ends it (drain: ``drain_plan`` first)."""

    name: str
    budget: Budget
    machine: StateMachine[ActivityState, ActivityEvent] = field(init=False)
    entered: bool = False
    """``on_enter`` was started: ``on_exit`` is owed."""
    exit_started: bool = False
    exited_gracefully: bool = False
    """``on_exit`` returned in a graceful end: leftover tasks are cancelled without a wait."""
    purpose: str = "handoff"
    drain_plan: DrainPlan | None = None
    plan: ClosePlan | None = None
    escalations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.machine = StateMachine(f"activity {self.name}", ACTIVITY_TRANSITIONS, _AS.PENDING)

    @property
    def state(self) -> ActivityState:
        return self.machine.state

    @property
    def accepts_speech(self) -> bool:
        return self.state in (_AS.PENDING, _AS.ENTERING, _AS.ACTIVE, _AS.DRAINING, _AS.EXITING)

    @property
    def runs_speech(self) -> bool:
        """Whether queued speech may start now (not while pending, not once closing)."""
        return self.state in (_AS.ENTERING, _AS.ACTIVE, _AS.DRAINING, _AS.EXITING)

    @property
    def ending(self) -> bool:
        """Drain or close has begun: the activity's end task is (or must be) running."""
        return self.state not in (_AS.PENDING, _AS.ENTERING, _AS.ACTIVE)

    @property
    def closed(self) -> bool:
        return self.state is _AS.CLOSED

    def start(self, now: float) -> list[ActivityCommand]:
        self.machine.fire(_AE.START)
        self.entered = True
        return [ActivityCommand.ENTER]

    def on_entered(self, now: float) -> None:
        self.machine.fire(_AE.ENTERED)

    def drain(
        self, now: float, deadline: float | None = None, *, purpose: str = "handoff"
    ) -> list[ActivityCommand]:
        """Graceful end by ``deadline`` (default: the budget's drain timeout from now);
        ``purpose`` names it in escalations (``handoff``, ``drain``).

        A PENDING activity cannot drain (it never ran): draining it closes it.
        """
        if self.state is _AS.PENDING:
            return self.close(now)
        before = self.state
        if self.machine.fire(_AE.DRAIN) is _AS.DRAINING and before is not _AS.DRAINING:
            self.purpose = purpose
            self.drain_plan = (
                DrainPlan(now, deadline) if deadline is not None else self.budget.drain(now)
            )
        return []

    def drained(self, now: float) -> list[ActivityCommand]:
        self.machine.fire(_AE.DRAINED)
        self.exit_started = True
        return [ActivityCommand.RUN_ON_EXIT]

    def exited(self, now: float) -> list[ActivityCommand]:
        self.machine.fire(_AE.EXITED)
        self.exited_gracefully = True
        self.plan = self.plan or self.budget.close(now)
        return [ActivityCommand.SETTLE]

    def close(self, now: float, plan: ClosePlan | None = None) -> list[ActivityCommand]:
        """Forced end on ``plan`` (default: a plan starting now). A plan already running is
        kept: it started earlier, so it ends earlier."""
        before = self.state
        after = self.machine.fire(_AE.CLOSE)
        if after is before:
            return []
        self.plan = self.plan or plan or self.budget.close(now)
        if before is _AS.PENDING:
            return [ActivityCommand.INTERRUPT, ActivityCommand.RELEASE]
        commands = [ActivityCommand.INTERRUPT]
        if self.entered and not self.exit_started:
            self.exit_started = True
            commands.append(ActivityCommand.RUN_ON_EXIT)
        commands.append(ActivityCommand.SETTLE)
        return commands

    def settled(self, now: float) -> list[ActivityCommand]:
        self.machine.fire(_AE.SETTLED)
        return [ActivityCommand.RELEASE]

    def released(self, now: float) -> list[ActivityCommand]:
        self.machine.fire(_AE.RELEASED)
        return [ActivityCommand.DETACH]

    def abort(self, now: float) -> list[ActivityCommand]:
        """Last resort: the end failed; the caller has hard-released everything."""
        self.machine.fire(_AE.ABORTED)
        return [ActivityCommand.DETACH]

    def next_deadline(self) -> float | None:
        """DRAINING/EXITING: the drain deadline; SETTLING: the settle deadline."""
        if self.state in (_AS.DRAINING, _AS.EXITING) and self.drain_plan is not None:
            return self.drain_plan.deadline
        if self.state is _AS.SETTLING and self.plan is not None:
            return self.plan.settle_deadline
        return None

    def poll(self, now: float) -> list[ActivityCommand]:
        """A drain (or ``on_exit``) past its deadline escalates to a forced close."""
        plan = self.drain_plan
        if self.state not in (_AS.DRAINING, _AS.EXITING) or plan is None or not plan.expired(now):
            return []
        phase = "on_exit" if self.state is _AS.EXITING else "speech"
        self.escalations.append(
            f"{self.purpose}: {self.name} {phase} not complete in time, interrupted"
        )
        return self.close(now)

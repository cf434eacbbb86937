"""Every budget split of a session's end, computed in one place (pure).

DESIGN §2: interrupt → settle (≤ settle share) → teardown (the rest) → emit. A
:class:`Budget` (the session's configuration) makes a :class:`ClosePlan` when a forced close
begins and a :class:`DrainPlan` when a graceful one does. A plan is computed once; every
later wait is handed an absolute deadline from it — the settle of each activity, the first
and second cancel of stubborn tasks, the shutdown of the session's own tasks, each teardown
step, and the deadline a provider stream must be released by. Nothing below re-splits time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Budget:
    """How the close and drain budgets are shared.

    ``close_timeout``: the whole forced close, event included.
    ``drain_timeout``: a graceful drain (handoff, ``shutdown(drain=True)``) before it
    escalates to a forced close.
    ``settle_share``: the part of the forced close that speech/tool/hook tasks and a
    trailing transcript may use; ``trailing_settle_share`` replaces it when the caller was
    mid-utterance (a local engine may need most of the budget to finalize their last words).
    ``settle_wait_share``: within the settle window, how long well-behaved tasks (and
    ``on_exit``) may run before they are cancelled; the rest is for cancelling twice.
    ``emit_reserve``: kept back at the end for emitting the event and writing the report.
    ``stream_release_timeout``: how long a speech that ended normally waits for one of its
    streams to close before aborting it.
    """

    close_timeout: float = 4.0
    drain_timeout: float = 10.0
    settle_share: float = 0.5
    trailing_settle_share: float = 0.75
    settle_wait_share: float = 0.75
    emit_reserve: float = 0.05
    stream_release_timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.close_timeout <= 0:
            raise ValueError("close_timeout must be > 0")
        if self.drain_timeout <= 0:
            raise ValueError("drain_timeout must be > 0")
        for name in ("settle_share", "trailing_settle_share", "settle_wait_share"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1)")
        if not 0 <= self.emit_reserve < self.close_timeout:
            raise ValueError("emit_reserve must be in [0, close_timeout)")
        if self.stream_release_timeout <= 0:
            raise ValueError("stream_release_timeout must be > 0")

    def close(self, now: float, *, trailing_transcript: bool = False) -> ClosePlan:
        """The plan of a forced close starting ``now``; ``trailing_transcript``: the user
        was mid-utterance, their last words are still to be finalized."""
        hard = now + self.close_timeout
        teardown = hard - self.emit_reserve
        share = self.trailing_settle_share if trailing_transcript else self.settle_share
        settle = now + (teardown - now) * share
        wait = now + (settle - now) * self.settle_wait_share
        return ClosePlan(
            started_at=now,
            settle_wait_deadline=wait,
            cancel_deadline=wait + (settle - wait) / 2,
            settle_deadline=settle,
            teardown_deadline=teardown,
            hard_deadline=hard,
        )

    def drain(self, now: float) -> DrainPlan:
        return DrainPlan(now, now + self.drain_timeout)

    def stream_release_deadline(self, now: float) -> float:
        """When a stream of a normally finished speech must be released by."""
        return now + self.stream_release_timeout


@dataclass(frozen=True, kw_only=True)
class ClosePlan:
    """Absolute deadlines (loop-clock seconds) of one forced close, in order."""

    started_at: float
    settle_wait_deadline: float
    """Well-behaved tasks and ``on_exit`` may finish until here; then they are cancelled."""
    cancel_deadline: float
    """A task still running after the first cancel is cancelled again here."""
    settle_deadline: float
    """What is still running now is abandoned (and reported with its stack)."""
    teardown_deadline: float
    """Every provider stream and the audio output are released by here."""
    hard_deadline: float
    """The ``close`` event is out by here."""

    def step_deadline(self, now: float, steps_left: int) -> float:
        """Deadline for the next of ``steps_left`` teardown steps: a fair share of what is left.

        A step that finishes early leaves its unused time to the steps after it; a step that
        hangs cannot eat the time of the others.
        """
        remaining = max(0.0, self.teardown_deadline - now)
        return now + remaining / max(1, steps_left)

    def remaining(self, now: float) -> float:
        return max(0.0, self.hard_deadline - now)


@dataclass(frozen=True)
class DrainPlan:
    """A graceful drain: wait for speech until ``deadline``, then escalate to a forced close."""

    started_at: float
    deadline: float

    @classmethod
    def start(cls, now: float, drain_timeout: float) -> DrainPlan:
        if drain_timeout <= 0:
            raise ValueError("drain_timeout must be > 0")
        return cls(now, now + drain_timeout)

    def expired(self, now: float) -> bool:
        return now >= self.deadline

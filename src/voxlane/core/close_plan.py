"""Close phases and their deadlines, all cut from one ``close_timeout`` budget (pure).

DESIGN §2: interrupt → settle (≤ settle share) → teardown (the rest) → emit. The plan is
computed once when close starts; every later wait is given a deadline from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ClosePhase(Enum):
    INTERRUPT = "interrupt"
    SETTLE = "settle"
    TEARDOWN = "teardown"
    EMIT = "emit"


@dataclass(frozen=True, kw_only=True)
class CloseBudget:
    """How the close budget is shared.

    ``close_timeout``: the whole forced close, event included.
    ``settle_share``: the part speech/tool/hook tasks and a trailing transcript may use.
    ``emit_reserve``: kept back at the end for emitting the event and writing the report.
    """

    close_timeout: float = 4.0
    settle_share: float = 0.5
    emit_reserve: float = 0.05

    def __post_init__(self) -> None:
        if self.close_timeout <= 0:
            raise ValueError("close_timeout must be > 0")
        if not 0 < self.settle_share < 1:
            raise ValueError("settle_share must be in (0, 1)")
        if not 0 <= self.emit_reserve < self.close_timeout:
            raise ValueError("emit_reserve must be in [0, close_timeout)")


@dataclass(frozen=True)
class ClosePlan:
    """Absolute deadlines (loop-clock seconds) of one close."""

    started_at: float
    settle_deadline: float
    teardown_deadline: float
    hard_deadline: float

    @classmethod
    def start(cls, now: float, budget: CloseBudget) -> ClosePlan:
        hard = now + budget.close_timeout
        teardown = hard - budget.emit_reserve
        settle = now + (teardown - now) * budget.settle_share
        return cls(now, settle, teardown, hard)

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

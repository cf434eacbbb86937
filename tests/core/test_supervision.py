"""The escalation ladder (pure): table-driven."""

from __future__ import annotations

import pytest

from voxlane.core.supervision import (
    LADDER_TRANSITIONS,
    Command,
    JobEvent,
    JobOutcome,
    JobState,
    Ladder,
    LadderConfig,
)
from voxlane.errors import IllegalTransition

CFG = LadderConfig(
    job_close_timeout=5.0, sigterm_timeout=0.5, sigkill_timeout=2.0, heartbeat_timeout=3.0
)


def test_every_state_handles_close_and_escalate_except_exit_twice() -> None:
    for state in JobState:
        assert (state, JobEvent.CLOSE) in LADDER_TRANSITIONS
        assert (state, JobEvent.ESCALATE) in LADDER_TRANSITIONS
    assert (JobState.ENDED, JobEvent.EXITED) not in LADDER_TRANSITIONS


# (steps, expected outcome, expected final rung times): a step is (now, action[, arg])
CASES = [
    ("closes by itself", [(1.0, "report"), (1.1, "exit", 0)], JobOutcome.CLOSED),
    ("closes when asked", [(1.0, "close"), (2.0, "report"), (2.1, "exit", 0)], JobOutcome.CLOSED),
    ("crashes", [(1.0, "heartbeat"), (2.0, "exit", 3)], JobOutcome.CRASHED),
    ("crashes while closing", [(1.0, "close"), (2.0, "exit", -11)], JobOutcome.CRASHED),
    (
        "blocked: sigterm",
        [(1.0, "close"), (5.9, "poll"), (6.0, "poll"), (6.1, "exit", -15)],
        JobOutcome.KILLED_AFTER_SIGTERM,
    ),
    (
        "ignores sigterm: sigkill",
        [(1.0, "close"), (6.0, "poll"), (6.5, "poll"), (6.6, "exit", -9)],
        JobOutcome.KILLED_AFTER_SIGKILL,
    ),
    (
        "unresponsive without close",
        [(0.5, "heartbeat"), (3.5, "poll"), (3.6, "exit", -15)],
        JobOutcome.KILLED_AFTER_SIGTERM,
    ),
]


@pytest.mark.parametrize(("name", "steps", "outcome"), CASES, ids=[c[0] for c in CASES])
def test_ladder_outcomes(name: str, steps: list[tuple[object, ...]], outcome: JobOutcome) -> None:
    ladder = Ladder(CFG, started_at=0.0)
    result = None
    for step in steps:
        now, action = float(step[0]), step[1]  # type: ignore[arg-type]
        if action == "report":
            ladder.on_report(now)
        elif action == "heartbeat":
            ladder.on_heartbeat(now)
        elif action == "close":
            ladder.close(now)
        elif action == "poll":
            ladder.poll(now)
        elif action == "exit":
            result = ladder.exited(now, step[2])  # type: ignore[arg-type]
    assert result is outcome
    assert ladder.state is JobState.ENDED
    assert ladder.next_deadline() is None


def test_commands_and_deadlines_per_rung() -> None:
    ladder = Ladder(CFG, started_at=10.0)
    assert ladder.next_deadline() == 13.0  # heartbeat deadline
    ladder.on_heartbeat(12.0)
    assert ladder.poll(14.0) == []
    assert ladder.close(14.0) == [Command.SEND_CLOSE]
    assert ladder.close(14.5) == []  # idempotent, deadline not moved
    assert ladder.next_deadline() == 19.0
    assert ladder.poll(18.9) == []
    assert ladder.poll(19.0) == [Command.SEND_SIGTERM]
    assert ladder.next_deadline() == 19.5
    assert ladder.poll(19.5) == [Command.SEND_SIGKILL]
    assert ladder.state is JobState.SIGKILL_SENT
    assert ladder.poll(21.5) == []  # nothing above SIGKILL
    assert ladder.next_deadline() is None
    assert ladder.exited(21.6, -9) is JobOutcome.KILLED_AFTER_SIGKILL
    times = ladder.rung_times_ms()
    assert times["close_requested"] == 4000.0
    assert times["sigterm_sent"] == 9000.0
    assert times["sigkill_sent"] == 9500.0
    assert times["ended"] == pytest.approx(11600.0)


def test_unresponsive_skips_the_ask() -> None:
    ladder = Ladder(CFG, started_at=0.0)
    assert ladder.poll(3.0) == [Command.SEND_SIGTERM]
    assert ladder.unresponsive
    assert ladder.close(3.1) == []  # never down the ladder


def test_exit_twice_is_illegal() -> None:
    ladder = Ladder(CFG, started_at=0.0)
    ladder.exited(1.0, 0)
    with pytest.raises(IllegalTransition):
        ladder.exited(2.0, 0)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        LadderConfig(job_close_timeout=-1)
    with pytest.raises(ValueError):
        LadderConfig(heartbeat_timeout=0)

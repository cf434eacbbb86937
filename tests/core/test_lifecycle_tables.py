"""The session and activity lifecycles: table-driven, synchronous (pure core)."""

from __future__ import annotations

from typing import Any

import pytest

from voxlane.core.close_plan import Budget
from voxlane.core.lifecycle import (
    ACTIVITY_TRANSITIONS,
    SESSION_TRANSITIONS,
    ActivityCommand,
    ActivityEvent,
    ActivityLifecycle,
    ActivityState,
    CloseReason,
    SessionCommand,
    SessionEvent,
    SessionLifecycle,
    SessionState,
)
from voxlane.core.states import StateMachine
from voxlane.errors import IllegalTransition

S, E = SessionState, SessionEvent
A, AE, C = ActivityState, ActivityEvent, ActivityCommand
BUDGET = Budget(close_timeout=4.0, drain_timeout=10.0)


def assert_illegal(m: StateMachine[Any, Any], events: list[Any], bad: Any) -> None:
    """After ``events``, ``bad`` raises naming event and state, and changes nothing."""
    for e in events:
        m.fire(e)
    before = m.state
    with pytest.raises(IllegalTransition) as info:
        m.fire(bad)
    assert bad.name in str(info.value) and before.name in str(info.value)
    assert m.state is before


SESSION_PATHS = [
    ([E.START, E.STARTED], S.RUNNING),
    ([E.CLOSE, E.CLOSED], S.CLOSED),
    ([E.DRAIN], S.CLOSING),
    ([E.START, E.CLOSE], S.CLOSING),
    ([E.START, E.DRAIN, E.STARTED], S.DRAINING),
    ([E.START, E.STARTED, E.DRAIN], S.DRAINING),
    ([E.START, E.STARTED, E.DRAIN, E.DRAINED, E.CLOSED], S.CLOSED),
    ([E.START, E.STARTED, E.DRAIN, E.DRAIN_EXPIRED], S.CLOSING),
    ([E.START, E.STARTED, E.DRAIN, E.CLOSE, E.CLOSE, E.DRAIN], S.CLOSING),
    ([E.START, E.STARTED, E.CLOSE, E.CLOSED, E.CLOSE], S.CLOSED),
]


@pytest.mark.parametrize(("events", "final"), SESSION_PATHS)
def test_session_paths(events: list[SessionEvent], final: SessionState) -> None:
    m = StateMachine("session", SESSION_TRANSITIONS, S.NEW)
    for e in events:
        m.fire(e)
    assert m.state is final


SESSION_ILLEGAL = [
    ([], E.STARTED),
    ([], E.DRAINED),
    ([E.START], E.START),
    ([E.START, E.STARTED], E.START),
    ([E.START, E.STARTED], E.DRAINED),
    ([E.CLOSE], E.START),
    ([E.CLOSE], E.DRAINED),
    ([E.CLOSE, E.CLOSED], E.CLOSED),
    ([E.CLOSE, E.CLOSED], E.START),
]


@pytest.mark.parametrize(("events", "bad"), SESSION_ILLEGAL)
def test_illegal_session_events_name_event_and_state(
    events: list[SessionEvent], bad: SessionEvent
) -> None:
    assert_illegal(StateMachine("session", SESSION_TRANSITIONS, S.NEW), events, bad)


def test_every_session_state_reaches_closed_by_a_forced_close() -> None:
    for state in SessionState:
        m = StateMachine("session", SESSION_TRANSITIONS, state)
        m.fire(E.CLOSE)
        if m.state is S.CLOSING:
            m.fire(E.CLOSED)
        assert m.state is S.CLOSED, state
    assert {e for (s, e) in SESSION_TRANSITIONS if s is S.CLOSED} <= {E.CLOSE, E.DRAIN}


def test_first_request_fixes_the_reason_and_a_forced_one_cuts_the_drain() -> None:
    life = SessionLifecycle(BUDGET)
    life.start(0.0)
    life.started(0.0)
    assert life.request_close(1.0, CloseReason.DRAINED, drain=True) == [SessionCommand.BEGIN_DRAIN]
    assert life.next_deadline() == 11.0
    assert life.accepts_speech and not life.replies_to_turns and life.starts_agents
    assert life.request_close(2.0, CloseReason.PARTICIPANT_DISCONNECTED, drain=False) == [
        SessionCommand.BEGIN_CLOSE
    ]
    assert life.reason is CloseReason.DRAINED
    assert life.close_plan is not None and life.close_plan.started_at == 2.0
    assert life.next_deadline() == 6.0
    assert life.escalations == ["drain: cut short by a forced close request"]
    assert life.request_close(3.0, CloseReason.ERROR, drain=False) == []  # joins
    assert not life.accepts_speech and life.closing


def test_a_drain_expires_at_its_deadline_into_a_forced_close() -> None:
    life = SessionLifecycle(BUDGET)
    life.start(0.0)
    life.started(0.0)
    life.request_close(0.0, CloseReason.DRAINED, drain=True)
    assert life.poll(9.9) == []
    assert life.poll(10.0) == [SessionCommand.BEGIN_CLOSE]
    assert life.state is S.CLOSING and life.close_plan is not None
    assert life.close_plan.hard_deadline == 14.0
    assert "not complete in time" in life.escalations[0]


def test_close_before_start_plans_a_forced_close() -> None:
    life = SessionLifecycle(BUDGET)
    assert life.request_close(5.0, CloseReason.DRAINED, drain=True) == [SessionCommand.BEGIN_CLOSE]
    life.closed(5.0)
    assert life.state is S.CLOSED
    with pytest.raises(IllegalTransition):
        life.start(6.0)


ACTIVITY_PATHS = [
    ([AE.START, AE.ENTERED], A.ACTIVE),
    ([AE.CLOSE, AE.RELEASED], A.CLOSED),
    ([AE.START, AE.DRAIN, AE.ENTERED, AE.DRAINED, AE.EXITED, AE.SETTLED, AE.RELEASED], A.CLOSED),
    ([AE.START, AE.ENTERED, AE.DRAIN, AE.CLOSE, AE.ENTERED, AE.SETTLED], A.RELEASING),
    ([AE.START, AE.ENTERED, AE.DRAIN, AE.DRAINED, AE.CLOSE, AE.SETTLED], A.RELEASING),
    ([AE.START, AE.CLOSE, AE.CLOSE, AE.DRAIN, AE.SETTLED, AE.CLOSE, AE.RELEASED], A.CLOSED),
]


@pytest.mark.parametrize(("events", "final"), ACTIVITY_PATHS)
def test_activity_paths(events: list[ActivityEvent], final: ActivityState) -> None:
    m = StateMachine("activity", ACTIVITY_TRANSITIONS, A.PENDING)
    for e in events:
        m.fire(e)
    assert m.state is final


ACTIVITY_ILLEGAL = [
    ([], AE.ENTERED),
    ([], AE.DRAIN),  # the lifecycle turns a pending drain into a close
    ([AE.START], AE.START),
    ([AE.START], AE.SETTLED),
    ([AE.START, AE.ENTERED], AE.RELEASED),
    ([AE.START, AE.CLOSE], AE.RELEASED),  # released only after settling
    ([AE.CLOSE, AE.RELEASED], AE.START),
    ([AE.CLOSE, AE.RELEASED], AE.RELEASED),
]


@pytest.mark.parametrize(("events", "bad"), ACTIVITY_ILLEGAL)
def test_illegal_activity_events_name_event_and_state(
    events: list[ActivityEvent], bad: ActivityEvent
) -> None:
    assert_illegal(StateMachine("activity", ACTIVITY_TRANSITIONS, A.PENDING), events, bad)


def test_every_activity_state_reaches_closed_by_a_forced_close() -> None:
    for state in ActivityState:
        m = StateMachine("activity", ACTIVITY_TRANSITIONS, state)
        for e in (AE.CLOSE, AE.SETTLED, AE.RELEASED):
            if (m.state, e) in ACTIVITY_TRANSITIONS:
                m.fire(e)
        assert m.state is A.CLOSED, state


def test_forced_close_of_an_entered_agent_owes_on_exit_once() -> None:
    life = ActivityLifecycle("A", BUDGET)
    assert life.start(0.0) == [C.ENTER]
    assert life.close(1.0) == [C.INTERRUPT, C.RUN_ON_EXIT, C.SETTLE]
    assert life.close(1.5) == []
    assert life.plan is not None and life.plan.started_at == 1.0
    assert life.next_deadline() == life.plan.settle_deadline
    assert life.settled(2.0) == [C.RELEASE]
    assert life.released(2.1) == [C.DETACH] and life.closed


def test_pending_activity_closes_without_hooks() -> None:
    life = ActivityLifecycle("B", BUDGET)
    assert life.accepts_speech and not life.runs_speech
    assert life.drain(0.0) == [C.INTERRUPT, C.RELEASE]  # never ran: nothing to drain
    assert life.state is A.RELEASING and not life.entered


def test_graceful_end_runs_on_exit_then_releases() -> None:
    life = ActivityLifecycle("A", BUDGET)
    life.start(0.0)
    life.on_entered(0.1)
    assert life.drain(1.0, deadline=3.0) == []
    assert life.next_deadline() == 3.0
    assert life.poll(2.9) == []
    assert life.drained(2.0) == [C.RUN_ON_EXIT]
    assert life.exited(2.5) == [C.SETTLE]  # what the agent left running is cancelled
    assert life.exited_gracefully and life.settled(2.6) == [C.RELEASE]
    # the close after on_exit ran does not run it again
    assert life.close(2.6) == []


def test_drain_deadline_escalates_and_keeps_an_earlier_plan() -> None:
    life = ActivityLifecycle("A", BUDGET)
    life.start(0.0)
    life.drain(0.0, deadline=2.0)
    assert life.poll(2.0) == [C.INTERRUPT, C.RUN_ON_EXIT, C.SETTLE]
    assert life.state is A.SETTLING and life.escalations
    plan = life.plan
    later = BUDGET.close(3.0)
    assert life.close(3.0, later) == [] and life.plan is plan


def test_session_plan_is_used_for_an_agent_closed_by_the_session() -> None:
    life = ActivityLifecycle("A", BUDGET)
    life.start(0.0)
    plan = BUDGET.close(5.0)
    life.close(5.5, plan)
    assert life.plan is plan


def test_a_close_while_the_user_speaks_keeps_more_time_for_their_last_words() -> None:
    life = SessionLifecycle(BUDGET)
    life.start(0.0)
    life.request_close(
        1.0, CloseReason.PARTICIPANT_DISCONNECTED, drain=False, trailing_transcript=True
    )
    assert life.close_plan == BUDGET.close(1.0, trailing_transcript=True)
    assert life.close_plan.settle_deadline > BUDGET.close(1.0).settle_deadline

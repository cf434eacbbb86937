import pytest

from voxlane.core.states import (
    SESSION_TRANSITIONS,
    SPEECH_TRANSITIONS,
    SessionEvent,
    SessionState,
    SpeechEvent,
    SpeechState,
    session_machine,
    speech_machine,
)
from voxlane.errors import IllegalTransition

S, E = SessionState, SessionEvent

SESSION_CASES = [
    ([E.START, E.STARTED], S.RUNNING),
    ([E.CLOSE, E.CLOSED], S.CLOSED),
    ([E.START, E.CLOSE], S.CLOSING),
    ([E.START, E.STARTED, E.DRAIN], S.DRAINING),
    ([E.START, E.STARTED, E.DRAIN, E.CLOSE, E.CLOSED], S.CLOSED),
    ([E.START, E.STARTED, E.CLOSE, E.CLOSED], S.CLOSED),
]


@pytest.mark.parametrize(("events", "final"), SESSION_CASES)
def test_session_paths(events: list[SessionEvent], final: SessionState) -> None:
    m = session_machine()
    for e in events:
        m.fire(e)
    assert m.state is final


ILLEGAL = [
    ([], E.STARTED),
    ([], E.DRAIN),
    ([E.START], E.START),
    ([E.START, E.STARTED], E.START),
    ([E.CLOSE], E.CLOSE),
    ([E.CLOSE], E.START),
    ([E.CLOSE, E.CLOSED], E.CLOSE),
    ([E.CLOSE, E.CLOSED], E.START),
    ([E.START, E.STARTED, E.DRAIN], E.DRAIN),
]


@pytest.mark.parametrize(("events", "bad"), ILLEGAL)
def test_session_illegal_events_name_event_and_state(
    events: list[SessionEvent], bad: SessionEvent
) -> None:
    m = session_machine()
    for e in events:
        m.fire(e)
    before = m.state
    assert not m.can(bad)
    with pytest.raises(IllegalTransition) as info:
        m.fire(bad)
    assert bad.name in str(info.value) and before.name in str(info.value)
    assert m.state is before  # an illegal event changes nothing


def test_every_state_can_reach_closed() -> None:
    for state in SessionState:
        m = session_machine()
        m.state = state
        for e in (E.CLOSE, E.CLOSED):
            if m.can(e):
                m.fire(e)
        assert m.state is S.CLOSED, state


def test_closed_is_terminal() -> None:
    assert not [k for k in SESSION_TRANSITIONS if k[0] is S.CLOSED]


P, PE = SpeechState, SpeechEvent
SPEECH_CASES = [
    ([PE.SCHEDULE, PE.FINISH], P.DONE),
    ([PE.INTERRUPT], P.DONE),
    ([PE.SCHEDULE, PE.INTERRUPT], P.INTERRUPTING),
    ([PE.SCHEDULE, PE.INTERRUPT, PE.INTERRUPT, PE.FINISH], P.DONE),
    ([PE.SCHEDULE, PE.FINISH, PE.INTERRUPT], P.DONE),
    ([PE.FINISH], P.DONE),
]


@pytest.mark.parametrize(("events", "final"), SPEECH_CASES)
def test_speech_paths(events: list[SpeechEvent], final: SpeechState) -> None:
    m = speech_machine()
    for e in events:
        m.fire(e)
    assert m.state is final


@pytest.mark.parametrize("state", [P.PLAYING, P.INTERRUPTING, P.DONE])
def test_speech_cannot_be_scheduled_twice(state: SpeechState) -> None:
    assert (state, PE.SCHEDULE) not in SPEECH_TRANSITIONS

import pytest

from voxlane.core.states import (
    SPEECH_TRANSITIONS,
    SpeechEvent,
    SpeechState,
    speech_machine,
)

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

from voxlane.core.turns import TurnTracker, UserState


def test_turn_completes_after_endpoint_delay() -> None:
    t = TurnTracker(min_endpoint_delay=0.5)
    assert t.on_speech_start(1.0) is True
    assert t.on_speech_start(1.1) is False  # already speaking: not a new barge-in
    t.on_interim("book me")
    assert t.mid_utterance
    t.on_final("book me on tuesday", 2.0)
    t.on_speech_end(2.1)
    assert t.state is UserState.LISTENING
    assert t.next_deadline() == 2.6
    assert t.poll(2.5) is None
    assert t.poll(2.6) == "book me on tuesday"
    assert t.poll(3.0) is None and not t.has_pending


def test_late_final_completes_at_once() -> None:
    t = TurnTracker(min_endpoint_delay=0.5)
    t.on_speech_start(0.0)
    t.on_speech_end(1.0)
    assert t.poll(2.0) is None  # nothing final yet
    t.on_final("hello", 2.0)
    assert t.poll(2.0) == "hello"


def test_speaking_again_postpones_the_turn_and_joins_the_text() -> None:
    t = TurnTracker(min_endpoint_delay=0.5)
    t.on_speech_start(0.0)
    t.on_final("I want", 1.0)
    t.on_speech_end(1.0)
    t.on_speech_start(1.3)
    assert t.poll(1.6) is None
    t.on_final("a table", 2.0)
    t.on_speech_end(2.0)
    assert t.poll(2.5) == "I want a table"


def test_flush_at_close_keeps_interim_words() -> None:
    t = TurnTracker()
    t.on_speech_start(0.0)
    t.on_final("first part", 1.0)
    t.on_interim("and the last")
    assert t.flush() == "first part and the last"
    assert t.flush() is None


def test_silent_caller_has_nothing_to_wait_for() -> None:
    t = TurnTracker()
    assert not t.mid_utterance and t.next_deadline() is None and t.flush() is None


def test_empty_finals_are_ignored() -> None:
    t = TurnTracker(min_endpoint_delay=0.0)
    t.on_speech_start(0.0)
    t.on_final("  ", 1.0)
    t.on_speech_end(1.0)
    assert t.poll(5.0) is None

from voxlane.core.scheduling import PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_NORMAL, SpeechQueue


def test_one_at_a_time_priority_then_fifo() -> None:
    q = SpeechQueue()
    q.enqueue("a", PRIORITY_NORMAL)
    q.enqueue("b", PRIORITY_LOW)
    q.enqueue("c", PRIORITY_HIGH)
    q.enqueue("d", PRIORITY_NORMAL)
    order = []
    while (sid := q.next_to_start()) is not None:
        assert q.next_to_start() is None  # one at a time
        order.append(sid)
        q.finish(sid)
    # "a" started before the others were queued? No: all queued first, so priority rules.
    assert order == ["c", "a", "d", "b"]


def test_first_started_is_not_preempted_by_higher_priority() -> None:
    q = SpeechQueue()
    q.enqueue("low", PRIORITY_LOW)
    assert q.next_to_start() == "low"
    q.enqueue("high", PRIORITY_HIGH)
    assert q.next_to_start() is None
    q.finish("low")
    assert q.next_to_start() == "high"


def test_pause_blocks_starts_and_resume_restores() -> None:
    q = SpeechQueue()
    q.enqueue("a")
    q.pause()
    assert q.next_to_start() is None
    q.resume()
    assert q.next_to_start() == "a"


def test_remove_and_clear() -> None:
    q = SpeechQueue()
    for sid in "abc":
        q.enqueue(sid)
    assert q.remove("b") and not q.remove("zz")
    assert q.next_to_start() == "a"
    assert q.clear() == ["c"]
    assert not q.is_idle()  # "a" still current
    q.finish("a")
    assert q.is_idle()


def test_finish_of_queued_speech_removes_it() -> None:
    q = SpeechQueue()
    q.enqueue("a")
    q.enqueue("b")
    q.finish("b")
    assert q.queued == ["a"]

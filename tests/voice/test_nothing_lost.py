"""Issue #10 items 1-2: nothing the caller said is lost to the close, and nothing the close
leaves running is missing from the report."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from voice_helpers import ScriptAgent, start_harness

from voxlane import CloseReason
from voxlane.testing import FakeReply, HangingCloseSTT, HangingCloseTTS, HangingLLM


def user_texts(history: list) -> list[str]:  # type: ignore[type-arg]
    return [m.text for m in history if m.role == "user"]


async def test_a_turn_finished_during_a_graceful_drain_reaches_history() -> None:
    # The agent is speaking and cannot be interrupted, so the turn is held until the drain
    # has played the speech; the input stays attached while draining.
    h = await start_harness(
        ScriptAgent(greeting=None),
        close_timeout=4.0,
        drain_timeout=10.0,
        allow_interruptions=False,
    )
    h.session.say("Let me read you the whole list of opening hours for this week, slowly.")
    await asyncio.sleep(0.3)
    speaking = asyncio.ensure_future(h.caller.say("one more question please", trailing_silence=1.0))
    await asyncio.sleep(0.2)  # the caller is mid-utterance when the drain starts
    h.session.shutdown(drain=True)
    await speaking
    event = await h.session.wait_closed()
    assert event.reason is CloseReason.DRAINED
    assert user_texts(event.history) == ["one more question please"]
    assert h.open_connections() == 0


async def test_a_turn_whose_endpoint_timer_fires_during_a_slow_on_exit_reaches_history() -> None:
    # The caller finishes a sentence (final transcript 0.3 s into the silence) and hangs up
    # 0.2 s later, before the 0.5 s endpoint delay commits the turn; on_exit then takes 1 s,
    # and the endpoint timer fires inside it.
    async def slow_exit() -> None:
        await asyncio.sleep(1.0)

    h = await start_harness(ScriptAgent(greeting=None, on_exit_body=slow_exit), close_timeout=4.0)
    await h.caller.silence(0.3)
    await h.caller.say("please cancel my thursday appointment", trailing_silence=0.5)
    h.caller.hang_up()
    event = await h.session.wait_closed()
    assert event.reason is CloseReason.PARTICIPANT_DISCONNECTED
    assert user_texts(event.history) == ["please cancel my thursday appointment"]
    assert h.open_connections() == 0


async def live_tasks_not_in(abandoned: Counter[str], mine: set[asyncio.Task[object]]) -> list[str]:
    """Tasks still alive after the close that the report does not name (after letting the
    cancelled ones unwind)."""
    unreported: Counter[str] = Counter()
    for _ in range(50):
        live = [t for t in asyncio.all_tasks() if not t.done() and t not in mine]
        unreported = Counter(t.get_name() for t in live) - abandoned
        if not unreported:
            break
        await asyncio.sleep(0)
    return sorted(unreported.elements())


@pytest.mark.parametrize(
    "providers",
    [
        {"stt": HangingCloseSTT()},
        {"tts": HangingCloseTTS()},
        {"llm": HangingLLM([FakeReply("never")]), "tts": HangingCloseTTS()},
    ],
    ids=["stt-close-ignores-cancel", "tts-close-ignores-cancel", "stuck-reply-stuck-close"],
)
async def test_every_task_alive_after_close_is_in_report_abandoned(providers: dict) -> None:  # type: ignore[type-arg]
    mine = {t for t in asyncio.all_tasks() if not t.done()}
    h = await start_harness(
        ScriptAgent(greeting="Hello there, this is the clinic."), close_timeout=2.0, **providers
    )
    await h.caller.say("I need an appointment", trailing_silence=0.8)
    event = await h.session.aclose()
    abandoned = Counter(a.name for a in event.report.abandoned)
    assert abandoned, "a stream whose close ignores cancellation leaves a task behind"
    assert await live_tasks_not_in(abandoned, mine | {asyncio.current_task()}) == []  # type: ignore[operator]
    assert event.report.open_connections_after == 0

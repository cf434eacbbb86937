"""DESIGN I6: the caller's last words survive the hangup; a silent caller's close waits for
nothing."""

from __future__ import annotations

import asyncio

from voice_helpers import ScriptAgent, start_harness

from voxlane import CloseReason


async def test_hangup_mid_utterance_keeps_the_final_transcript() -> None:
    h = await start_harness(ScriptAgent(greeting=None), close_timeout=4.0)
    await h.caller.silence(0.5)
    await h.caller.say_partially("I also need to cancel my thursday appointment", 0.6)
    start = h.now
    h.caller.hang_up()
    event = await h.session.wait_closed()
    assert event.reason is CloseReason.PARTICIPANT_DISCONNECTED
    assert h.now - start <= 4.0
    users = [m.text for m in event.history if m.role == "user"]
    assert users == ["I also need to cancel my thursday appointment"]
    assert h.open_connections() == 0


async def test_silent_caller_close_waits_for_nothing() -> None:
    h = await start_harness(ScriptAgent(greeting=None))
    await h.caller.silence(2.0)
    start = h.now
    h.caller.hang_up()
    event = await h.session.wait_closed()
    assert h.now - start == 0.0  # no fixed transcript timeout, not a single timer
    assert event.report.duration_ms == 0.0
    assert h.open_connections() == 0


async def test_hangup_while_agent_speaks_marks_reply_interrupted() -> None:
    h = await start_harness(
        ScriptAgent(greeting="Welcome to the clinic, how can I help you today?")
    )
    await asyncio.sleep(0.5)
    h.caller.hang_up()
    event = await h.session.wait_closed()
    said = [m for m in event.history if m.role == "assistant"]
    assert said and said[0].interrupted
    assert event.report.duration_ms < 50

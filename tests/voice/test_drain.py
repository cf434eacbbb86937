"""DESIGN I4: graceful drain lets speech finish, and is still bounded."""

from __future__ import annotations

import asyncio

from voice_helpers import ScriptAgent, start_harness

from voxlane import CloseReason
from voxlane.testing import EndlessTTS, FakeTTS


async def test_drain_plays_queued_and_current_speech_then_closes() -> None:
    h = await start_harness(ScriptAgent(greeting=None), close_timeout=4.0)
    texts = ["This is the first sentence that takes a while to say.", "And it is followed."]
    first = h.session.say(texts[0])
    second = h.session.say(texts[1])
    await asyncio.sleep(0.5)
    h.session.shutdown(drain=True)
    event = await h.session.wait_closed()
    assert event.reason is CloseReason.DRAINED
    assert first.done() and second.done()
    assert not first.interrupted and not second.interrupted
    said = [m for m in event.history if m.role == "assistant"]
    assert [m.interrupted for m in said] == [False, False]
    assert not event.report.escalations and h.open_connections() == 0
    # Both sentences really played (fake TTS: 50 ms per character).
    expected_frames = sum(len(t) for t in texts) * 0.05 / 0.02
    assert h.room.audio_output.frames_played >= expected_frames - 2  # type: ignore[attr-defined]


async def test_drain_that_exceeds_its_timeout_escalates_to_forced_close() -> None:
    h = await start_harness(
        ScriptAgent(greeting=None), tts=EndlessTTS(), drain_timeout=2.0, close_timeout=4.0
    )
    handle = h.session.say("This speech never ends.")
    await asyncio.sleep(0.5)
    start = h.now
    h.session.shutdown(drain=True)
    event = await h.session.wait_closed()
    elapsed = h.now - start
    assert 2.0 - 1e-6 <= elapsed <= 2.0 + 4.0 + 1e-6
    assert event.reason is CloseReason.DRAINED
    assert any("drain" in e for e in event.report.escalations)
    assert handle.interrupted and h.open_connections() == 0


async def test_forced_request_cuts_a_drain_short() -> None:
    h = await start_harness(ScriptAgent(greeting=None), tts=EndlessTTS(), drain_timeout=60.0)
    h.session.say("endless")
    await asyncio.sleep(0.2)
    h.session.shutdown(drain=True)
    await asyncio.sleep(1.0)
    start = h.now
    await h.session.aclose()
    assert h.now - start <= 4.0 + 1e-6
    assert h.open_connections() == 0


async def test_handoff_drains_the_old_agent_first() -> None:
    first = ScriptAgent(greeting=None)
    h = await start_harness(first, tts=FakeTTS())
    speech = h.session.say("Let me transfer you to my colleague now.")
    second = ScriptAgent(greeting="Hi, I am the colleague.")
    await asyncio.sleep(0.3)
    h.session.update_agent(second)
    early = h.session.say("Queued for the new agent.")
    await speech
    assert not speech.interrupted
    await early
    await asyncio.sleep(3.0)  # the new agent's greeting, queued by on_enter after "early"
    assert first.exited == 1 and second.entered == 1 and h.session.current_agent is second
    texts = [m.text for m in h.session.history if m.role == "assistant"]
    assert texts[0] == "Let me transfer you to my colleague now."
    assert set(texts[1:]) == {"Hi, I am the colleague.", "Queued for the new agent."}
    await h.session.aclose()


async def test_a_stuck_on_exit_during_handoff_is_reported_at_close() -> None:
    from voxlane.testing import swallow_cancellation_forever

    first = ScriptAgent(greeting=None, on_exit_body=swallow_cancellation_forever)
    h = await start_harness(first, drain_timeout=1.0, close_timeout=4.0)
    second = ScriptAgent(greeting="Hello from the second agent.")
    h.session.update_agent(second)
    await asyncio.sleep(8.0)  # drain times out (1 s), old agent closed (≤ 4 s), new one starts
    assert second.entered == 1
    event = await h.session.aclose()
    assert any(a.name.endswith("on_exit") for a in event.report.abandoned)
    assert any("handoff" in e for e in event.report.escalations)

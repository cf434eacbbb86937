"""Interrupting agent speech stops its audio at once, not after the output buffer drains.

Regression: the interrupt cleared the output buffer, then cancelled the speech task; in
between, the TTS forwarder (blocked on the full buffer) refilled it, and up to
``max_buffer_s`` (1 s) of stale audio still played after barge-in.
"""

from __future__ import annotations

import asyncio

from voice_helpers import ScriptAgent, start_harness


async def test_interrupt_stops_agent_audio_within_a_frame() -> None:
    h = await start_harness(ScriptAgent(greeting=None))
    handle = h.session.say("A long announcement that takes several seconds to play out. " * 2)
    await asyncio.sleep(0.5)
    output = h.room.audio_output
    before = output.frames_played  # type: ignore[attr-defined]
    h.session.interrupt()
    await handle
    await asyncio.sleep(1.5)
    assert handle.interrupted
    assert output.frames_played - before <= 1  # type: ignore[attr-defined]
    await h.session.aclose()

"""A scripted conversation on fakes: turns, tool round trip, barge-in, events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from voice_helpers import ScriptAgent, start_harness

from voxlane import AgentState, RunContext
from voxlane.testing import FakeReply


async def test_user_turn_gets_a_reply_with_the_conversation_so_far() -> None:
    h = await start_harness(ScriptAgent(greeting=None), replies=["Sure, tuesday works."])
    await h.caller.say("can I come on tuesday", trailing_silence=3.0)
    roles = [(m.role, m.text) for m in h.session.history]
    assert roles == [("user", "can I come on tuesday"), ("assistant", "Sure, tuesday works.")]
    ctx, _ = h.llm.requests[0]
    assert ctx.messages[0].role == "system" and "test agent" in ctx.messages[0].text
    assert ctx.messages[-1].text == "can I come on tuesday"
    await h.session.aclose()


async def test_tool_round_trip() -> None:
    calls: list[Any] = []

    async def record(ctx: RunContext) -> dict[str, str]:
        calls.append(ctx.function_call)
        return {"status": "booked"}

    h = await start_harness(
        ScriptAgent(greeting=None, tool_body=record),
        replies=[FakeReply("One moment.", tool_calls=[("act", {})]), "You are booked."],
    )
    executed: list[Any] = []
    h.session.on("function_tools_executed", executed.append)
    await h.caller.say("book it", trailing_silence=4.0)
    assert len(calls) == 1
    history = [(m.role, m.text) for m in h.session.history]
    assert history == [
        ("user", "book it"),
        ("assistant", "One moment."),
        ("tool", '{"status": "booked"}'),
        ("assistant", "You are booked."),
    ]
    assert executed[0].outputs == ['{"status": "booked"}']
    # The second LLM round saw the tool result.
    second_ctx, tools = h.llm.requests[1]
    assert second_ctx.messages[-1].role == "tool" and tools[0].name == "act"
    await h.session.aclose()


async def test_bad_tool_calls_are_reported_to_the_llm_not_raised() -> None:
    async def explode(ctx: RunContext) -> str:
        raise RuntimeError("database down")

    h = await start_harness(
        ScriptAgent(greeting=None, tool_body=explode),
        replies=[
            FakeReply(tool_calls=[("act", {}), ("nope", {}), ("act", {"extra": 1})]),
            "Sorry, something went wrong.",
        ],
    )
    errors: list[Any] = []
    h.session.on("error", errors.append)
    await h.caller.say("do it", trailing_silence=3.0)
    tool_outputs = [m.text for m in h.session.history if m.role == "tool"]
    assert tool_outputs[0] == "error: RuntimeError: database down"
    assert tool_outputs[1] == "error: unknown tool 'nope'"
    assert "unknown arguments" in tool_outputs[2]
    assert errors and errors[0].recoverable
    assert h.session.history[-1].text == "Sorry, something went wrong."
    await h.session.aclose()


async def test_tool_loop_is_bounded_by_max_tool_steps() -> None:
    h = await start_harness(
        ScriptAgent(greeting=None),
        replies=[FakeReply(tool_calls=[("act", {})])] * 10,
        max_tool_steps=3,
    )
    await h.caller.say("loop forever", trailing_silence=3.0)
    assert len(h.llm.requests) == 3
    await h.session.aclose()


async def test_barge_in_interrupts_the_agent_and_history_says_so() -> None:
    long_reply = "Our opening hours are eight to six on weekdays and nine to one on saturdays."
    h = await start_harness(ScriptAgent(greeting=None), replies=[long_reply, "Yes?"])
    states: list[AgentState] = []
    h.session.on("agent_state_changed", lambda ev: states.append(ev.new_state))
    await h.caller.say("when are you open", trailing_silence=1.5)
    assert h.session.agent_state is AgentState.SPEAKING
    output = h.room.audio_output
    played_before = output.frames_played  # type: ignore[attr-defined]
    await h.caller.say("wait", trailing_silence=3.0)
    first = next(m for m in h.session.history if m.role == "assistant")
    assert first.interrupted
    # Agent audio stopped: far fewer frames than the whole reply (50 ms per char).
    assert output.frames_played - played_before < len(long_reply) * 0.05 / 0.02  # type: ignore[attr-defined]
    assert AgentState.THINKING in states and AgentState.SPEAKING in states
    assert h.session.history[-1].text == "Yes?"
    await h.session.aclose()


async def test_uninterruptible_speech_survives_barge_in_but_not_force() -> None:
    h = await start_harness(ScriptAgent(greeting=None))
    handle = h.session.say("Please listen to this whole legal notice.", allow_interruptions=False)
    await asyncio.sleep(0.3)
    h.session.interrupt()
    await asyncio.sleep(0.1)
    assert not handle.done()
    h.session.interrupt(force=True)
    await handle
    assert handle.interrupted
    await h.session.aclose()


async def test_speech_handle_is_awaitable_and_ordered() -> None:
    h = await start_harness(ScriptAgent(greeting=None))
    loop = asyncio.get_running_loop()
    a = h.session.say("one two three")
    b = h.session.say("four")
    assert not a.done() and not b.done()
    start = loop.time()
    assert await a is a
    first_done = loop.time() - start
    await b.wait_for_playout()
    assert first_done > 0.4  # 13 chars at 50 ms, played at real-time pace
    assert loop.time() - start > first_done
    await h.session.aclose()


async def test_events_fire_for_a_turn() -> None:
    h = await start_harness(ScriptAgent(greeting=None), replies=["Hi."])
    seen: dict[str, int] = {}
    for name in (
        "user_state_changed",
        "user_input_transcribed",
        "conversation_item_added",
        "speech_created",
        "agent_state_changed",
    ):
        h.session.on(name, lambda _ev, n=name: seen.__setitem__(n, seen.get(n, 0) + 1))  # type: ignore[arg-type]
    await h.caller.say("hello there friend", trailing_silence=3.0)
    assert all(seen.get(n) for n in seen) and len(seen) == 5
    await h.session.aclose()


async def test_async_listeners_are_refused() -> None:
    h = await start_harness(ScriptAgent(greeting=None))

    async def listener(_: object) -> None:
        return None

    try:
        h.session.on("close", listener)
    except ValueError as exc:
        assert "async" in str(exc)
    else:
        raise AssertionError("async listener accepted")
    await h.session.aclose()


async def test_turn_metrics_follow_the_pipeline() -> None:
    from voxlane.testing import FakeTTS

    h = await start_harness(
        ScriptAgent(greeting=None),
        replies=[FakeReply("Sure.", delay=0.25)],
        tts=FakeTTS(first_frame_delay=0.1),
        min_endpoint_delay=0.5,
    )
    seen: list[Any] = []
    h.session.on("turn_metrics", seen.append)
    await h.caller.say("hello there", trailing_silence=3.0)
    assert len(seen) == 1
    parts = seen[0].parts_ms()
    assert parts["end_of_speech_to_commit"] == pytest.approx(500, abs=25)
    assert parts["llm_first_token"] == pytest.approx(250, abs=1)
    assert parts["first_token_to_tts_audio"] == pytest.approx(100, abs=1)
    assert parts["end_of_speech_to_first_audio"] == pytest.approx(850, abs=30)
    await h.session.aclose()

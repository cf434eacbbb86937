"""Regressions found reviewing the lifecycle rewrite (issue #9): each once broke a promise."""

from __future__ import annotations

import asyncio

import pytest
from voice_helpers import ScriptAgent, start_harness

from voxlane import RunContext, VoxlaneError
from voxlane.testing import FakeLLM, FakeReply, FakeSTT, FakeTTS, swallow_cancellation_forever
from voxlane.testing.fakes import FakeLLMStream, FakeSTTStream, FakeTTSStream


class _CancelledCloseSTTStream(FakeSTTStream):
    async def _aclose_impl(self) -> None:  # the common "cancel my reader, await it" pattern
        reader = asyncio.ensure_future(asyncio.sleep(10))
        reader.cancel()
        await reader


class _CancelledCloseSTT(FakeSTT):
    def stream(self, *, sample_rate: int = 16000) -> FakeSTTStream:
        s = _CancelledCloseSTTStream(self, sample_rate)
        self.streams.append(s)
        return s


async def test_a_stream_close_that_raises_cancelled_error_does_not_cut_the_teardown() -> None:
    h = await start_harness(ScriptAgent(greeting=None), stt=_CancelledCloseSTT(), close_timeout=2.0)
    await asyncio.sleep(0.05)
    event = await h.session.aclose()  # returns: the teardown was not cancelled
    steps = {s.name: s.outcome for s in event.report.steps}
    assert steps["close fake-stt"] == "error"
    assert steps["close fake-vad"] == "ok" and steps["audio_output"] == "ok"
    assert h.open_connections() == 0


class _StuckLLMStream(FakeLLMStream):
    async def __anext__(self):  # type: ignore[no-untyped-def]
        await swallow_cancellation_forever()
        raise StopAsyncIteration

    async def _aclose_impl(self) -> None:
        reader = asyncio.ensure_future(asyncio.sleep(10))
        reader.cancel()
        await reader


class _StuckLLM(FakeLLM):
    def make_stream(self, reply: FakeReply) -> FakeLLMStream:
        return _StuckLLMStream(self, reply)


async def test_a_handoff_completes_when_the_old_agents_stream_close_raises() -> None:
    h = await start_harness(
        ScriptAgent(greeting=None),
        llm=_StuckLLM([FakeReply("never")]),
        close_timeout=2.0,
        drain_timeout=0.5,
    )
    h.session.generate_reply()
    await asyncio.sleep(0.05)
    new = ScriptAgent(greeting="I am the new agent.")
    h.session.update_agent(new)
    await asyncio.sleep(5.0)  # drain 0.5 s, forced end of the old agent ≤ 2 s
    assert new.entered == 1
    event = await h.session.aclose()
    assert event.report.open_connections_after == 0


class _BrokenEndInputSTTStream(FakeSTTStream):
    def end_input(self) -> None:
        raise RuntimeError("socket already broken")


class _BrokenEndInputSTT(FakeSTT):
    def stream(self, *, sample_rate: int = 16000) -> FakeSTTStream:
        s = _BrokenEndInputSTTStream(self, sample_rate)
        self.streams.append(s)
        return s


async def test_a_close_phase_that_raises_does_not_skip_the_others() -> None:
    h = await start_harness(
        ScriptAgent(greeting="Hello, how can I help you today?"),
        stt=_BrokenEndInputSTT(),
        close_timeout=2.0,
    )
    await asyncio.sleep(0.3)
    event = await h.session.aclose()
    assert "socket already broken" in (event.report.error or "")
    names = [s.name for s in event.report.steps]
    assert names[0] == "settle" and "close fake-stt" in names and names[-1] == "audio_output"
    await asyncio.sleep(0)
    live = [t for t in asyncio.all_tasks() if not t.done() and t is not asyncio.current_task()]
    assert not live, [t.get_name() for t in live]
    assert h.open_connections() == 0


async def test_a_tool_still_running_when_its_reply_is_interrupted_is_cancelled_and_reported() -> (
    None
):
    calls: list[int] = []

    async def body(ctx: RunContext) -> str:
        calls.append(len(calls))
        if len(calls) == 1:
            await asyncio.sleep(1.0)
            return "looked up"
        try:
            await asyncio.sleep(3.0)
        finally:
            raise RuntimeError("payment failed while cancelled")

    h = await start_harness(
        ScriptAgent(greeting=None, tool_body=body),
        replies=[FakeReply(tool_calls=[("act", {}), ("act", {})]), "All done."],
        close_timeout=2.0,
    )
    errors: list[object] = []
    h.session.on("error", errors.append)
    reply = h.session.generate_reply()
    await asyncio.sleep(0.5)
    h.session.interrupt()
    await reply
    await asyncio.sleep(0.1)
    assert [getattr(e, "source", None) for e in errors] == ["tool:act"]  # reported, once
    event = await h.session.aclose()
    assert event.report.abandoned == []


async def test_awaiting_a_reply_queued_behind_the_tool_fails_fast_instead_of_deadlocking() -> None:
    seen: list[BaseException] = []

    async def body(ctx: RunContext) -> str:
        try:
            await ctx.session.generate_reply(instructions="say more")
        except VoxlaneError as exc:
            seen.append(exc)
        return "done"

    h = await start_harness(
        ScriptAgent(greeting=None, tool_body=body),
        replies=[FakeReply(tool_calls=[("act", {})]), "Finished.", "More."],
        close_timeout=2.0,
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    await h.session.generate_reply()
    assert loop.time() - start < 10.0
    assert len(seen) == 1 and "deadlock" in str(seen[0])
    await h.session.aclose()


class _SlowCloseTTSStream(FakeTTSStream):
    async def _aclose_impl(self) -> None:
        await asyncio.sleep(0.9)


class _SlowCloseTTS(FakeTTS):
    def stream(self) -> FakeTTSStream:
        s = _SlowCloseTTSStream(self)
        self.streams.append(s)
        return s


@pytest.mark.parametrize("tts", [FakeTTS, _SlowCloseTTS])
async def test_heard_text_does_not_count_the_time_spent_closing_the_tts(tts: type[FakeTTS]) -> None:
    h = await start_harness(
        ScriptAgent(greeting=None), tts=tts(seconds_per_char=0.1), close_timeout=2.0
    )
    handle = h.session.say("one two three four five six seven eight nine ten eleven twelve")
    await asyncio.sleep(1.0)  # 10 characters heard: "one two"
    handle.interrupt()
    await handle
    said = [m for m in h.session.history if m.role == "assistant"][-1]
    assert said.interrupted and said.text == "one two"
    await h.session.aclose()

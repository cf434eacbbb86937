"""The races the lifecycle tables close (issue #9), each reproduced on virtual time."""

from __future__ import annotations

import asyncio

import pytest
from voice_helpers import ScriptAgent, start_harness

from voxlane import AgentSession, CloseReason, RunContext
from voxlane.chat import ChatContext, ChatMessage
from voxlane.errors import ProviderError
from voxlane.media import AudioFrame
from voxlane.providers.llm import ChatChunk, LLMStream
from voxlane.testing import (
    FakeLLM,
    FakeReply,
    FakeSTT,
    FakeTTS,
    FakeVAD,
    swallow_cancellation_forever,
)
from voxlane.testing.fakes import FakeLLMStream, FakeTTSStream
from voxlane.testing.scenarios import ask
from voxlane.transports import LocalRoom

BUDGET = 2.0


class TurnAgent(ScriptAgent):
    """Records its hooks in order, into a log shared with the other agents of a test."""

    def __init__(self, name: str, log: list[str], **kwargs: object) -> None:
        super().__init__(greeting=None, **kwargs)  # type: ignore[arg-type]
        self.name, self.log = name, log

    async def on_enter(self) -> None:
        self.log.append(f"{self.name}:enter")
        await super().on_enter()

    async def on_exit(self) -> None:
        self.log.append(f"{self.name}:exit")
        await super().on_exit()

    async def on_user_turn_completed(self, turn_ctx: ChatContext, new_message: ChatMessage) -> None:
        self.log.append(f"{self.name}:turn:{new_message.text}")
        await asyncio.sleep(30)  # still running when the session closes, unless cancelled


async def test_superseded_handoff_target_is_closed_and_never_runs_hooks() -> None:
    log: list[str] = []
    a = TurnAgent("A", log)
    h = await start_harness(a, close_timeout=BUDGET, drain_timeout=5.0)
    h.session.say(
        "A long goodbye from the first agent before the transfer happens.",
        allow_interruptions=False,  # the caller's turn must not cut the handoff short
    )
    await asyncio.sleep(0.1)
    b, c = TurnAgent("B", log), TurnAgent("C", log)
    h.session.update_agent(b)  # A drains (its speech plays), B pending
    queued_to_b = h.session.say("for B")
    await ask(h.session, h.caller, "hello there")  # a turn while the handoff is pending
    h.session.update_agent(c)  # B is superseded before it ever started
    await queued_to_b  # resolved (never played), not left hanging
    for _ in range(200):
        if "C:enter" in log:
            break
        await asyncio.sleep(0.05)
    event = await h.session.aclose()
    assert not [e for e in log if e.startswith("B:")], log
    # the turn reached the agent that started, after its on_enter
    assert log.index("C:enter") < log.index("C:turn:hello there")
    assert log.index("A:exit") < log.index("C:enter")
    assert [u.speech_id for u in event.report.undelivered] == [queued_to_b.id]
    assert event.report.to_dict()["undelivered"][0]["text"] == "for B"
    assert h.open_connections() == 0
    assert event.report.abandoned == []
    alive = [t for t in asyncio.all_tasks() if "on_user_turn" in t.get_name()]
    assert not [t for t in alive if not t.done()]


class _StuckLLMStream(FakeLLMStream):
    """Never answers, and its ``aclose`` hangs too (both ignore cancellation)."""

    async def __anext__(self) -> ChatChunk:
        await swallow_cancellation_forever()
        raise StopAsyncIteration

    async def _aclose_impl(self) -> None:
        await swallow_cancellation_forever()


class _StuckLLM(FakeLLM):
    def make_stream(self, reply: FakeReply) -> LLMStream:
        return _StuckLLMStream(self, reply)


@pytest.mark.parametrize("close_at", [round(0.1 * i, 1) for i in range(0, 40)])
async def test_forced_close_at_any_moment_of_a_handoff_teardown_leaves_nothing_open(
    close_at: float,
) -> None:
    """The old agent's drain times out (its reply never comes), so the handoff settles and
    releases streams whose close hangs; a forced close lands at every moment of it."""
    h = await start_harness(
        ScriptAgent(greeting=None),
        llm=_StuckLLM([FakeReply("never")]),
        close_timeout=BUDGET,
        drain_timeout=0.5,
    )
    h.session.generate_reply()
    await asyncio.sleep(0.05)
    h.session.update_agent(ScriptAgent(greeting="I am the new agent."))
    await asyncio.sleep(close_at)
    start = h.now
    event = await h.session.aclose()
    assert h.now - start <= BUDGET + 1e-6
    assert event.report.open_connections_after == 0 and h.open_connections() == 0
    assert len(h.closes) == 1


async def test_drain_during_pending_handoff_starts_the_new_agent_and_plays_its_speech() -> None:
    log: list[str] = []
    h = await start_harness(TurnAgent("A", log), close_timeout=BUDGET, drain_timeout=8.0)
    h.session.say("The first agent is still talking for a little while.")
    await asyncio.sleep(0.1)
    h.session.update_agent(TurnAgent("B", log))
    queued = h.session.say("Queued for the new agent.")
    h.session.shutdown(drain=True)
    start = h.now
    event = await h.session.wait_closed()
    assert event.reason is CloseReason.DRAINED
    assert queued.done() and not queued.interrupted
    assert log == ["A:enter", "A:exit", "B:enter", "B:exit"]
    texts = [m.text for m in event.history if m.role == "assistant"]
    assert "Queued for the new agent." in texts
    assert h.now - start < 8.0  # drained well before the drain timeout
    assert event.report.undelivered == [] and h.open_connections() == 0


async def test_drain_that_expires_during_pending_handoff_reports_undelivered_speech() -> None:
    log: list[str] = []
    a = TurnAgent("A", log, on_exit_body=swallow_cancellation_forever)
    h = await start_harness(a, close_timeout=BUDGET, drain_timeout=1.0)
    h.session.update_agent(TurnAgent("B", log))  # A's on_exit never returns: B never starts
    queued = h.session.say("Never heard.")
    h.session.shutdown(drain=True)
    start = h.now
    event = await h.session.wait_closed()
    assert h.now - start <= 1.0 + BUDGET + 1e-6
    assert queued.done() and queued.interrupted
    assert [u.text for u in event.report.undelivered] == ["Never heard."]
    assert "B:enter" not in log
    assert any("not complete in time" in e for e in event.report.escalations)
    assert h.open_connections() == 0


class _RaisingAgent(ScriptAgent):
    async def on_exit(self) -> None:
        raise RuntimeError("on_exit exploded")


async def test_hook_errors_are_in_the_teardown_and_session_reports() -> None:
    async def boom() -> None:
        raise ValueError("on_enter exploded")

    agent = _RaisingAgent(greeting=None, on_enter_body=boom)
    h = await start_harness(agent, close_timeout=BUDGET)
    await asyncio.sleep(0.1)
    event = await h.session.aclose()
    sources = {e.source: e.error for e in event.report.errors}
    assert sources["on_enter"] == "ValueError: on_enter exploded"
    assert sources["on_exit"] == "RuntimeError: on_exit exploded"
    errors = h.session.report_dict()["close"]["errors"]
    assert {"source": "on_exit", "error": "RuntimeError: on_exit exploded", "fatal": False} in (
        errors
    )


class _FailingTTSStream(FakeTTSStream):
    """Produces 0.2 s of audio, then fails."""

    async def __anext__(self) -> AudioFrame:
        self._sent = getattr(self, "_sent", 0) + 1
        if self._sent > 10:
            raise ProviderError("synthesis failed", provider="fake-tts")
        return await super().__anext__()


class _FailingTTS(FakeTTS):
    def stream(self) -> FakeTTSStream:
        s = _FailingTTSStream(self)
        self.streams.append(s)
        return s


async def test_tts_failing_mid_reply_is_recorded_as_heard_and_reported_once() -> None:
    text = "This sentence is long enough to take about four seconds of synthesized audio."
    h = await start_harness(ScriptAgent(greeting=None), tts=_FailingTTS(), close_timeout=BUDGET)
    errors: list[object] = []
    h.session.on("error", errors.append)
    handle = h.session.say(text)
    await handle
    assert handle.interrupted
    said = [m for m in h.session.history if m.role == "assistant"][-1]
    assert said.interrupted and text.startswith(said.text) and len(said.text) < len(text) / 2
    assert len(errors) == 1
    event = await h.session.aclose()
    assert [e.source for e in event.report.errors] == ["tts"]


async def test_awaited_say_inside_a_tool_plays_before_the_tool_returns() -> None:
    seen: list[object] = []

    async def tool(ctx: RunContext) -> str:
        seen.extend([ctx.session, ctx.speech_handle, ctx.function_call.name])
        await ctx.session.say("One moment while I check.")  # returns after its playout
        said = [m.text for m in ctx.session.history if m.role == "assistant"]
        seen.append(said)
        return "sunny"

    h = await start_harness(
        ScriptAgent(greeting=None, tool_body=tool),
        replies=[FakeReply(tool_calls=[("act", {})]), "It is sunny."],
        close_timeout=BUDGET,
    )
    reply = h.session.generate_reply()
    start = h.now
    await reply
    assert h.now - start < 10.0  # no deadlock: the reply finished
    assert seen[0] is h.session and seen[1] is reply and seen[2] == "act"
    assert seen[3] == ["", "One moment while I check."]  # played before the tool returned
    texts = [m.text for m in h.session.history if m.role in ("assistant", "tool")]
    assert texts == ["", "One moment while I check.", "sunny", "It is sunny."]
    event = await h.session.aclose()
    assert event.report.abandoned == [] and h.open_connections() == 0


async def test_filler_said_by_a_tool_plays_before_the_answer() -> None:
    async def tool(ctx: RunContext) -> str:
        ctx.session.say("One moment while I check.")  # not awaited
        await asyncio.sleep(0.2)
        return "sunny"

    h = await start_harness(
        ScriptAgent(greeting=None, tool_body=tool),
        replies=[FakeReply(tool_calls=[("act", {})]), "It is sunny."],
        close_timeout=BUDGET,
    )
    await h.session.generate_reply()
    texts = [m.text for m in h.session.history if m.role == "assistant" and m.text]
    assert texts == ["One moment while I check.", "It is sunny."]
    assert not any(m.interrupted for m in h.session.history)
    await h.session.aclose()


@pytest.mark.parametrize("close_at", [round(0.15 * i, 2) for i in range(0, 30)])
async def test_forced_close_at_any_moment_of_a_drain_with_a_pending_handoff(
    close_at: float,
) -> None:
    """shutdown(drain=True) while a handoff is pending and the old agent is stuck (its LLM
    never answers, its stream's aclose hangs); a forced close lands at every moment."""
    h = await start_harness(
        ScriptAgent(greeting=None),
        llm=_StuckLLM([FakeReply("never")]),
        close_timeout=BUDGET,
        drain_timeout=1.5,
    )
    h.session.generate_reply()
    await asyncio.sleep(0.05)
    h.session.update_agent(ScriptAgent(greeting="I am the new agent."))
    h.session.say("Queued for the new agent.")
    closed_at: list[float] = []
    h.session.on("close", lambda _: closed_at.append(h.now))
    h.session.shutdown(drain=True)
    drain_started = h.now
    await asyncio.sleep(close_at)
    forced = h.now
    event = await h.session.aclose()
    if closed_at[0] > forced:  # the forced request came first: it bounds the close
        assert closed_at[0] - forced <= BUDGET + 1e-6
    assert closed_at[0] - drain_started <= 1.5 + BUDGET + 1e-6
    assert event.reason is CloseReason.DRAINED
    assert event.report.open_connections_after == 0 and h.open_connections() == 0
    assert len(h.closes) == 1


async def test_a_session_started_after_its_caller_left_closes_at_once() -> None:
    room = LocalRoom()
    room.join("caller").leave()
    assert [p.identity for p in room.departed_participants()] == ["caller"]
    agent = ScriptAgent()
    session = AgentSession(stt=FakeSTT(), vad=FakeVAD(), llm=FakeLLM(), tts=FakeTTS())
    loop = asyncio.get_running_loop()
    start = loop.time()
    await session.start(agent, room=room)
    event = await session.wait_closed()
    assert loop.time() - start < 0.1
    assert event.reason is CloseReason.PARTICIPANT_DISCONNECTED
    assert agent.entered == 0 and agent.exited == 0  # never ran
    assert event.report.open_connections_after == 0


async def test_a_room_nobody_joins_closes_at_the_participant_timeout() -> None:
    session = AgentSession(
        stt=FakeSTT(), vad=FakeVAD(), llm=FakeLLM(), tts=FakeTTS(), participant_timeout=5.0
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    await session.start(ScriptAgent(greeting=None), room=LocalRoom())
    event = await session.wait_closed()
    assert 5.0 <= loop.time() - start <= 5.0 + session.close_timeout
    assert event.reason is CloseReason.PARTICIPANT_DISCONNECTED
    assert isinstance(event.error, TimeoutError) and "5 s" in str(event.error)
    assert event.report.open_connections_after == 0

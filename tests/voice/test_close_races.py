"""DESIGN I3: all close entry points converge on one closing task; and closes that land in
awkward moments (start, on_enter, handoff, a tool that hands off) neither deadlock nor
exceed the budget."""

from __future__ import annotations

import asyncio

from voice_helpers import ScriptAgent, start_harness

from voxlane import Agent, AgentSession, CloseReason, RunContext, SessionState
from voxlane.testing import (
    FakeLLM,
    FakeReply,
    FakeSTT,
    FakeTTS,
    FakeVAD,
    swallow_cancellation_forever,
)
from voxlane.transports import LocalRoom

BUDGET = 4.0


async def test_racing_entry_points_make_one_close() -> None:
    h = await start_harness(
        ScriptAgent(tool_body=lambda ctx: swallow_cancellation_forever()),
        replies=[FakeReply(tool_calls=[("act", {})])],
        close_timeout=BUDGET,
    )
    await h.caller.say("go", trailing_silence=2.0)
    start = h.now
    waiters = [asyncio.ensure_future(h.session.aclose()) for _ in range(3)]
    h.caller.hang_up()
    h.session.shutdown(drain=False)
    h.session.shutdown(drain=True)
    waiters.append(asyncio.ensure_future(h.session.wait_closed()))
    events = await asyncio.gather(*waiters)
    assert h.now - start <= BUDGET + 1e-6
    assert len({id(e) for e in events}) == 1 and len(h.closes) == 1
    # hang_up() ran before the aclose() tasks got their first turn: the first request wins.
    assert events[0].reason is CloseReason.PARTICIPANT_DISCONNECTED
    assert h.session.state is SessionState.CLOSED and h.open_connections() == 0


async def test_cancelled_waiter_does_not_stop_the_close() -> None:
    h = await start_harness(ScriptAgent(on_exit_body=swallow_cancellation_forever))
    waiter = asyncio.ensure_future(h.session.aclose())
    await asyncio.sleep(0.1)
    waiter.cancel()
    event = await h.session.wait_closed()
    assert event.reason is CloseReason.USER_INITIATED and h.open_connections() == 0


async def test_close_before_start_and_start_after_close() -> None:
    session = AgentSession(stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS())
    event = await session.aclose()
    assert event.reason is CloseReason.USER_INITIATED and session.state is SessionState.CLOSED
    try:
        await session.start(ScriptAgent())
    except Exception as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("start after close must fail")


async def test_close_during_start() -> None:
    room = LocalRoom()
    room.join("caller")
    session = AgentSession(stt=FakeSTT(), vad=FakeVAD(), llm=FakeLLM(), tts=FakeTTS())
    loop = asyncio.get_running_loop()
    starting = asyncio.ensure_future(session.start(ScriptAgent(), room=room))
    closing = asyncio.ensure_future(session.aclose())
    start = loop.time()
    await asyncio.gather(starting, closing)
    assert loop.time() - start <= BUDGET
    assert session.state is SessionState.CLOSED and session.close_event is not None


async def test_close_during_on_enter_that_never_returns() -> None:
    h = await start_harness(ScriptAgent(greeting=None, on_enter_body=swallow_cancellation_forever))
    await asyncio.sleep(1.0)
    start = h.now
    event = await h.session.aclose()
    assert h.now - start <= BUDGET + 1e-6
    assert any(a.name.endswith("on_enter") for a in event.report.abandoned)


class Second(ScriptAgent):
    pass


async def test_close_during_handoff_with_stuck_on_exit_and_on_enter() -> None:
    first = ScriptAgent(greeting=None, on_exit_body=swallow_cancellation_forever)
    h = await start_harness(first, close_timeout=BUDGET, drain_timeout=30.0)
    second = Second(greeting=None, on_enter_body=swallow_cancellation_forever)
    h.session.update_agent(second)
    await asyncio.sleep(0.5)  # the old agent's on_exit is stuck: handoff in progress
    assert first.exited == 1 and second.entered == 0
    start = h.now
    event = await h.session.aclose()
    assert h.now - start <= BUDGET + 1e-6
    assert h.open_connections() == 0 and len(h.closes) == 1
    assert any(a.name.endswith("on_exit") for a in event.report.abandoned)


class Transferee(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="second")
        self.entered = asyncio.Event()

    async def on_enter(self) -> None:
        self.entered.set()
        self.session.say("Second agent here.")


async def test_tool_returning_an_agent_hands_off() -> None:
    target = Transferee()

    async def transfer(ctx: RunContext) -> Agent:
        return target

    h = await start_harness(
        ScriptAgent(greeting=None, tool_body=transfer),
        replies=[FakeReply("Transferring you.", tool_calls=[("act", {})])],
    )
    await h.caller.say("transfer me", trailing_silence=4.0)
    assert target.entered.is_set() and h.session.current_agent is target
    texts = [m.text for m in h.session.history]
    assert "transferred to Transferee" in texts and "Second agent here." in texts
    await h.session.aclose()


async def test_close_during_a_tool_that_triggers_a_handoff() -> None:
    async def handoff_then_hang(ctx: RunContext) -> str:
        ctx.session.update_agent(Transferee())
        await swallow_cancellation_forever()
        return "never"

    h = await start_harness(
        ScriptAgent(greeting=None, tool_body=handoff_then_hang),
        replies=[FakeReply(tool_calls=[("act", {})])],
        close_timeout=BUDGET,
        drain_timeout=60.0,
    )
    await h.caller.say("go", trailing_silence=3.0)
    start = h.now
    event = await h.session.aclose()
    assert h.now - start <= BUDGET + 1e-6
    assert h.open_connections() == 0
    assert any("tool:act" in a.name for a in event.report.abandoned)


async def test_provider_whose_aclose_raises_is_still_released() -> None:
    from voxlane.testing import RaisingCloseSTT

    h = await start_harness(ScriptAgent(greeting=None), stt=RaisingCloseSTT())
    await asyncio.sleep(0.05)  # the participant is linked: its STT stream is open
    event = await h.session.aclose()
    step = next(s for s in event.report.steps if s.name == "close fake-stt")
    assert step.outcome == "error" and "on purpose" in (step.error or "")
    assert h.open_connections() == 0 and event.report.open_connections_after == 0

"""DESIGN I1: every forced close ends within close_timeout, whatever user code does.

The matrix {misbehaving code} × {close entry point}: ``close`` fires exactly once within the
budget, the ledger shows 0 open connections for the session, and the report names each
abandoned task with its stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from voice_helpers import Harness, ScriptAgent, start_harness

from voxlane import CloseReason
from voxlane.errors import ProviderAuthError
from voxlane.testing import (
    EndlessTTS,
    FakeReply,
    FakeSTT,
    FakeTTS,
    HangingCloseSTT,
    HangingLLM,
    await_behind_shield,
    sleep_long,
    swallow_cancellation_forever,
    tool_behind_shield,
    tool_swallowing_cancel,
)
from voxlane.testing.adversarial import slow_tool

CLOSE_TIMEOUT = 4.0


@dataclass
class Scenario:
    agent: Callable[[], ScriptAgent]
    stt: Callable[[], FakeSTT] = FakeSTT
    tts: Callable[[], FakeTTS] = FakeTTS
    llm_hangs: bool = False
    stuck_in: str | None = None  # a function expected on an abandoned task's stack
    listener_raises: bool = False
    setup: dict[str, Any] = field(default_factory=dict)


def _tool_agent(body: Any) -> Callable[[], ScriptAgent]:
    return lambda: ScriptAgent(tool_body=body)


SCENARIOS: dict[str, Scenario] = {
    "tool_swallowing_cancel": Scenario(
        _tool_agent(tool_swallowing_cancel), stuck_in="swallow_cancellation_forever"
    ),
    "tool_behind_shield": Scenario(_tool_agent(tool_behind_shield)),
    "slow_tool": Scenario(_tool_agent(slow_tool)),
    "slow_on_exit": Scenario(
        lambda: ScriptAgent(on_exit_body=swallow_cancellation_forever),
        stuck_in="swallow_cancellation_forever",
    ),
    "slow_on_user_turn_completed": Scenario(lambda: ScriptAgent(on_turn_body=sleep_long)),
    "tts_never_ends": Scenario(lambda: ScriptAgent(), tts=EndlessTTS),
    "stt_aclose_hangs": Scenario(
        lambda: ScriptAgent(), stt=HangingCloseSTT, stuck_in="swallow_cancellation_forever"
    ),
    "llm_hangs": Scenario(
        lambda: ScriptAgent(), llm_hangs=True, stuck_in="swallow_cancellation_forever"
    ),
    "close_listener_raises": Scenario(lambda: ScriptAgent(), listener_raises=True),
    "on_enter_behind_shield": Scenario(lambda: ScriptAgent(on_enter_body=await_behind_shield)),
}

ENTRIES = ["aclose", "shutdown_no_drain", "participant_disconnect", "fatal_provider_error"]
EXPECTED_REASON = {
    "aclose": CloseReason.USER_INITIATED,
    "shutdown_no_drain": CloseReason.USER_INITIATED,
    "participant_disconnect": CloseReason.PARTICIPANT_DISCONNECTED,
    "fatal_provider_error": CloseReason.ERROR,
}


async def _build(scenario: Scenario) -> Harness:
    from voxlane.testing import FakeLLM

    replies: list[FakeReply | str] = [FakeReply(tool_calls=[("act", {})]), "All done."]
    llm = HangingLLM(replies) if scenario.llm_hangs else FakeLLM(replies)
    h = await start_harness(
        scenario.agent(),
        stt=scenario.stt(),
        tts=scenario.tts(),
        llm=llm,
        close_timeout=CLOSE_TIMEOUT,
    )
    if scenario.listener_raises:

        def boom(_: object) -> None:
            raise RuntimeError("listener exploded")

        h.session.on("close", boom)
    # The caller asks for something; by the end of the silence the agent is busy with it
    # (tool running, hook stuck, LLM hanging, TTS never ending...).
    await h.caller.say("please do the thing", trailing_silence=3.0)
    return h


async def _close_via(h: Harness, entry: str) -> None:
    if entry == "aclose":
        await h.session.aclose()
    elif entry == "shutdown_no_drain":
        h.session.shutdown(drain=False)
        await h.session.wait_closed()
    elif entry == "participant_disconnect":
        h.caller.hang_up()
        await h.session.wait_closed()
    else:
        h.stt.streams[-1].fail(ProviderAuthError("bad credentials", provider="fake-stt"))
        await h.session.wait_closed()


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_forced_close_is_bounded(name: str, entry: str) -> None:
    scenario = SCENARIOS[name]
    h = await _build(scenario)
    if name.startswith("tool"):
        assert h.session.current_agent is not None
        agent = h.session.current_agent
        assert isinstance(agent, ScriptAgent) and agent.tool_started.is_set()
    start = h.now
    await _close_via(h, entry)
    elapsed = h.now - start

    assert elapsed <= CLOSE_TIMEOUT + 1e-6, f"close took {elapsed:.3f}s"
    assert len(h.closes) == 1
    event = h.closes[0]
    assert event.reason is EXPECTED_REASON[entry]
    assert h.open_connections() == 0
    assert event.report.open_connections_after == 0
    assert event.report.duration_ms <= CLOSE_TIMEOUT * 1000 + 1e-3
    if scenario.stuck_in:
        stacks = [line for a in event.report.abandoned for line in a.stack]
        assert any(scenario.stuck_in in line for line in stacks), event.report.summary()
        assert all(a.name for a in event.report.abandoned)
    if scenario.listener_raises:
        assert any("listener exploded" in e for e in event.report.listener_errors)
    if entry == "fatal_provider_error":
        assert event.error is not None and "credentials" in str(event.error)
    # Closing again is a no-op that returns the same event.
    assert await h.session.aclose() is event
    assert len(h.closes) == 1

"""The pieces of a chaos scenario: the scripted agent, the providers a plan names, and the
result records (used by :mod:`voxlane.testing._chaos_driver`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voxlane.chat import ChatContext, ChatMessage
from voxlane.providers.llm import LLM
from voxlane.testing.adversarial import (
    EndlessTTS,
    FailingLLM,
    HangingCloseSTT,
    HangingCloseTTS,
    HangingLLM,
    RaisingCloseSTT,
    RaisingCloseTTS,
    StallingLLM,
    StallingTTS,
    await_behind_shield,
    never_return,
    swallow_cancellation_forever,
)
from voxlane.testing.chaos_plan import AgentPlan, ScenarioPlan
from voxlane.testing.fakes import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD
from voxlane.voice.agent import Agent, StopResponse
from voxlane.voice.tools import RunContext, function_tool

if TYPE_CHECKING:
    from voxlane.testing._chaos_driver import ScenarioRun

FRAME_S = 0.05
"""Audio frame length of the caller and the TTS (coarser than real 20 ms: fewer turns)."""


@dataclass(frozen=True)
class Failure:
    """One broken promise of one scenario."""

    seed: int
    check: str
    details: str
    plan: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "check": self.check,
            "details": self.details,
            "plan": self.plan,
        }


@dataclass
class ScenarioResult:
    seed: int
    plan: ScenarioPlan
    failures: list[Failure] = field(default_factory=list)
    reason: str | None = None
    first_request: str | None = None
    over_budget_s: float | None = None
    """Close time minus its bound (negative: on time); None if it never closed."""
    stragglers: int = 0
    """Tasks still alive after cleanup (released, cancelled, waited): a harness statistic."""
    loop_errors: list[str] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)
    report: str = ""


async def _behave(kind: str, slow_s: float) -> None:
    if kind == "slow":
        await asyncio.sleep(slow_s)
    elif kind == "raising":
        raise RuntimeError("chaos: user code raised on purpose")
    elif kind == "swallow":
        await swallow_cancellation_forever()
    elif kind == "shield":
        await await_behind_shield()
    elif kind == "never":
        await never_return()


class ChaosAgent(Agent):
    """An agent whose hooks and tool (``act``) behave as its :class:`AgentPlan` says."""

    def __init__(self, plan: AgentPlan, run: ScenarioRun) -> None:
        super().__init__(instructions=f"You are chaos agent {plan.name}.")
        self.plan = plan
        self._run = run
        self.entered = 0
        run.agents_made += 1
        self.label = f"{plan.name}#{run.agents_made}"

    def __repr__(self) -> str:
        return f"<{self.label}>"

    async def on_enter(self) -> None:
        self.entered += 1
        self._run.note(f"{self.label}.on_enter")
        if self.plan.greet == "say":
            self.session.say(self.plan.greeting)
        elif self.plan.greet == "reply":
            self.session.generate_reply(instructions="greet the caller")
        await _behave(self.plan.on_enter, self.plan.slow_s)

    async def on_exit(self) -> None:
        self._run.note(f"{self.label}.on_exit")
        await _behave(self.plan.on_exit, self.plan.slow_s)

    async def on_user_turn_completed(self, turn_ctx: ChatContext, new_message: ChatMessage) -> None:
        self._run.note(f"{self.label}.on_user_turn_completed")
        if self.plan.on_turn == "stop":
            raise StopResponse()
        await _behave(self.plan.on_turn, self.plan.slow_s)

    @function_tool
    async def act(self, ctx: RunContext) -> Any:
        """Do the thing."""
        self._run.note(f"{self.label}.act")
        kind = self.plan.tool
        if kind == "handoff":
            return self._run.make_agent(self.plan.handoff_to)
        if kind == "handoff_then_hang":
            ctx.session.update_agent(self._run.make_agent(self.plan.handoff_to))
            await swallow_cancellation_forever()
            return "released"
        await _behave(kind, self.plan.slow_s)
        return "done"


def build_providers(plan: ScenarioPlan) -> tuple[FakeSTT, FakeTTS, LLM, FakeVAD | None]:
    p = plan.providers
    stt = {"fake": FakeSTT, "hanging_close": HangingCloseSTT, "raising_close": RaisingCloseSTT}[
        p.stt
    ]()
    tts_kw: dict[str, Any] = {"seconds_per_char": p.tts_seconds_per_char, "frame_s": FRAME_S}
    tts: FakeTTS
    if p.tts in ("stalling", "stalling_stubborn"):
        tts = StallingTTS(
            stall_after=p.fault_after, stubborn=p.tts == "stalling_stubborn", **tts_kw
        )
    else:
        tts = {
            "fake": FakeTTS,
            "endless": EndlessTTS,
            "hanging_close": HangingCloseTTS,
            "raising_close": RaisingCloseTTS,
        }[p.tts](**tts_kw)
    replies = [
        FakeReply(r.text, [("act", {})] if r.tool_call else [], r.delay) for r in plan.replies
    ]
    llm: LLM
    if p.llm == "failing":
        llm = FailingLLM(replies, fail_after=p.fault_after)
    elif p.llm == "stalling":
        llm = StallingLLM(replies, stall_after=p.fault_after)
    else:
        llm = {"fake": FakeLLM, "hanging": HangingLLM}[p.llm](replies)
    return stt, tts, llm, FakeVAD() if p.vad else None

"""The adversarial close matrix, as data: {misbehaving code} x {close entry point}.

Shared by voxlane's own tests (virtual time) and ``bench/close_latency.py`` (real clock),
and usable on your own agents: each scenario builds a session on a local room with fakes,
makes it busy with the misbehaviour, closes it through an entry point, and returns what
happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from voxlane.aio.ledger import LEDGER
from voxlane.chat import ChatContext, ChatMessage
from voxlane.core.states import CloseReason
from voxlane.errors import ProviderAuthError
from voxlane.providers.llm import LLM
from voxlane.testing.adversarial import (
    EndlessTTS,
    HangingCloseSTT,
    HangingLLM,
    await_behind_shield,
    sleep_long,
    slow_tool,
    swallow_cancellation_forever,
    tool_behind_shield,
    tool_swallowing_cancel,
)
from voxlane.testing.caller import ScriptedCaller
from voxlane.testing.fakes import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD
from voxlane.transports.local import LocalRoom
from voxlane.voice.agent import Agent
from voxlane.voice.events import CloseEvent, ConversationItemAdded
from voxlane.voice.session import AgentSession
from voxlane.voice.tools import RunContext, function_tool

Body = Callable[[], Awaitable[Any]]
ToolBody = Callable[[RunContext], Awaitable[Any]]


class ScriptAgent(Agent):
    """An agent whose hooks and one tool (``act``) run the given bodies."""

    def __init__(
        self,
        *,
        greeting: str | None = "Hello, how can I help?",
        tool_body: ToolBody | None = None,
        on_exit_body: Body | None = None,
        on_turn_body: Body | None = None,
        on_enter_body: Body | None = None,
        instructions: str = "You are a test agent.",
    ) -> None:
        super().__init__(instructions=instructions)
        self.greeting = greeting
        self.tool_body = tool_body
        self.on_exit_body = on_exit_body
        self.on_turn_body = on_turn_body
        self.on_enter_body = on_enter_body
        self.entered = 0
        self.exited = 0
        self.tool_started = asyncio.Event()

    async def on_enter(self) -> None:
        self.entered += 1
        if self.greeting:
            self.session.say(self.greeting)
        if self.on_enter_body:
            await self.on_enter_body()

    async def on_exit(self) -> None:
        self.exited += 1
        if self.on_exit_body:
            await self.on_exit_body()

    async def on_user_turn_completed(self, turn_ctx: ChatContext, new_message: ChatMessage) -> None:
        if self.on_turn_body:
            await self.on_turn_body()

    @function_tool
    async def act(self, ctx: RunContext) -> Any:
        """Do the thing."""
        self.tool_started.set()
        if self.tool_body:
            return await self.tool_body(ctx)
        return "done"


@dataclass(frozen=True)
class Scenario:
    """How to build the session and make it busy before the close."""

    agent: Callable[[], ScriptAgent]
    stt: Callable[[], FakeSTT] = FakeSTT
    tts: Callable[[], FakeTTS] = FakeTTS
    llm_hangs: bool = False
    user_turn: bool = True
    """Whether the caller asks for something (a turn that runs the LLM and the tool)."""
    stuck_in: str | None = None
    """A function expected on an abandoned task's stack after the close."""
    listener_raises: bool = False


def _tool(body: ToolBody) -> Callable[[], ScriptAgent]:
    return lambda: ScriptAgent(greeting=None, tool_body=body)


SCENARIOS: dict[str, Scenario] = {
    "tool_swallowing_cancel": Scenario(
        _tool(tool_swallowing_cancel), stuck_in="swallow_cancellation_forever"
    ),
    "tool_behind_shield": Scenario(_tool(tool_behind_shield)),
    "slow_tool": Scenario(_tool(slow_tool)),
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
        lambda: ScriptAgent(greeting=None),
        llm_hangs=True,
        stuck_in="swallow_cancellation_forever",
    ),
    "close_listener_raises": Scenario(lambda: ScriptAgent(), listener_raises=True),
    "on_enter_behind_shield": Scenario(lambda: ScriptAgent(on_enter_body=await_behind_shield)),
    "normal_silent": Scenario(lambda: ScriptAgent(greeting=None), user_turn=False),
    "normal_speaking": Scenario(
        lambda: ScriptAgent(greeting="Thank you for calling, let me read you our opening hours."),
        user_turn=False,
    ),
}
MATRIX = [name for name in SCENARIOS if not name.startswith("normal_")]

ENTRIES = ("aclose", "shutdown_no_drain", "participant_disconnect", "fatal_provider_error")
EXPECTED_REASON = {
    "aclose": CloseReason.USER_INITIATED,
    "shutdown_no_drain": CloseReason.USER_INITIATED,
    "participant_disconnect": CloseReason.PARTICIPANT_DISCONNECTED,
    "fatal_provider_error": CloseReason.ERROR,
}


@dataclass
class Busy:
    """A session made busy by a scenario, ready to be closed."""

    session: AgentSession
    agent: ScriptAgent
    room: LocalRoom
    caller: ScriptedCaller
    stt: FakeSTT
    closes: list[CloseEvent]


async def make_busy(name: str, *, close_timeout: float = 4.0, busy_for: float = 0.5) -> Busy:
    """Build scenario ``name``'s session, start it, and make it busy for ``busy_for`` s."""
    scenario = SCENARIOS[name]
    replies: list[FakeReply | str] = [FakeReply(tool_calls=[("act", {})]), "All done."]
    llm: LLM = HangingLLM(replies) if scenario.llm_hangs else FakeLLM(replies)
    stt, room, agent = scenario.stt(), LocalRoom(), scenario.agent()
    session = AgentSession(
        stt=stt, vad=FakeVAD(), llm=llm, tts=scenario.tts(), close_timeout=close_timeout
    )
    closes: list[CloseEvent] = []
    session.on("close", closes.append)
    if scenario.listener_raises:

        def boom(_: object) -> None:
            raise RuntimeError("listener exploded")

        session.on("close", boom)
    caller = ScriptedCaller(room, stt=stt)
    await session.start(agent, room=room)
    if scenario.user_turn:
        await ask(session, caller, "please do the thing")
    await asyncio.sleep(busy_for)
    return Busy(session, agent, room, caller, stt, closes)


async def ask(
    session: AgentSession, caller: ScriptedCaller, text: str, *, timeout: float = 10.0
) -> None:
    """The caller says ``text``; returns once the session committed it as a user turn (the
    caller keeps the line open with silence meanwhile, as a phone line does)."""
    committed = asyncio.Event()

    def on_item(event: ConversationItemAdded) -> None:
        if event.item.role == "user" and event.item.text == text:
            committed.set()

    session.on("conversation_item_added", on_item)
    try:
        await caller.say(text)
        await caller.silence_until(committed, timeout)
    finally:
        session.off("conversation_item_added", on_item)


async def close_via(busy: Busy, entry: str) -> CloseEvent:
    """Close through ``entry`` and wait for the close event."""
    session = busy.session
    if entry == "aclose":
        return await session.aclose()
    if entry == "shutdown_no_drain":
        session.shutdown(drain=False)
    elif entry == "participant_disconnect":
        busy.caller.hang_up()
    elif entry == "fatal_provider_error":
        busy.stt.streams[-1].fail(ProviderAuthError("bad credentials", provider=busy.stt.label))
    else:
        raise ValueError(f"unknown entry {entry!r}; known: {ENTRIES}")
    return await session.wait_closed()


def open_connections(busy: Busy) -> int:
    return LEDGER.count_open(busy.session.id)

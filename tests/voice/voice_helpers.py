"""Shared builders for the session tests (fakes on a local room, virtual time)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from voxlane import Agent, AgentSession, CloseEvent, RunContext, function_tool
from voxlane.aio.ledger import LEDGER
from voxlane.testing import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD, ScriptedCaller
from voxlane.transports import LocalRoom

Body = Callable[[], Awaitable[Any]]


class ScriptAgent(Agent):
    """An agent whose hooks and one tool (``act``) run the given bodies."""

    def __init__(
        self,
        *,
        greeting: str | None = "Hello, how can I help?",
        tool_body: Callable[[RunContext], Awaitable[Any]] | None = None,
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

    async def on_user_turn_completed(self, turn_ctx: Any, new_message: Any) -> None:
        if self.on_turn_body:
            await self.on_turn_body()

    @function_tool
    async def act(self, ctx: RunContext) -> Any:
        """Do the thing."""
        self.tool_started.set()
        if self.tool_body:
            return await self.tool_body(ctx)
        return "done"


@dataclass
class Harness:
    session: AgentSession
    room: LocalRoom
    caller: ScriptedCaller
    stt: FakeSTT
    llm: FakeLLM
    tts: FakeTTS
    closes: list[CloseEvent] = field(default_factory=list)

    @property
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def open_connections(self) -> int:
        return LEDGER.count_open(self.session.id)


async def start_harness(
    agent: Agent,
    *,
    stt: FakeSTT | None = None,
    llm: FakeLLM | None = None,
    tts: FakeTTS | None = None,
    replies: list[FakeReply | str] | None = None,
    **session_kwargs: Any,
) -> Harness:
    stt = stt or FakeSTT()
    llm = llm or FakeLLM(replies or [])
    tts = tts or FakeTTS()
    room = LocalRoom()
    session = AgentSession(stt=stt, vad=FakeVAD(), llm=llm, tts=tts, **session_kwargs)
    h = Harness(session, room, ScriptedCaller(room, stt=stt), stt, llm, tts)
    session.on("close", h.closes.append)
    await session.start(agent, room=room)
    return h

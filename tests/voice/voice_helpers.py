"""Shared builders for the session tests (fakes on a local room, virtual time)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from voxlane import Agent, AgentSession, CloseEvent
from voxlane.aio.ledger import LEDGER
from voxlane.testing import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD, ScriptedCaller
from voxlane.testing.scenarios import ScriptAgent
from voxlane.transports import LocalRoom

__all__ = ["Harness", "ScriptAgent", "start_harness"]


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

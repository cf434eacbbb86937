"""The session on real engines: gateway (whisper STT, piper TTS) with a scripted LLM.

Real sockets, engine threads and the real clock (``real_time``); each test bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from voxlane import AgentSession, AgentState, CloseReason
from voxlane.gateway import GatewayConfig, GatewayServer, start_gateway
from voxlane.media import AudioFrame
from voxlane.providers.gateway_stt import GatewaySTT
from voxlane.providers.gateway_tts import GatewayTTS
from voxlane.testing import FakeLLM, ScriptedCaller
from voxlane.testing.scenarios import ScriptAgent
from voxlane.testing.speech import synthesize, words
from voxlane.transports import LocalRoom

pytestmark = pytest.mark.real_time
KEY = "stack-key"
LONG_REPLY = (
    "Of course. Our clinic offers cleanings, fillings and checkups, and we are open "
    "every weekday from eight in the morning until six in the evening."
)


@asynccontextmanager
async def call(**session: Any) -> AsyncIterator[tuple[AgentSession, ScriptedCaller, GatewayServer]]:
    server = await start_gateway(GatewayConfig(api_key=KEY, stt_engine="whisper"))
    try:
        room = LocalRoom()
        caller = ScriptedCaller(room)
        s = AgentSession(
            stt=GatewaySTT(url=server.stt_url, api_key=KEY),
            tts=GatewayTTS(url=server.tts_url, api_key=KEY),
            close_timeout=4.0,
            min_endpoint_delay=0.3,
            **session,
        )
        await s.start(ScriptAgent(greeting=None), room=room)
        yield s, caller, server
    finally:
        await server.aclose()


async def agent_speaking(session: AgentSession, timeout: float) -> None:
    speaking = asyncio.Event()
    session.on(
        "agent_state_changed",
        lambda ev: speaking.set() if ev.new_state is AgentState.SPEAKING else None,
    )
    await asyncio.wait_for(speaking.wait(), timeout)


async def test_hangup_mid_reply_on_real_engines() -> None:
    async with call(llm=FakeLLM([LONG_REPLY])) as (session, caller, server):
        await caller.silence(0.3)
        question = "what do you offer at the clinic"
        await caller.speak(synthesize(question))
        speaking = asyncio.ensure_future(agent_speaking(session, 20))
        while not speaking.done():
            await caller.silence(0.1)
        await caller.silence(1.0)  # mid-reply
        loop = asyncio.get_running_loop()
        start = loop.time()
        caller.hang_up()
        event = await asyncio.wait_for(session.wait_closed(), 10)
        assert loop.time() - start <= 4.0
    assert event.reason is CloseReason.PARTICIPANT_DISCONNECTED
    assert event.report.open_connections_after == 0
    users = [m.text for m in event.history if m.role == "user"]
    assert users and len(set(words(users[-1])) & set(words(question))) >= 3, users
    reply = [m for m in event.history if m.role == "assistant"][-1]
    assert reply.interrupted
    assert server.live_sessions == 0


async def test_hangup_mid_utterance_keeps_the_trailing_words() -> None:
    """The caller hangs up in the middle of a sentence: the STT is finalized within the
    close budget and what was said is committed to history (DESIGN I6)."""
    async with call(llm=FakeLLM(["Okay."])) as (session, caller, _server):
        await caller.silence(0.3)
        sentence = "please cancel my appointment on thursday afternoon"
        audio = synthesize(sentence)
        await caller.speak(audio, fraction=0.8)
        loop = asyncio.get_running_loop()
        start = loop.time()
        caller.hang_up()
        event = await asyncio.wait_for(session.wait_closed(), 10)
        assert loop.time() - start <= 4.0
    users = " ".join(m.text for m in event.history if m.role == "user")
    assert {"cancel", "appointment"} <= set(words(users)), users
    assert event.report.open_connections_after == 0


async def test_silent_caller_closes_without_waiting_on_real_engines() -> None:
    async with call(llm=FakeLLM([])) as (session, caller, _server):
        await caller.participant.stream_audio([AudioFrame.silence(0.02)] * 25)
        loop = asyncio.get_running_loop()
        start = loop.time()
        caller.hang_up()
        event = await asyncio.wait_for(session.wait_closed(), 10)
        # No trailing transcript is awaited: only the bounded STT close handshake.
        assert loop.time() - start < 0.5
        assert event.report.open_connections_after == 0

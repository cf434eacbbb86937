"""GatewaySTT against a real gateway on 127.0.0.1 (pocketsphinx engine), with faults.

Real sockets and engine threads: these tests run on the real clock
(``@pytest.mark.real_time``), each bounded, with short timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from voxlane import AgentSession, CloseReason
from voxlane.aio.ledger import LEDGER
from voxlane.errors import ProviderAuthError, ProviderConfigError, ProviderConnectionError
from voxlane.gateway import FaultPlan, GatewayConfig, GatewayServer, start_gateway
from voxlane.media import AudioFrame, split_frames
from voxlane.providers.gateway_stt import GatewaySTT, GatewaySTTStream
from voxlane.providers.stt import SpeechEventType
from voxlane.testing import FakeLLM, FakeTTS, ScriptedCaller
from voxlane.testing.scenarios import ScriptAgent
from voxlane.testing.speech import synthesize, words
from voxlane.transports import LocalRoom

pytestmark = pytest.mark.real_time
KEY = "client-test-key"
PHRASES = ("book a table for two", "what time do you open", "thank you very much")


@asynccontextmanager
async def gateway(faults: FaultPlan | None = None, **config: Any) -> AsyncIterator[GatewayServer]:
    config.setdefault("stt_engine", "pocketsphinx")
    server = await start_gateway(GatewayConfig(api_key=KEY, **config), faults=faults)
    try:
        yield server
    finally:
        await server.aclose()


def stt_for(server: GatewayServer, **kwargs: Any) -> GatewaySTT:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("connect_timeout", 2.0)
    return GatewaySTT(url=server.stt_url, **kwargs)


async def feed(stream: GatewaySTTStream, audio: AudioFrame, *, speedup: float = 4.0) -> None:
    """Push audio in 20 ms frames, ``speedup`` times faster than real time."""
    for frame in split_frames(audio):
        stream.push_frame(frame)
        await asyncio.sleep(frame.duration / speedup)


def utterance(text: str) -> AudioFrame:
    speech = synthesize(text)
    pad = AudioFrame.silence(0.6)
    return AudioFrame(pad.data + speech.data + pad.data, 16000)


async def eventually(condition: Any, timeout: float = 2.0) -> bool:
    """The server updates its log when its side of the connection has finished."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return bool(condition())


async def finals_of(stream: GatewaySTTStream) -> list[str]:
    return [ev.text async for ev in stream if ev.type is SpeechEventType.FINAL_TRANSCRIPT]


async def test_recognizes_real_speech_then_closes_cleanly() -> None:
    async with gateway() as server:
        stt = stt_for(server, phrases=PHRASES)
        stream = stt.stream()
        reader = asyncio.ensure_future(finals_of(stream))
        for text in PHRASES[:2]:
            await feed(stream, utterance(text))
        stream.end_input()
        finals = await asyncio.wait_for(reader, 20)
        await stream.aclose()
        assert [words(f) for f in finals] == [words(t) for t in PHRASES[:2]]
        assert LEDGER.count_open() == 0
        record = server.connection_log[-1]
        assert "session.close" in record.messages
        assert await eventually(lambda: record.closed_at is not None)


async def test_idle_closes_while_live_are_free_and_lazy() -> None:
    """A caller silent for long stretches (no audio at all): the server idles the session
    out (2007) again and again; each time the stream reconnects only when audio comes
    back, spending no retry budget, and recognition still works afterwards."""
    idle_before = LEDGER.reconnects["stt:idle"]
    async with gateway(idle_timeout_s=0.3) as server:
        stream = stt_for(server, phrases=PHRASES, max_retries=1).stream()
        reader = asyncio.ensure_future(finals_of(stream))
        for _ in range(5):
            await feed(stream, AudioFrame.silence(0.1))
            await asyncio.sleep(0.7)  # > idle timeout: 2007, then idle (no socket)
            assert LEDGER.count_open() == 0
        await feed(stream, utterance(PHRASES[2]))
        stream.end_input()
        finals = await asyncio.wait_for(reader, 20)
        await stream.aclose()
        assert stream.stats.reconnects == {"retry": 0, "idle": 5}
        assert LEDGER.reconnects["stt:idle"] - idle_before == 5  # what /metrics reports
        assert words(finals[-1]) == words(PHRASES[2])
        assert len(server.connection_log) == 6


async def test_early_idle_fault_is_an_idle_reconnect() -> None:
    async with gateway(FaultPlan(early_idle_s=0.4)) as server:
        stream = stt_for(server, max_retries=0).stream()
        await feed(stream, AudioFrame.silence(1.5), speedup=1.0)
        await stream.aclose()
        assert stream.stats.reconnects["idle"] >= 2 and stream.stats.reconnects["retry"] == 0
        assert LEDGER.count_open() == 0


async def test_dropped_connection_is_retried_with_budget() -> None:
    async with gateway(FaultPlan(drop_after_frames=20)) as server:
        stream = stt_for(server, max_retries=10).stream()
        await feed(stream, AudioFrame.silence(2.0), speedup=2.0)
        await stream.aclose()
        assert stream.stats.reconnects["retry"] >= 2
        assert LEDGER.count_open() == 0


async def test_refused_connections_exhaust_the_budget_with_a_clear_error() -> None:
    async with gateway(FaultPlan(refuse_connections=True)) as server:
        stream = stt_for(server, max_retries=2).stream()
        stream.push_frame(AudioFrame.silence(0.02))
        with pytest.raises(ProviderConnectionError, match=r"gave up after 2 attempts.*503"):
            async for _ in stream:
                pass
        await stream.aclose()
        assert LEDGER.count_open() == 0


async def test_garbage_and_slow_responses_are_survived() -> None:
    async with gateway(FaultPlan(send_garbage=True, response_delay_s=0.05)) as server:
        stream = stt_for(server, phrases=PHRASES).stream()
        reader = asyncio.ensure_future(finals_of(stream))
        await feed(stream, utterance(PHRASES[0]))
        stream.end_input()
        finals = await asyncio.wait_for(reader, 20)
        await stream.aclose()
        assert stream.stats.garbage_frames == 3
        assert [words(f) for f in finals] == [words(PHRASES[0])]


async def test_wrong_api_key_closes_the_session_with_an_authentication_error() -> None:
    async with gateway() as server:
        room = LocalRoom()
        caller = ScriptedCaller(room)
        session = AgentSession(stt=stt_for(server, api_key="wrong"), llm=FakeLLM(), tts=FakeTTS())
        await session.start(ScriptAgent(greeting=None), room=room)
        await caller.silence(0.2)
        event = await asyncio.wait_for(session.wait_closed(), 10)
        assert event.reason is CloseReason.ERROR
        assert isinstance(event.error, ProviderAuthError)
        assert "authentication" in str(event.error)
        assert event.report.open_connections_after == 0
        assert server.live_sessions == 0


async def test_hangup_mid_utterance_closes_the_socket_and_never_reconnects() -> None:
    """The seed bug, end to end: the caller hangs up mid-sentence. The gateway sees
    session.close, the socket closes within the budget, the caller's words are in history,
    and no new connection is ever made after (watched over several idle periods)."""
    async with gateway(idle_timeout_s=0.3) as server:
        room = LocalRoom()
        caller = ScriptedCaller(room)
        stt = stt_for(server, phrases=PHRASES)
        session = AgentSession(stt=stt, llm=FakeLLM(), tts=FakeTTS(), close_timeout=4.0)
        await session.start(ScriptAgent(greeting=None), room=room)
        speech = utterance(PHRASES[0])
        frames = split_frames(AudioFrame(speech.data[: len(speech.data) * 3 // 4], 16000))
        await caller.participant.stream_audio(frames)
        loop = asyncio.get_running_loop()
        start = loop.time()
        caller.hang_up()
        event = await asyncio.wait_for(session.wait_closed(), 10)
        assert loop.time() - start <= 4.0
        assert event.report.open_connections_after == 0
        assert [m.text for m in event.history if m.role == "user"]  # last words kept
        connections = len(server.connection_log)
        record = server.connection_log[-1]
        assert "session.close" in record.messages
        assert await eventually(lambda: record.closed_at is not None)
        await asyncio.sleep(1.5)  # five idle periods: nothing reconnects
        assert len(server.connection_log) == connections
        assert server.live_sessions == 0


async def test_aclose_cancelled_still_releases() -> None:
    # The server answers slowly (1 s per event), so the close handshake is still in flight
    # when the waiter is cancelled.
    async with gateway(FaultPlan(response_delay_s=1.0)) as server:
        stream = stt_for(server, close_timeout=5.0).stream()
        await feed(stream, AudioFrame.silence(0.3))
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0.2)
        closing.cancel()
        await asyncio.gather(closing, return_exceptions=True)
        assert LEDGER.count_open() == 0


SENTENCES = (
    "open the front door and turn on the lights",
    "what is the weather like today",
    "i would like to book a table for two",
    "thank you very much for your help",
    "can you tell me the time",
)


async def test_whisper_through_the_client_word_error_rate() -> None:
    """Five synthesized sentences through GatewaySTT to whisper tiny.en: WER ≤ 10%."""
    from voxlane.testing.speech import word_error_rate

    pytest.importorskip("faster_whisper")
    async with gateway(stt_engine="whisper") as server:
        stream = stt_for(server).stream()
        reader = asyncio.ensure_future(finals_of(stream))
        for text in SENTENCES:
            await feed(stream, utterance(text), speedup=20.0)
        stream.end_input()
        finals = await asyncio.wait_for(reader, 60)
        await stream.aclose()
    ref = words(" ".join(SENTENCES))
    hyp = words(" ".join(finals))
    assert len(finals) == len(SENTENCES), finals
    assert word_error_rate(ref, hyp) <= 0.10, finals


async def test_big_frames_are_split_and_fatal_errors_after_end_input_are_reported() -> None:
    async with gateway() as server:
        stream = stt_for(server, phrases=PHRASES).stream()
        stream.push_frame(utterance(PHRASES[0]))  # one multi-second frame: split by the client
        stream.end_input()
        assert [words(f) for f in await finals_of(stream)] == [words(PHRASES[0])]
        await stream.aclose()
    async with gateway(max_frame_bytes=4000) as server:
        stream = stt_for(server).stream()
        stream.push_frame(utterance(PHRASES[0]))  # 0.5 s pieces: too large for this server
        stream.end_input()
        with pytest.raises(ProviderConfigError, match="2010"):
            async for _ in stream:
                pass
        await stream.aclose()
        assert LEDGER.count_open() == 0

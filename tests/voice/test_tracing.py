"""OpenTelemetry spans of a session (session → turns, close), on virtual time, exported to
memory by the real OpenTelemetry SDK."""

from __future__ import annotations

import asyncio

import pytest

from voxlane import AgentSession
from voxlane.testing import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD, ScriptedCaller
from voxlane.testing.adversarial import tool_swallowing_cancel
from voxlane.testing.scenarios import ScriptAgent
from voxlane.transports import LocalRoom
from voxlane.voice.tracing import trace_session

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)


def _provider() -> tuple[object, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_session_turn_and_close_spans() -> None:
    provider, exporter = _provider()
    stt = FakeSTT()
    room = LocalRoom()
    session = AgentSession(
        stt=stt, vad=FakeVAD(), llm=FakeLLM([FakeReply("Sure.", delay=0.25)]), tts=FakeTTS()
    )
    tracer = trace_session(session, tracer_provider=provider)
    assert tracer is not None
    await session.start(ScriptAgent(greeting=None), room=room)
    await ScriptedCaller(room, stt=stt).say("my secret is tuesday", trailing_silence=3.0)
    await session.aclose()

    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"voxlane.session", "voxlane.turn", "voxlane.close"}
    root, turn, close = spans["voxlane.session"], spans["voxlane.turn"], spans["voxlane.close"]
    assert turn.parent is not None and turn.parent.span_id == root.context.span_id
    assert close.parent is not None and close.parent.span_id == root.context.span_id
    assert root.attributes["voxlane.session_id"] == session.id
    assert root.attributes["voxlane.turns"] == 1
    assert root.attributes["voxlane.close.reason"] == "user_initiated"
    assert turn.attributes["voxlane.llm_first_token_ms"] == pytest.approx(250, abs=1)
    assert turn.end_time > turn.start_time
    assert close.attributes["voxlane.close.open_connections_after"] == 0
    assert [e.name for e in close.events] and all(e.name.startswith("step ") for e in close.events)
    assert root.start_time <= turn.start_time and close.end_time <= root.end_time
    # Never the words of the conversation (DESIGN I7).
    for span in spans.values():
        values = [str(v) for v in (span.attributes or {}).values()]
        assert not any("secret" in v or "Sure" in v for v in values)


async def test_close_span_shows_abandoned_work_as_an_error() -> None:
    provider, exporter = _provider()
    session = AgentSession(
        stt=FakeSTT(), vad=FakeVAD(), llm=FakeLLM([FakeReply(tool_calls=[("act", {})])]),
        tts=FakeTTS(), close_timeout=2.0,
    )
    trace_session(session, tracer_provider=provider)
    await session.start(ScriptAgent(greeting=None, tool_body=tool_swallowing_cancel),
                        room=LocalRoom())
    session.generate_reply()
    await asyncio.sleep(0.5)  # the tool is running
    await session.aclose()
    close = next(s for s in exporter.get_finished_spans() if s.name == "voxlane.close")
    assert close.attributes["voxlane.close.abandoned"] >= 1
    assert close.attributes["voxlane.close.duration_ms"] <= 2000 + 50

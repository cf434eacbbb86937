"""The body of one speech: text → TTS → audio output, and the LLM → tools → LLM loop.

Runs inside a speech task owned by the activity. Every provider stream it opens is
registered with the activity's resource stack at once (so a close can release it even if
this task is abandoned) and released here, bounded, when the speech ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import aclosing
from typing import Any, TypeVar

from voxlane.aio.closing import ResourceStack, bounded_aclose
from voxlane.aio.tasks import join
from voxlane.chat import ChatContext, ChatMessage, ToolCall
from voxlane.errors import ToolError
from voxlane.providers.base import ProviderStream
from voxlane.voice.events import AgentState, FunctionToolsExecuted
from voxlane.voice.services import SessionServices
from voxlane.voice.speech import SpeechHandle
from voxlane.voice.tools import FunctionTool, RunContext

log = logging.getLogger("voxlane.generation")
S = TypeVar("S", bound=ProviderStream)
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]

STREAM_CLOSE_TIMEOUT = 1.0
"""How long a finished speech waits for one of its streams to close before aborting it."""


async def _single(text: str) -> AsyncGenerator[str, None]:
    yield text


class SpeechGenerator:
    """Produces the speech of one agent. ``tools`` and ``instructions`` come from the agent."""

    def __init__(
        self,
        services: SessionServices,
        streams: ResourceStack,
        spawn: Spawn,
        *,
        instructions: str,
        tools: dict[str, FunctionTool],
    ) -> None:
        self._svc = services
        self._streams = streams
        self._spawn = spawn
        self._instructions = instructions
        self._tools = tools

    # -- streams --------------------------------------------------------------------------
    def _open(self, name: str, stream: S) -> S:
        self._streams.push(name, stream)
        return stream

    async def _release(self, stream: ProviderStream) -> None:
        self._streams.discard(stream)
        clock = self._svc.clock
        report = await bounded_aclose(
            stream.label, stream, clock.now() + STREAM_CLOSE_TIMEOUT, clock=clock
        )
        if report.outcome != "ok":
            log.warning("stream %s closed with outcome %s", stream.label, report.outcome)

    # -- speaking -------------------------------------------------------------------------
    async def say(self, handle: SpeechHandle, text: str, *, add_to_history: bool = True) -> None:
        spoken: list[str] = []
        try:
            await self._speak(handle, _single(text), spoken)
        finally:
            if add_to_history:
                self._svc.add_to_history(
                    ChatMessage(
                        "assistant",
                        text,
                        at_s=self._svc.session_time(),
                        interrupted=handle.interrupted,
                    )
                )

    async def _speak(
        self, handle: SpeechHandle, text: AsyncGenerator[str, None], spoken: list[str]
    ) -> None:
        """Synthesize ``text`` as it arrives, play it, wait for playout (cleared on interrupt)."""
        tts, output = self._svc.tts, self._svc.audio_output
        tts_stream = None
        forward: asyncio.Task[None] | None = None
        try:
            async with aclosing(text) as pieces:
                async for piece in pieces:
                    spoken.append(piece)
                    if tts is None or output is None or not piece:
                        continue
                    if tts_stream is None:
                        tts_stream = self._open(tts.label, tts.stream())
                        forward = self._spawn(
                            self._forward_audio(tts_stream, handle), f"{handle.id}/audio"
                        )
                    tts_stream.push_text(piece)
                    self._svc.usage.tts_chars += len(piece)
            if tts_stream is not None and forward is not None and output is not None:
                tts_stream.end_input()
                await join(forward)
                output.flush()
                await output.wait_for_playout()
        finally:
            if forward is not None:
                forward.cancel()
            if handle.interrupted and output is not None:
                # Between the interrupt's clear_buffer and this cancellation the forwarder
                # may have refilled the freed buffer (up to max_buffer_s of stale audio):
                # clear again so barge-in stops the audio at once.
                output.clear_buffer()
            if tts_stream is not None:
                await self._release(tts_stream)

    async def _forward_audio(self, tts_stream: ProviderStream, handle: SpeechHandle) -> None:
        output = self._svc.audio_output
        assert output is not None
        first = True
        async for frame in tts_stream:  # type: ignore[attr-defined]
            if first:
                metrics = handle.metrics
                if metrics is not None and metrics.tts_first_audio_at is None:
                    metrics.tts_first_audio_at = self._svc.clock.now()
                self._svc.set_agent_state(AgentState.SPEAKING)
            await output.capture_frame(frame)
            if first:
                first = False
                if metrics is not None and metrics.first_audio_at is None:
                    metrics.first_audio_at = self._svc.clock.now()
                    self._svc.emit("turn_metrics", metrics)

    # -- replying -------------------------------------------------------------------------
    async def reply(self, handle: SpeechHandle, *, instructions: str | None = None) -> None:
        """LLM → (speak text, run tools) → LLM …, at most ``max_tool_steps`` LLM rounds."""
        llm = self._svc.llm
        assert llm is not None  # generate_reply refuses to schedule without one
        specs = [t.spec for t in self._tools.values()]
        for _ in range(self._svc.max_tool_steps):
            self._svc.set_agent_state(AgentState.THINKING)
            ctx = ChatContext(list(self._svc.history)).with_instructions(
                "\n\n".join(p for p in (self._instructions, instructions) if p)
            )
            llm_stream = self._open(llm.label, llm.chat(ctx, specs))
            calls: list[ToolCall] = []
            spoken: list[str] = []

            if handle.metrics is not None and handle.metrics.llm_started_at is None:
                handle.metrics.llm_started_at = self._svc.clock.now()

            async def text_of(
                stream: Any = llm_stream, calls: list[ToolCall] = calls
            ) -> AsyncGenerator[str, None]:
                async for chunk in stream:
                    calls.extend(chunk.tool_calls)
                    if chunk.delta:
                        m = handle.metrics
                        if m is not None and m.llm_first_token_at is None:
                            m.llm_first_token_at = self._svc.clock.now()
                        yield chunk.delta

            try:
                await self._speak(handle, text_of(), spoken)
            finally:
                await self._release(llm_stream)
                self._svc.usage.llm_turns += 1
                if spoken or calls:
                    self._svc.add_to_history(
                        ChatMessage(
                            "assistant",
                            "".join(spoken),
                            at_s=self._svc.session_time(),
                            interrupted=handle.interrupted,
                            tool_calls=tuple(calls),
                        )
                    )
            if not calls or handle.interrupted:
                return
            if await self._run_tools(handle, calls):
                return  # handed off: the next agent speaks
            instructions = None
        log.warning("reply stopped after %d LLM rounds (max_tool_steps)", self._svc.max_tool_steps)

    async def _run_tools(self, handle: SpeechHandle, calls: list[ToolCall]) -> bool:
        """Run the calls concurrently as owned tasks; add their outputs to history.
        Returns True if a tool handed off to another agent."""
        from voxlane.voice.agent import Agent

        session = self._svc.as_session()
        tasks: list[asyncio.Task[Any] | None] = []
        for call in calls:
            tool = self._tools.get(call.name)
            if tool is None:
                tasks.append(None)
                continue
            ctx = RunContext(session, handle, call)
            tasks.append(self._spawn(tool.call(ctx, call.arguments), f"tool:{call.name}"))
        outputs: list[str] = []
        handoff: Agent | None = None
        for call, task in zip(calls, tasks, strict=True):
            if task is None:
                out = f"error: unknown tool {call.name!r}"
            else:
                try:
                    result = await join(task)
                except ToolError as exc:
                    out = f"error: {exc}"
                except Exception as exc:
                    out = f"error: {type(exc).__name__}: {exc}"
                    self._svc.report_error(exc, f"tool:{call.name}", fatal=False)
                else:
                    if isinstance(result, Agent):
                        handoff = result
                        out = f"transferred to {type(result).__name__}"
                    else:
                        out = _tool_output(result)
            outputs.append(out)
            self._svc.add_to_history(
                ChatMessage(
                    "tool",
                    out,
                    at_s=self._svc.session_time(),
                    tool_call_id=call.call_id,
                    name=call.name,
                )
            )
        self._svc.emit("function_tools_executed", FunctionToolsExecuted(list(calls), outputs))
        if handoff is not None:
            self._svc.request_handoff(handoff)
            return True
        return False


def _tool_output(result: object) -> str:
    if result is None:
        return "ok"
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result)
    except (TypeError, ValueError):
        return str(result)

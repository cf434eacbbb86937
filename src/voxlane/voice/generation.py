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
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from voxlane.aio.closing import ResourceStack, bounded_aclose
from voxlane.aio.tasks import AbandonedTask, join
from voxlane.chat import ChatContext, ChatMessage, ToolCall
from voxlane.errors import ToolError
from voxlane.providers.base import ProviderStream
from voxlane.providers.tts import TTS
from voxlane.voice.events import AgentState, FunctionToolsExecuted
from voxlane.voice.services import SessionServices
from voxlane.voice.speech import SpeechHandle, running_tool_of
from voxlane.voice.tools import FunctionTool, RunContext

log = logging.getLogger("voxlane.generation")
S = TypeVar("S", bound=ProviderStream)
T = TypeVar("T")


class Spawn(Protocol):
    def __call__(
        self, coro: Coroutine[Any, Any, T], name: str, *, joined: bool = False
    ) -> asyncio.Task[T]: ...


async def _single(text: str) -> AsyncGenerator[str, None]:
    yield text


def heard_text(text: str, seconds: float, chars_per_second: float) -> str:
    """The part of ``text`` that ``seconds`` of its audio carried, cut at a word boundary.

    An estimate at the voice's speaking rate (TTS engines give no word timings here): a
    reply cut short is recorded as far as the caller heard it, not as if fully spoken.
    """
    n = int(seconds * chars_per_second)
    if n >= len(text):
        return text
    cut = text[: n + 1]
    return cut[: cut.rfind(" ")].rstrip() if " " in cut else ""


@dataclass
class Playout:
    """What one speech got out: the text it spoke (pushed to TTS) and its audio's length."""

    pieces: list[str] = field(default_factory=list)
    audio_s: float = 0.0
    first_audio_at: float | None = None
    stopped_at: float | None = None
    """When its audio stopped (played out, cleared, or the speech ended)."""

    def heard(self, handle: SpeechHandle, tts: TTS | None, now: float) -> str:
        """All of its text, or — cut short — what its played audio carried."""
        text = "".join(self.pieces)
        if not handle.interrupted or tts is None:
            return text
        if self.first_audio_at is None:
            return ""  # nothing reached the caller
        # Audio plays at real-time pace from its first frame until it stopped.
        end = self.stopped_at if self.stopped_at is not None else now
        played = min(self.audio_s, max(0.0, end - self.first_audio_at))
        return heard_text(text, played, tts.chars_per_second)


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
        release_deadline: Callable[[float], float],
        abandoned: list[AbandonedTask],
    ) -> None:
        self._svc = services
        self._streams = streams
        self._spawn = spawn
        self._instructions = instructions
        self._tools = tools
        self._release_deadline = release_deadline
        self._abandoned = abandoned  # the activity's: a stuck stream close is reported

    # -- streams --------------------------------------------------------------------------
    def _open(self, name: str, stream: S) -> S:
        self._streams.push(name, stream)
        return stream

    async def _release(self, stream: ProviderStream) -> None:
        """Close a stream this speech is done with. It leaves the stack only once released:
        if this task is cancelled meanwhile, the step aborts it and teardown finds it."""
        clock = self._svc.clock
        deadline = self._release_deadline(clock.now())
        report = await bounded_aclose(
            stream.label, stream, deadline, clock=clock, abandoned=self._abandoned
        )
        self._abandoned.extend(report.abandoned)
        self._streams.discard(stream)
        if report.outcome != "ok":
            log.warning("stream %s closed with outcome %s", stream.label, report.outcome)

    def _record(self, handle: SpeechHandle, playout: Playout, **extra: Any) -> None:
        text = playout.heard(handle, self._svc.tts, self._svc.clock.now())
        self._svc.add_to_history(
            ChatMessage(
                "assistant",
                text,
                at_s=self._svc.session_time(),
                interrupted=handle.interrupted,
                **extra,
            )
        )

    # -- speaking -------------------------------------------------------------------------
    async def say(self, handle: SpeechHandle, text: str, *, add_to_history: bool = True) -> None:
        playout = Playout()
        try:
            await self._speak(handle, _single(text), playout)
        finally:
            if add_to_history:
                self._record(handle, playout)

    async def _speak(
        self, handle: SpeechHandle, text: AsyncGenerator[str, None], playout: Playout
    ) -> None:
        """Synthesize ``text`` as it arrives, play it, wait for playout (cleared on interrupt).

        A TTS that fails part-way ends the speech cut short (interrupted) after what it
        produced has played; its error is reported once, as ``tts``. An LLM that fails
        part-way cuts the speech short and raises.
        """
        tts, output = self._svc.tts, self._svc.audio_output
        tts_stream = None
        forward: asyncio.Task[None] | None = None
        try:
            async with aclosing(text) as pieces:
                async for piece in pieces:
                    playout.pieces.append(piece)
                    if tts is None or output is None or not piece:
                        continue
                    if tts_stream is None:
                        tts_stream = self._open(tts.label, tts.stream())
                        forward = self._spawn(
                            self._forward_audio(tts_stream, handle, playout),
                            f"{handle.id}/audio",
                            joined=True,
                        )
                    if forward is not None and forward.done():
                        break  # the TTS already failed: stop feeding it
                    tts_stream.push_text(piece)
                    self._svc.usage.tts_chars += len(piece)
            if tts_stream is not None and forward is not None and output is not None:
                if not forward.done():
                    tts_stream.end_input()
                try:
                    await join(forward)
                except Exception as exc:
                    handle.mark_cut_short()
                    self._svc.report_error(exc, "tts", fatal=False)
                output.flush()
                await output.wait_for_playout()
        except Exception:
            handle.mark_cut_short()
            raise
        finally:
            if playout.stopped_at is None:  # before closing the streams: that is not heard
                playout.stopped_at = self._svc.clock.now()
            if forward is not None:
                forward.cancel()
            if handle.interrupted and output is not None:
                # Between the interrupt's clear_buffer and this cancellation the forwarder
                # may have refilled the freed buffer (up to max_buffer_s of stale audio):
                # clear again so barge-in stops the audio at once.
                output.clear_buffer()
            if tts_stream is not None:
                await self._release(tts_stream)

    async def _forward_audio(
        self, tts_stream: ProviderStream, handle: SpeechHandle, playout: Playout
    ) -> None:
        output = self._svc.audio_output
        assert output is not None
        first = True
        async for frame in tts_stream:  # type: ignore[attr-defined]
            if playout.first_audio_at is None:
                playout.first_audio_at = self._svc.clock.now()
            playout.audio_s += frame.duration
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

    def _report_late_failure(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._svc.report_error(exc, task.get_name().rsplit("/", 1)[-1], fatal=False)

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
            playout = Playout()

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
                await self._speak(handle, text_of(), playout)
            finally:
                self._svc.usage.llm_turns += 1
                if playout.pieces or calls:
                    self._record(handle, playout, tool_calls=tuple(calls))
                await self._release(llm_stream)
            if not calls or handle.interrupted:
                return
            handed_off = await self._run_tools(handle, calls)
            for child in list(handle.nested):  # a tool's "one moment" plays out first
                await child.wait_for_playout()
            if handed_off:
                return  # the next agent speaks
            instructions = None
        log.warning("reply stopped after %d LLM rounds (max_tool_steps)", self._svc.max_tool_steps)

    async def _run_tools(self, handle: SpeechHandle, calls: list[ToolCall]) -> bool:
        """Run the calls concurrently as owned tasks; add their outputs to history.
        Returns True if a tool handed off to another agent."""
        from voxlane.voice.agent import Agent

        session = self._svc.session
        tasks: list[asyncio.Task[Any] | None] = []
        for call in calls:
            tool = self._tools.get(call.name)
            if tool is None:
                tasks.append(None)
                continue
            ctx = RunContext(session, handle, call)
            tasks.append(
                self._spawn(_as_tool_of(handle, tool, ctx, call), f"tool:{call.name}", joined=True)
            )
        outputs: list[str] = []
        handoff: Agent | None = None
        try:
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
        finally:
            # Cut short (the speech interrupted): the tools not joined yet are cancelled
            # here; they stay owned (a close settles them) and a late failure is reported.
            for task in tasks:
                if task is not None and not task.done():
                    task.cancel()
                    task.add_done_callback(self._report_late_failure)
        self._svc.emit("function_tools_executed", FunctionToolsExecuted(list(calls), outputs))
        if handoff is not None:
            self._svc.request_handoff(handoff)
            return True
        return False


async def _as_tool_of(
    handle: SpeechHandle, tool: FunctionTool, ctx: RunContext, call: ToolCall
) -> Any:
    running_tool_of.set(handle)  # this task's own context: speech it asks for is nested
    return await tool.call(ctx, call.arguments)


def _tool_output(result: object) -> str:
    if result is None:
        return "ok"
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result)
    except (TypeError, ValueError):
        return str(result)

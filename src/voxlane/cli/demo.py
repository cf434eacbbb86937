"""``voxlane demo`` and ``voxlane console``: a call to an agent on the local room.

``demo``: a synthetic caller speaks three turns; the agent answers; the caller hangs up in
the middle of the agent's last reply. On the local stack (default) the caller's speech is
synthesized (espeak-ng) and everything runs on real engines (VAD, STT, LLM, TTS); with
``--fake`` the providers are the testing kit's fakes. ``console``: the caller is your own
recording. Both print the live transcript, then the teardown report, and write
``DIR/report.json`` (DESIGN §8) and ``DIR/call.wav`` (caller left, agent right).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from voxlane.aio.clock import DEFAULT_CLOCK
from voxlane.cli.progress import dim_progress
from voxlane.cli.recording import write_call_wav
from voxlane.media import AudioFrame
from voxlane.runners.loader import load_agent_factory
from voxlane.testing.caller import ScriptedCaller
from voxlane.testing.fakes import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD
from voxlane.transports.local import CallRecorder, LocalRoom
from voxlane.voice.agent import Agent
from voxlane.voice.events import AgentState, AgentStateChanged, ConversationItemAdded
from voxlane.voice.report import REPORT_MODE, write_json_durably
from voxlane.voice.session import AgentSession
from voxlane.wav import read_wav

CALLER_TURNS = [
    "I would like to book a cleaning on tuesday morning",
    "what are your opening hours",
    "thanks that is all goodbye",
]

SCRIPTED_LLM = [
    FakeReply("Thank you for calling Bright Smile Dental. How can I help you today?"),
    FakeReply(tool_calls=[("book_appointment", {"day": "tuesday", "time": "10:00"})]),
    FakeReply("You are booked for a cleaning on Tuesday at ten."),
    FakeReply(tool_calls=[("opening_hours", {})]),
    FakeReply("We are open eight to six on weekdays and nine to one on Saturdays."),
    FakeReply(
        "You are welcome! Before you go, please remember to bring your insurance card "
        "and to arrive ten minutes early so we can update your records."
    ),
]
TURN_TIMEOUT = 45.0

Speak = Callable[[ScriptedCaller, str], Awaitable[None]]


@dataclass
class DemoResult:
    report: dict[str, Any]
    wav_seconds: float


class _AgentTurns:
    """Lets the caller wait for the agent to start or finish speaking."""

    def __init__(self) -> None:
        self.speaking = asyncio.Event()
        self.listening = asyncio.Event()

    def __call__(self, ev: AgentStateChanged) -> None:
        if ev.new_state is AgentState.SPEAKING:
            self.listening.clear()
            self.speaking.set()
        elif ev.new_state is AgentState.LISTENING:
            self.speaking.clear()
            self.listening.set()


async def _three_turns(caller: ScriptedCaller, turns: _AgentTurns, speak: Speak) -> None:
    """Speak each turn after the agent finished its reply; hang up mid-way through the last
    reply. Every wait is bounded; whatever happens, the caller hangs up at the end."""

    async def agent_finished() -> None:
        await caller.silence_until(turns.speaking, TURN_TIMEOUT)
        await caller.silence_until(turns.listening, TURN_TIMEOUT)

    try:
        await agent_finished()  # the greeting
        for text in CALLER_TURNS[:-1]:
            await caller.silence(0.4)
            await speak(caller, text)
            await agent_finished()
        await caller.silence(0.4)
        await speak(caller, CALLER_TURNS[-1])
        await caller.silence_until(turns.speaking, TURN_TIMEOUT)
        await caller.silence(1.5)  # mid-reply...
    finally:
        caller.hang_up()


def _show(console: Console) -> Callable[[ConversationItemAdded], None]:
    def show(ev: ConversationItemAdded) -> None:
        m = ev.item
        t = f"[dim]{m.at_s:6.2f}s[/]"
        if m.role == "user":
            console.print(f"{t} [bold cyan]caller[/]  {m.text}")
        elif m.role == "assistant" and m.text:
            cut = " [red](interrupted)[/]" if m.interrupted else ""
            console.print(f"{t} [bold green]agent[/]   {m.text}{cut}")
        elif m.role == "assistant":
            for call in m.tool_calls:
                console.print(f"{t} [yellow]tool[/]    {call.name}({call.arguments})")
        elif m.role == "tool":
            console.print(f"{t} [yellow]result[/]  {m.text}")

    return show


async def run_call(
    *,
    session: AgentSession,
    agent: Agent,
    script: Callable[[ScriptedCaller, _AgentTurns], Awaitable[None]],
    out: Path,
    console: Console,
    title: str,
    report_mode: int = REPORT_MODE,
) -> DemoResult:
    """Run one call on a local room with ``script`` as the caller; write the outputs
    (``report.json`` and ``call.wav``, both with file mode ``report_mode``)."""
    recorder = CallRecorder(DEFAULT_CLOCK)
    room = LocalRoom("demo", recorder=recorder)
    caller = ScriptedCaller(room, stt=session.stt if isinstance(session.stt, FakeSTT) else None)
    turns = _AgentTurns()
    session.on("agent_state_changed", turns)
    session.on("conversation_item_added", _show(console))
    console.rule(title)
    await session.start(agent, room=room)
    call = asyncio.ensure_future(script(caller, turns))
    await asyncio.wait({call}, timeout=len(CALLER_TURNS) * 3 * TURN_TIMEOUT)
    if not call.done():
        call.cancel()
        caller.hang_up()
    elif call.exception() is not None:
        console.print(f"[red]caller script failed:[/] {call.exception()!r}")
    event = await session.aclose()  # already closed by the hangup: returns its event
    console.rule("teardown report")
    console.print(event.report.summary(), markup=False, highlight=False)
    report = session.report_dict()
    write_json_durably(out / "report.json", report, mode=report_mode)
    seconds = write_call_wav(recorder, out / "call.wav", mode=report_mode)
    console.print(f"wrote {out / 'report.json'} and {out / 'call.wav'} ({seconds:.1f} s)")
    return DemoResult(report, seconds)


async def run_fake_demo(
    out: Path, agent_file: Path, console: Console, *, report_mode: int = REPORT_MODE
) -> DemoResult:
    session = AgentSession(
        stt=FakeSTT(), vad=FakeVAD(), llm=FakeLLM(SCRIPTED_LLM), tts=FakeTTS(), close_timeout=4.0
    )

    async def speak(caller: ScriptedCaller, text: str) -> None:
        await caller.say(text)

    return await run_call(
        session=session,
        agent=load_agent_factory(agent_file)(),
        script=lambda caller, turns: _three_turns(caller, turns, speak),
        out=out,
        console=console,
        title="voxlane demo (fake providers): a call to the receptionist",
        report_mode=report_mode,
    )


async def _synthesize(tts: Any, text: str) -> AudioFrame:
    stream = tts.stream()
    stream.push_text(text)
    stream.end_input()
    data = b"".join([f.data async for f in stream])
    await stream.aclose()
    return AudioFrame(data, tts.sample_rate)


async def run_local_demo(
    out: Path,
    agent_file: Path,
    console: Console,
    *,
    scripted_llm: bool = False,
    report_mode: int = REPORT_MODE,
    **stack: Any,
) -> DemoResult:
    from voxlane.runners.stack import local_stack

    factory = load_agent_factory(agent_file)
    llm = FakeLLM(SCRIPTED_LLM) if scripted_llm else None
    async with local_stack(progress=dim_progress(console), llm=llm, **stack) as st:
        lines = {text: await _synthesize(st.caller_voice, text) for text in CALLER_TURNS}
        session = AgentSession(stt=st.stt, vad=st.vad, llm=st.llm, tts=st.tts, close_timeout=4.0)

        async def speak(caller: ScriptedCaller, text: str) -> None:
            await caller.speak(lines[text])

        return await run_call(
            session=session,
            agent=factory(),
            script=lambda caller, turns: _three_turns(caller, turns, speak),
            out=out,
            console=console,
            title="voxlane demo (local engines): a call to the receptionist",
            report_mode=report_mode,
        )


async def run_console(
    recording: Path,
    out: Path,
    agent_file: Path,
    console: Console,
    *,
    scripted_llm: bool = False,
    report_mode: int = REPORT_MODE,
    **stack: Any,
) -> DemoResult:
    """Your recording is the caller: it is played in, the agent replies, then hang up."""
    from voxlane.runners.stack import local_stack

    audio = read_wav(recording, sample_rate=16000)  # any PCM/float WAV; WavError if not
    factory = load_agent_factory(agent_file)
    llm = FakeLLM(SCRIPTED_LLM) if scripted_llm else None
    async with local_stack(progress=dim_progress(console), llm=llm, **stack) as st:
        session = AgentSession(stt=st.stt, vad=st.vad, llm=st.llm, tts=st.tts, close_timeout=4.0)

        async def script(caller: ScriptedCaller, turns: _AgentTurns) -> None:
            try:
                await caller.silence(0.5)
                await caller.speak(audio)
                await caller.silence_until(turns.speaking, TURN_TIMEOUT)
                await caller.silence_until(turns.listening, TURN_TIMEOUT)
            finally:
                caller.hang_up()

        return await run_call(
            session=session,
            agent=factory(),
            script=script,
            out=out,
            console=console,
            title=f"voxlane console: {recording.name}",
            report_mode=report_mode,
        )

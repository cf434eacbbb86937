"""``voxlane demo``: a scripted phone call to an agent on the local room.

A synthetic caller speaks three turns; the agent answers (fake providers in this version:
scripted LLM, tone TTS, energy VAD/STT); the caller hangs up in the middle of the agent's
last reply. The live transcript is printed, then the teardown report; ``DIR/report.json``
(DESIGN §8) and ``DIR/call.wav`` (caller left, agent right) are written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from voxlane.aio.clock import DEFAULT_CLOCK
from voxlane.cli.loader import load_agent_factory
from voxlane.cli.recording import write_call_wav
from voxlane.testing.caller import ScriptedCaller
from voxlane.testing.fakes import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD
from voxlane.transports.local import CallRecorder, LocalRoom
from voxlane.voice.events import AgentState, AgentStateChanged, ConversationItemAdded
from voxlane.voice.report import write_json_durably
from voxlane.voice.session import AgentSession

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


TURN_TIMEOUT = 30.0


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


async def _caller_script(caller: ScriptedCaller, turns: _AgentTurns) -> None:
    """Speak each turn after the agent finished its reply; hang up mid-way through the last
    reply. Every wait is bounded; whatever happens, the caller hangs up at the end."""

    async def agent_finished() -> None:
        await caller.silence_until(turns.speaking, TURN_TIMEOUT)
        await caller.silence_until(turns.listening, TURN_TIMEOUT)

    try:
        await agent_finished()  # the greeting
        for text in CALLER_TURNS[:-1]:
            await caller.silence(0.4)
            await caller.say(text)
            await agent_finished()
        await caller.silence(0.4)
        await caller.say(CALLER_TURNS[-1])
        await caller.silence_until(turns.speaking, TURN_TIMEOUT)
        await caller.silence(1.5)  # mid-reply...
    finally:
        caller.hang_up()


async def run_demo(out: Path, agent_file: Path, console: Console) -> DemoResult:
    factory = load_agent_factory(agent_file)
    recorder = CallRecorder(DEFAULT_CLOCK)
    room = LocalRoom("demo", recorder=recorder)
    stt = FakeSTT()
    session = AgentSession(
        stt=stt, vad=FakeVAD(), llm=FakeLLM(SCRIPTED_LLM), tts=FakeTTS(), close_timeout=4.0
    )
    caller = ScriptedCaller(room, stt=stt)
    turns = _AgentTurns()
    session.on("agent_state_changed", turns)

    def show(ev: ConversationItemAdded) -> None:
        m = ev.item
        if m.role == "user":
            console.print(f"[dim]{m.at_s:6.2f}s[/] [bold cyan]caller[/]  {m.text}")
        elif m.role == "assistant" and m.text:
            cut = " [red](interrupted: caller hung up)[/]" if m.interrupted else ""
            console.print(f"[dim]{m.at_s:6.2f}s[/] [bold green]agent[/]   {m.text}{cut}")
        elif m.role == "assistant":
            for call in m.tool_calls:
                console.print(
                    f"[dim]{m.at_s:6.2f}s[/] [yellow]tool[/]    {call.name}({call.arguments})"
                )
        elif m.role == "tool":
            console.print(f"[dim]{m.at_s:6.2f}s[/] [yellow]result[/]  {m.text}")

    session.on("conversation_item_added", show)
    console.rule("voxlane demo: a call to the receptionist")
    await session.start(factory(), room=room)
    script = asyncio.ensure_future(_caller_script(caller, turns))
    await asyncio.wait({script}, timeout=len(CALLER_TURNS) * 3 * TURN_TIMEOUT)
    if not script.done():
        script.cancel()
        caller.hang_up()
    elif script.exception() is not None:
        console.print(f"[red]caller script failed:[/] {script.exception()!r}")
    event = await session.aclose()  # already closed by the hangup: returns its event
    console.rule("teardown report")
    console.print(event.report.summary(), markup=False, highlight=False)
    report = session.report_dict()
    write_json_durably(out / "report.json", report)
    seconds = write_call_wav(recorder, out / "call.wav")
    console.print(f"wrote {out / 'report.json'} and {out / 'call.wav'} ({seconds:.1f} s)")
    return DemoResult(report, seconds)

"""What an agent's activity needs from its session: a narrow protocol, not the session's
internals (STYLE: collaborators talk through public methods or protocols)."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Protocol

from voxlane.aio.clock import Clock
from voxlane.chat import ChatMessage
from voxlane.providers.llm import LLM
from voxlane.providers.tts import TTS
from voxlane.room import AudioOutput
from voxlane.voice.api import SessionAPI
from voxlane.voice.events import AgentState, EventName
from voxlane.voice.report import Usage

if TYPE_CHECKING:
    from voxlane.voice.agent import Agent


class SessionServices(Protocol):
    clock: Clock
    llm: LLM | None
    tts: TTS | None
    audio_output: AudioOutput | None
    usage: Usage
    history: list[ChatMessage]
    task_context: contextvars.Context

    @property
    def session(self) -> SessionAPI[Agent]:
        """The public session agents and tools see (``Agent.session``, ``RunContext``)."""
        ...

    @property
    def max_tool_steps(self) -> int: ...

    def add_to_history(self, message: ChatMessage) -> ChatMessage: ...

    def session_time(self) -> float: ...

    def emit(self, event: EventName, payload: object) -> list[BaseException]: ...

    def set_agent_state(self, state: AgentState) -> None: ...

    def request_handoff(self, agent: Agent) -> None: ...

    def report_error(self, error: BaseException, source: str, *, fatal: bool) -> None: ...

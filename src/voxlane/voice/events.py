"""Session events and the emitter.

Listeners are plain functions (``async def`` listeners are refused at registration: spawn
your own owned task if you need to await). A listener that raises never breaks the emitter:
the error is logged and returned to the caller of ``emit`` (the close procedure records
them in the teardown report).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from voxlane.chat import ChatMessage, ToolCall
from voxlane.core.states import CloseReason
from voxlane.core.turns import UserState

if TYPE_CHECKING:
    from voxlane.voice.report import TeardownReport
    from voxlane.voice.speech import SpeechHandle

log = logging.getLogger("voxlane.session")

EventName = Literal[
    "user_state_changed",
    "agent_state_changed",
    "user_input_transcribed",
    "conversation_item_added",
    "speech_created",
    "function_tools_executed",
    "error",
    "close",
    "turn_metrics",
]
EVENT_NAMES: frozenset[str] = frozenset(EventName.__args__)  # type: ignore[attr-defined]


class AgentState(Enum):
    INITIALIZING = "initializing"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class UserStateChanged:
    old_state: UserState
    new_state: UserState


@dataclass(frozen=True)
class AgentStateChanged:
    old_state: AgentState
    new_state: AgentState


@dataclass(frozen=True)
class UserInputTranscribed:
    transcript: str
    is_final: bool


@dataclass(frozen=True)
class ConversationItemAdded:
    item: ChatMessage


@dataclass(frozen=True)
class SpeechCreated:
    speech: SpeechHandle
    source: Literal["say", "generate_reply", "tool_response"]


@dataclass(frozen=True)
class FunctionToolsExecuted:
    calls: list[ToolCall]
    outputs: list[str]


@dataclass
class TurnMetrics:
    """Loop-clock timestamps of one user turn and the reply it got (``turn_metrics`` event,
    emitted when the reply's first audio frame is handed to the output). None = not seen."""

    speech_ended_at: float | None = None  # VAD (or STT) end of speech
    final_at: float | None = None  # last final transcript of the turn
    committed_at: float | None = None  # turn committed to history
    llm_started_at: float | None = None
    llm_first_token_at: float | None = None
    tts_first_audio_at: float | None = None
    first_audio_at: float | None = None  # first reply frame handed to the audio output

    def parts_ms(self) -> dict[str, float]:
        """Stage durations in ms (missing stages are left out)."""

        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else (b - a) * 1000

        parts = {
            "end_of_speech_to_final": ms(self.speech_ended_at, self.final_at),
            "end_of_speech_to_commit": ms(self.speech_ended_at, self.committed_at),
            "commit_to_llm_start": ms(self.committed_at, self.llm_started_at),
            "llm_first_token": ms(self.llm_started_at, self.llm_first_token_at),
            "first_token_to_tts_audio": ms(self.llm_first_token_at, self.tts_first_audio_at),
            "tts_audio_to_output": ms(self.tts_first_audio_at, self.first_audio_at),
            "end_of_speech_to_first_audio": ms(self.speech_ended_at, self.first_audio_at),
        }
        return {k: v for k, v in parts.items() if v is not None}


@dataclass(frozen=True)
class ErrorEvent:
    error: BaseException
    source: str
    recoverable: bool


@dataclass(frozen=True)
class CloseEvent:
    """Emitted exactly once per session, when it has closed (DESIGN I3, I6, I7)."""

    reason: CloseReason
    error: BaseException | None
    history: list[ChatMessage]
    report: TeardownReport = field(repr=False)


Listener = Callable[[Any], object]
F = TypeVar("F", bound=Listener)


class EventEmitter:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def on(self, event: EventName, callback: F | None = None) -> Any:
        """Register ``callback`` for ``event``; usable as ``@session.on("close")``."""
        if event not in EVENT_NAMES:
            raise ValueError(f"unknown event {event!r}; known: {sorted(EVENT_NAMES)}")

        def register(cb: F) -> F:
            if inspect.iscoroutinefunction(cb):
                raise ValueError(
                    f"listener for {event!r} must be a plain function, not async; "
                    "spawn and own a task from it if you need to await"
                )
            self._listeners.setdefault(event, []).append(cb)
            return cb

        return register(callback) if callback is not None else register

    def off(self, event: EventName, callback: Listener) -> None:
        if callback in self._listeners.get(event, []):
            self._listeners[event].remove(callback)

    def emit(self, event: EventName, payload: object) -> list[BaseException]:
        """Call every listener; return the exceptions they raised (already logged)."""
        errors: list[BaseException] = []
        for cb in list(self._listeners.get(event, [])):
            try:
                cb(payload)
            except Exception as exc:
                log.warning("listener %r for %s raised %r", cb, event, exc)
                errors.append(exc)
        return errors

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
from voxlane.voice.metrics import TurnMetrics

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
__all__ = [
    "EVENT_NAMES",
    "AgentState",
    "AgentStateChanged",
    "CloseEvent",
    "ConversationItemAdded",
    "ErrorEvent",
    "EventEmitter",
    "EventName",
    "FunctionToolsExecuted",
    "Listener",
    "SpeechCreated",
    "TurnMetrics",
    "UserInputTranscribed",
    "UserStateChanged",
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

"""voxlane: realtime voice agents whose sessions always end on time.

Every forced close finishes within ``close_timeout`` with every provider connection closed,
whatever user code does; see docs/architecture.md.

Names are exported lazily, so importing a pure module (``voxlane.core``, a wire codec) does
not load the asyncio runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ChatContext": "voxlane.chat",
    "ChatMessage": "voxlane.chat",
    "ToolCall": "voxlane.chat",
    "CloseReason": "voxlane.core.states",
    "SessionState": "voxlane.core.states",
    "ProviderError": "voxlane.errors",
    "SessionClosedError": "voxlane.errors",
    "ToolError": "voxlane.errors",
    "VoxlaneError": "voxlane.errors",
    "AudioFrame": "voxlane.media",
    "AudioOutput": "voxlane.room",
    "DisconnectReason": "voxlane.room",
    "Participant": "voxlane.room",
    "PlaybackFinished": "voxlane.room",
    "Room": "voxlane.room",
    "Agent": "voxlane.voice.agent",
    "StopResponse": "voxlane.voice.agent",
    "AgentState": "voxlane.voice.events",
    "CloseEvent": "voxlane.voice.events",
    "TeardownReport": "voxlane.voice.report",
    "AgentSession": "voxlane.voice.session",
    "SpeechHandle": "voxlane.voice.speech",
    "FunctionTool": "voxlane.voice.tools",
    "RunContext": "voxlane.voice.tools",
    "function_tool": "voxlane.voice.tools",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'voxlane' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from voxlane.chat import ChatContext, ChatMessage, ToolCall
    from voxlane.core.states import CloseReason, SessionState
    from voxlane.errors import ProviderError, SessionClosedError, ToolError, VoxlaneError
    from voxlane.media import AudioFrame
    from voxlane.room import AudioOutput, DisconnectReason, Participant, PlaybackFinished, Room
    from voxlane.voice.agent import Agent, StopResponse
    from voxlane.voice.events import AgentState, CloseEvent
    from voxlane.voice.report import TeardownReport
    from voxlane.voice.session import AgentSession
    from voxlane.voice.speech import SpeechHandle
    from voxlane.voice.tools import FunctionTool, RunContext, function_tool

"""voxlane: realtime voice agents whose sessions always end on time.

Every forced close finishes within ``close_timeout`` with every provider connection closed,
whatever user code does; see docs/architecture.md.
"""

from voxlane.chat import ChatContext, ChatMessage, ToolCall
from voxlane.core.states import CloseReason, SessionState
from voxlane.errors import (
    ProviderError,
    SessionClosedError,
    ToolError,
    VoxlaneError,
)
from voxlane.media import AudioFrame
from voxlane.voice.agent import Agent, StopResponse
from voxlane.voice.events import AgentState, CloseEvent
from voxlane.voice.report import TeardownReport
from voxlane.voice.session import AgentSession
from voxlane.voice.speech import SpeechHandle
from voxlane.voice.tools import FunctionTool, RunContext, function_tool

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentSession",
    "AgentState",
    "AudioFrame",
    "ChatContext",
    "ChatMessage",
    "CloseEvent",
    "CloseReason",
    "FunctionTool",
    "ProviderError",
    "RunContext",
    "SessionClosedError",
    "SessionState",
    "SpeechHandle",
    "StopResponse",
    "TeardownReport",
    "ToolCall",
    "ToolError",
    "VoxlaneError",
    "__version__",
    "function_tool",
]

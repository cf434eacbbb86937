"""The session as agents and tools see it: a small protocol (``Agent.session``,
``RunContext.session``), so the modules that run agents need not import the session class.

``AgentSession`` implements it. ``AgentT`` is the agent type ``update_agent`` takes and
``current_agent`` returns (``Agent``); the protocol is generic over it so this leaf module
imports no agent code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from voxlane.aio.clock import Clock
from voxlane.chat import ChatMessage
from voxlane.core.states import SessionState
from voxlane.voice.events import CloseEvent, EventName
from voxlane.voice.speech import SpeechHandle

AgentT = TypeVar("AgentT")


class SessionAPI(Protocol[AgentT]):
    """DESIGN §4: speak, reply, interrupt, hand off, close; events; read-only state."""

    id: str
    userdata: Any

    @property
    def state(self) -> SessionState: ...

    @property
    def history(self) -> list[ChatMessage]: ...

    @property
    def current_agent(self) -> AgentT | None: ...

    @property
    def clock(self) -> Clock: ...

    def say(
        self, text: str, *, allow_interruptions: bool | None = None, add_to_history: bool = True
    ) -> SpeechHandle: ...

    def generate_reply(
        self,
        *,
        user_input: str | None = None,
        instructions: str | None = None,
        allow_interruptions: bool | None = None,
    ) -> SpeechHandle: ...

    def interrupt(self, *, force: bool = False) -> None: ...

    def update_agent(self, agent: AgentT) -> None: ...

    def shutdown(self, *, drain: bool = True) -> None: ...

    async def aclose(self) -> CloseEvent: ...

    async def wait_closed(self) -> CloseEvent: ...

    def on(self, event: EventName, callback: Callable[[Any], object] | None = None) -> Any: ...

    def off(self, event: EventName, callback: Callable[[Any], object]) -> None: ...

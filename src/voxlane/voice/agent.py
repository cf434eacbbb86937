"""Agent: instructions, tools and hooks. One agent is active in a session at a time."""

from __future__ import annotations

from collections.abc import Sequence

from voxlane.chat import ChatContext, ChatMessage
from voxlane.errors import VoxlaneError
from voxlane.voice.api import SessionAPI
from voxlane.voice.tools import FunctionTool, get_tool


class Agent:
    """Subclass and override the hooks; decorate methods with ``@function_tool``.

    Hooks run as tasks owned by the session: a hook that never returns delays nothing but
    itself, and a close abandons it within the close budget.
    """

    def __init__(
        self,
        *,
        instructions: str = "",
        tools: Sequence[FunctionTool] = (),
        allow_interruptions: bool = True,
    ) -> None:
        self.instructions = instructions
        self.allow_interruptions = allow_interruptions
        self._session: SessionAPI[Agent] | None = None
        found = {t.name: t for t in tools}
        for attr in dir(type(self)):
            tool = get_tool(getattr(type(self), attr, None))
            if tool is not None:
                found[tool.name] = tool.bind(self)
        self.tools: dict[str, FunctionTool] = found

    @property
    def session(self) -> SessionAPI[Agent]:
        """The session running this agent. Raises ``VoxlaneError`` if it is not running."""
        if self._session is None:
            raise VoxlaneError(f"{type(self).__name__} is not running in a session")
        return self._session

    def attach(self, session: SessionAPI[Agent] | None) -> None:
        """Called by the session when this agent starts (and with None when it ends)."""
        self._session = session

    async def on_enter(self) -> None:
        """Called when this agent becomes active (e.g. greet with ``generate_reply``)."""

    async def on_exit(self) -> None:
        """Called when this agent stops being active (handoff or close)."""

    async def on_user_turn_completed(self, turn_ctx: ChatContext, new_message: ChatMessage) -> None:
        """Called when the user finished a turn, before the reply is generated.

        May edit ``new_message.text``; raise ``StopResponse`` to not reply to this turn.
        """


class StopResponse(VoxlaneError):
    """Raise from ``on_user_turn_completed`` to skip the automatic reply."""

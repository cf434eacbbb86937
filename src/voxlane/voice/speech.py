"""SpeechHandle: one thing the agent says, scheduled one at a time (DESIGN §4).

A handle is awaitable: ``await handle`` returns when the speech has played out, been
interrupted, or been abandoned by a close — never later than the session's close.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Generator
from contextvars import ContextVar
from typing import Any

from voxlane.core.scheduling import PRIORITY_NORMAL
from voxlane.core.states import SpeechEvent, SpeechState, speech_machine
from voxlane.errors import VoxlaneError
from voxlane.voice.metrics import TurnMetrics

_ids = itertools.count(1)

running_tool_of: ContextVar[SpeechHandle | None] = ContextVar("voxlane_tool_speech", default=None)
"""Inside a tool (and tasks it spawns): the speech whose reply called the tool. Speech the
tool asks for is nested in it (it plays now, while the reply waits for its tools)."""


class SpeechHandle:
    def __init__(
        self,
        *,
        allow_interruptions: bool = True,
        priority: int = PRIORITY_NORMAL,
        text: str | None = None,
    ) -> None:
        self.id = f"speech_{next(_ids)}"
        self.text = text
        """The text of a ``say`` (None for a generated reply)."""
        self.allow_interruptions = allow_interruptions
        self.priority = priority
        self._machine = speech_machine()
        self._interrupted = False
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._interrupt_callbacks: list[Callable[[SpeechHandle], None]] = []
        self.nested: list[SpeechHandle] = []
        """Speech its tools asked for; interrupting this speech interrupts them too."""
        self.metrics: TurnMetrics | None = None
        """Set for replies to a user turn: the pipeline fills in its timestamps."""

    def __repr__(self) -> str:
        flag = " interrupted" if self._interrupted else ""
        return f"<SpeechHandle {self.id} {self.state.value}{flag}>"

    @property
    def state(self) -> SpeechState:
        return self._machine.state

    @property
    def interrupted(self) -> bool:
        return self._interrupted

    def done(self) -> bool:
        return self._done.done()

    def interrupt(self, *, force: bool = False) -> bool:
        """Stop this speech (queued: never plays; playing: audio cleared, task cancelled).

        Returns False (and does nothing) when ``allow_interruptions`` is False and ``force``
        is not set, or when the speech is already done.
        """
        if self.done() or (not self.allow_interruptions and not force):
            return False
        self._interrupted = True
        if self._machine.fire(SpeechEvent.INTERRUPT) is SpeechState.DONE:
            self._resolve()
        for cb in list(self._interrupt_callbacks):
            cb(self)
        for child in self.nested:
            child.interrupt(force=True)
        return True

    async def wait_for_playout(self) -> None:
        """Wait until the speech is done (played, interrupted or abandoned by close).

        Raises ``VoxlaneError`` when called from inside a tool for a speech that is queued
        behind the tool's own reply (``generate_reply()``, or speech for another agent):
        it could only start after the tool returned, so waiting would deadlock.
        """
        parent = running_tool_of.get()
        if (
            parent is not None
            and not parent.done()
            and self is not parent
            and self not in parent.nested
            and self.state is SpeechState.QUEUED
        ):
            raise VoxlaneError(
                f"{self.id} is queued behind the reply running this tool ({parent.id}): "
                "awaiting it here would deadlock; return the text from the tool or use "
                "session.say(), which plays at once"
            )
        await asyncio.shield(self._done)

    def __await__(self) -> Generator[Any, None, SpeechHandle]:
        async def wait() -> SpeechHandle:
            await self.wait_for_playout()
            return self

        return wait().__await__()

    def add_done_callback(self, cb: Callable[[SpeechHandle], None]) -> None:
        self._done.add_done_callback(lambda _: cb(self))

    # -- driven by the activity ---------------------------------------------------------
    def on_interrupt(self, cb: Callable[[SpeechHandle], None]) -> None:
        self._interrupt_callbacks.append(cb)

    def mark_playing(self) -> None:
        self._machine.fire(SpeechEvent.SCHEDULE)

    def mark_cut_short(self) -> None:
        """The speech failed part-way (its TTS or LLM broke): recorded as interrupted."""
        self._interrupted = True

    def mark_done(self) -> None:
        """The speech's task ended (or was abandoned). Idempotent."""
        self._machine.fire(SpeechEvent.FINISH)
        self._resolve()

    def _resolve(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

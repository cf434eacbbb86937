"""AgentActivity: runs one agent — its speech queue, speech tasks, tools and hooks.

Every task here (speech, tool, hook) is owned by the activity's ``TaskOwner``; every
provider stream opened by its speeches is registered in its ``ResourceStack``. The activity
never holds a lock across an await: scheduling decisions are synchronous (``SpeechQueue``),
started from ``schedule`` and from a finishing speech's ``finally``.

Two ways to end (DESIGN §2, I4):
* ``drain(deadline)`` — graceful: queued and current speech play out, then ``on_exit``;
  returns False if the deadline passed first (the caller escalates to ``close``).
* ``close(settle_deadline)`` — forced: interrupt everything, give tasks
  (and ``on_exit``) until ``settle_deadline``, cancel, abandon what is left. Always returns
  on time. Its open streams stay in ``streams`` for the session's teardown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from voxlane.aio.closing import ResourceStack
from voxlane.aio.tasks import AbandonedTask, TaskOwner, join, wait_event
from voxlane.chat import ChatContext, ChatMessage
from voxlane.core.scheduling import SpeechQueue
from voxlane.errors import ClosedError, SessionClosedError
from voxlane.voice.agent import Agent, StopResponse
from voxlane.voice.events import AgentState
from voxlane.voice.generation import SpeechGenerator
from voxlane.voice.services import SessionServices
from voxlane.voice.speech import SpeechHandle

log = logging.getLogger("voxlane.activity")
SpeechBody = Callable[[SpeechHandle], Coroutine[Any, Any, None]]


class AgentActivity:
    def __init__(self, agent: Agent, services: SessionServices) -> None:
        self.agent = agent
        self._svc = services
        self._clock = services.clock
        self._owner = TaskOwner(
            f"agent:{type(agent).__name__}",
            on_error=self._on_task_error,
            clock=self._clock,
            context=services.task_context,
        )
        self.streams = ResourceStack()
        self._queue = SpeechQueue(paused=True)  # resumed by start()
        self._handles: dict[str, SpeechHandle] = {}
        self._bodies: dict[str, SpeechBody] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._accepting = True
        self._entered = False
        self.generator = SpeechGenerator(
            services,
            self.streams,
            lambda coro, name: self._owner.spawn(coro, name=name),
            instructions=agent.instructions,
            tools=agent.tools,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Begin scheduling speech and run ``on_enter`` (as an owned task, not awaited)."""
        self.agent.attach(self._svc.as_session())
        self._entered = True
        self._queue.resume()
        self._owner.spawn(self.agent.on_enter(), name="on_enter")
        self._start_next()

    @property
    def has_live_tasks(self) -> bool:
        """Whether any of its tasks (speech, tools, hooks) is still running."""
        return bool(self._owner.live)

    @property
    def current_speech(self) -> SpeechHandle | None:
        sid = self._queue.current
        return self._handles.get(sid) if sid else None

    # -- scheduling -----------------------------------------------------------------------
    def schedule(self, handle: SpeechHandle, body: SpeechBody) -> SpeechHandle:
        """Queue a speech. Raises ``SessionClosedError`` once the activity stopped accepting."""
        if not self._accepting or self._owner.closed:
            raise SessionClosedError("the agent is no longer accepting speech")
        self._handles[handle.id] = handle
        self._bodies[handle.id] = body
        handle.on_interrupt(self._on_interrupted)
        self._queue.enqueue(handle.id, handle.priority)
        self._idle.clear()
        self._start_next()
        return handle

    def _start_next(self) -> None:
        while (sid := self._queue.next_to_start()) is not None:
            handle, body = self._handles[sid], self._bodies.pop(sid)
            if handle.done():
                self._finish(handle)
                continue
            handle.mark_playing()
            try:
                self._tasks[sid] = self._owner.spawn(self._run_speech(handle, body), name=sid)
            except ClosedError:
                handle.mark_done()
                self._finish(handle)
                continue
            return
        if self._queue.is_idle():
            self._idle.set()
            if self._accepting:
                self._svc.set_agent_state(AgentState.LISTENING)

    async def _run_speech(self, handle: SpeechHandle, body: SpeechBody) -> None:
        try:
            await body(handle)
        finally:
            handle.mark_done()
            self._finish(handle)
            self._start_next()

    def _finish(self, handle: SpeechHandle) -> None:
        self._queue.finish(handle.id)
        self._handles.pop(handle.id, None)
        self._bodies.pop(handle.id, None)
        self._tasks.pop(handle.id, None)

    def _on_interrupted(self, handle: SpeechHandle) -> None:
        if self._queue.current == handle.id:
            output = self._svc.audio_output
            if output is not None:
                output.clear_buffer()
            task = self._tasks.get(handle.id)
            if task is not None:
                task.cancel()
        else:
            self._finish(handle)
            if self._queue.is_idle():
                self._idle.set()

    def interrupt(self, *, force: bool = False) -> list[SpeechHandle]:
        """Interrupt current and queued speech (only interruptible ones unless ``force``)."""
        handles = list(self._handles.values())
        return [h for h in handles if h.interrupt(force=force)]

    # -- user turns -----------------------------------------------------------------------
    def on_user_turn(self, message: ChatMessage, reply: Callable[[], object]) -> None:
        """Run ``on_user_turn_completed`` (owned), then ``reply()`` unless it raised
        ``StopResponse``."""

        async def run() -> None:
            ctx = ChatContext(list(self._svc.history))
            hook = self._owner.spawn(
                self.agent.on_user_turn_completed(ctx, message), name="on_user_turn_completed"
            )
            try:
                await join(hook)
            except StopResponse:
                return
            except Exception as exc:
                self._svc.report_error(exc, "on_user_turn_completed", fatal=False)
            if self._accepting:
                reply()

        self._owner.spawn(run(), name="user_turn")

    # -- ending ---------------------------------------------------------------------------
    async def drain(self, deadline: float) -> bool:
        """Let queued and current speech play out, then run ``on_exit``. False on timeout."""
        if not await wait_event(self._idle, deadline, self._clock.now()):
            return False
        if self._entered:
            self._entered = False
            hook = self._owner.spawn(self.agent.on_exit(), name="on_exit")
            await asyncio.wait({hook}, timeout=max(0.0, deadline - self._clock.now()))
            if not hook.done():
                return False
        self._accepting = False
        return await wait_event(self._idle, deadline, self._clock.now())

    async def close(self, settle_deadline: float) -> list[AbandonedTask]:
        """Forced end: interrupt, settle until ``settle_deadline``, abandon. Returns on time
        with the abandoned tasks; the streams in ``self.streams`` are left for the session's
        teardown (which closes them even if their speech task was abandoned)."""
        self._accepting = False
        self._queue.pause()
        for handle in list(self._handles.values()):
            handle.interrupt(force=True)
        for task in self._owner.live:
            task.cancel()  # on_enter, user-turn hooks, tools; speech tasks were just cancelled
        if self._entered:
            self._entered = False
            try:
                self._owner.spawn(self.agent.on_exit(), name="on_exit")
            except ClosedError:
                pass
        # Settle: let well-behaved tasks (and on_exit) finish; keep a quarter of the window
        # for cancelling and abandoning the rest.
        now = self._clock.now()
        live = self._owner.live
        if live:
            await asyncio.wait(live, timeout=max(0.0, (settle_deadline - now) * 0.75))
        abandoned = await self._owner.shutdown(settle_deadline)
        for handle in list(self._handles.values()):
            handle.mark_done()
            self._finish(handle)
        self._idle.set()
        self.agent.attach(None)
        return abandoned

    def _on_task_error(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        name = task.get_name()
        log.warning("%s failed: %r", name, exc)
        self._svc.report_error(exc, name, fatal=False)

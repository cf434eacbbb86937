"""AgentActivity: runs one agent — its speech queue, speech tasks, tools and hooks — through
the pure :class:`~voxlane.core.lifecycle.ActivityLifecycle`.

Every task here (speech, tool, hook) is owned by the activity's ``TaskOwner``; every provider
stream opened by its speeches is registered in its ``ResourceStack`` at once. Scheduling
decisions are synchronous (``SpeechQueue``); lifecycle decisions are the machine's: this
module feeds it events and carries out the commands it returns.

How it ends: ``drain(now, deadline)`` (graceful: queued speech plays, then ``on_exit``) or
``close(now, plan)`` (forced: interrupt, settle by the plan's deadlines, abandon what is
left). Either starts the activity's one *end task*, which walks the machine to CLOSED —
streams released included — and always finishes by the plan's teardown deadline. The
session awaits it (bounded) and keeps the activity until it is CLOSED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from voxlane.aio.closing import ResourceStack, StepReport
from voxlane.aio.tasks import AbandonedTask, TaskOwner, abandon, join, wait_event
from voxlane.chat import ChatContext, ChatMessage
from voxlane.core.close_plan import Budget, ClosePlan
from voxlane.core.lifecycle import ActivityCommand, ActivityLifecycle, ActivityState
from voxlane.core.scheduling import SpeechQueue
from voxlane.core.states import SpeechState
from voxlane.errors import ClosedError, SessionClosedError
from voxlane.voice.agent import Agent, StopResponse
from voxlane.voice.events import AgentState
from voxlane.voice.generation import SpeechGenerator
from voxlane.voice.services import SessionServices
from voxlane.voice.speech import SpeechHandle

log = logging.getLogger("voxlane.activity")
SpeechBody = Callable[[SpeechHandle], Coroutine[Any, Any, None]]
Reply = Callable[[], object]
T = TypeVar("T")

_S, _C = ActivityState, ActivityCommand


class AgentActivity:
    def __init__(
        self,
        agent: Agent,
        services: SessionServices,
        budget: Budget,
        *,
        on_change: Callable[[AgentActivity], None] = lambda _: None,
    ) -> None:
        self.agent = agent
        self._on_change = on_change
        self._svc = services
        self._clock = services.clock
        self.name = type(agent).__name__
        self.life = ActivityLifecycle(self.name, budget)
        self._owner = TaskOwner(
            f"agent:{self.name}",
            on_error=self._on_task_error,
            clock=self._clock,
            context=services.task_context,
        )
        self.streams = ResourceStack()
        self._queue = SpeechQueue(paused=True)  # resumed on ENTER
        self._handles: dict[str, SpeechHandle] = {}
        self._bodies: dict[str, SpeechBody] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()  # idle, on_exit done, or a forced close: re-check
        self._on_exit: asyncio.Task[None] | None = None
        self._end: asyncio.Task[None] | None = None
        self._deferred_turns: list[tuple[ChatMessage, Reply]] = []
        self._reserve_steps = 0
        self.undelivered: list[SpeechHandle] = []
        """Speech queued to this agent that never started (it was closed first)."""
        self.abandoned: list[AbandonedTask] = []
        self.steps: list[StepReport] = []
        self.settled_at: float | None = None
        """When its settle ended (loop clock); with ``settle_abandoned``, for the report."""
        self.settle_abandoned: list[AbandonedTask] = []
        self.generator = SpeechGenerator(
            services,
            self.streams,
            self._spawn,
            instructions=agent.instructions,
            tools=agent.tools,
            release_deadline=self._stream_release_deadline,
            abandoned=self.abandoned,
        )

    def __repr__(self) -> str:
        return f"<AgentActivity {self.name} {self.life.state.value}>"

    def _spawn(
        self, coro: Coroutine[Any, Any, T], name: str, *, joined: bool = False
    ) -> asyncio.Task[T]:
        return self._owner.spawn(coro, name=name, joined=joined)

    def _stream_release_deadline(self, now: float) -> float:
        """When a speech's stream must be released: its own timeout, and once this agent is
        closing never later than the close plan's teardown deadline."""
        own = self.life.budget.stream_release_deadline(now)
        plan = self.life.plan
        return own if plan is None else min(own, plan.teardown_deadline)

    # -- state ----------------------------------------------------------------------------
    @property
    def state(self) -> ActivityState:
        return self.life.state

    @property
    def current_speech(self) -> SpeechHandle | None:
        """What plays now: a nested speech (a tool's "one moment") before its parent."""
        sid = self._queue.nested_current or self._queue.current
        return self._handles.get(sid) if sid else None

    def owns(self, handle: SpeechHandle) -> bool:
        return handle.id in self._handles

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Attach the agent, run ``on_enter`` (owned, not awaited), start queued speech and
        the user turns that arrived while this agent was pending."""
        self._apply(self.life.start(self._clock.now()))

    def drain(self, deadline: float | None = None, *, purpose: str = "handoff") -> None:
        """Graceful end by ``deadline``: queued speech plays, then ``on_exit``. Past the
        deadline it escalates to a forced close. A pending activity is closed at once."""
        self._apply(self.life.drain(self._clock.now(), deadline, purpose=purpose))
        self._ensure_end()

    def close(self, plan: ClosePlan | None = None, *, reserve_steps: int = 0) -> None:
        """Forced end on ``plan``: synchronously interrupts everything; the end task settles
        and releases. ``reserve_steps``: teardown steps the caller still has to run after
        this activity's streams (they keep a fair share of the teardown window)."""
        self._reserve_steps = max(self._reserve_steps, reserve_steps)
        self._apply(self.life.close(self._clock.now(), plan))
        self._ensure_end()

    def end_task(self) -> asyncio.Task[None] | None:
        return self._end

    def abort(self) -> None:
        """Last resort (never blocks): hard-release every stream still registered."""
        self.streams.abort_all()

    def _apply(self, commands: list[ActivityCommand]) -> None:
        for command in commands:
            if command is _C.ENTER:
                self._enter()
            elif command is _C.RUN_ON_EXIT:
                self._run_on_exit()
            elif command is _C.INTERRUPT:
                self._interrupt_all()
            elif command is _C.DETACH:
                self.agent.attach(None)
            # SETTLE and RELEASE are carried out by the end task, in order.
        self._changed.set()
        if commands:
            self._on_change(self)  # the state moved: the session re-checks (start, drain)

    def _enter(self) -> None:
        self.agent.attach(self._svc.session)
        self._queue.resume()
        hook = self._owner.spawn(self.agent.on_enter(), name="on_enter")
        hook.add_done_callback(lambda _: self.life.on_entered(self._clock.now()))
        turns, self._deferred_turns = self._deferred_turns, []
        for message, reply in turns:
            self._spawn_turn(message, reply)
        self._start_next()

    def _run_on_exit(self) -> None:
        try:
            self._on_exit = self._owner.spawn(self.agent.on_exit(), name="on_exit")
        except ClosedError:
            return
        self._on_exit.add_done_callback(lambda _: self._changed.set())

    def _interrupt_all(self) -> None:
        self._queue.pause()
        for handle in list(self._handles.values()):
            if handle.state is SpeechState.QUEUED:
                self.undelivered.append(handle)
            handle.interrupt(force=True)
        for task in self._owner.live:
            if task is not self._on_exit:
                task.cancel()  # on_enter, user-turn hooks, tools; speech tasks were just cancelled

    def _ensure_end(self) -> None:
        if self._end is None and self.life.ending:
            self._end = asyncio.get_running_loop().create_task(
                self._run_end(),
                name=f"agent:{self.name}/end",
                context=self._svc.task_context.copy(),
            )

    async def _run_end(self) -> None:
        """Walk the machine to CLOSED; whatever fails on the way, end CLOSED (streams aborted,
        tasks abandoned and reported), so the session never waits on this agent for ever."""
        try:
            await self._walk_to_closed()
        except Exception as exc:
            log.exception("%s: ending failed", self.name)
            self._svc.report_error(exc, f"{self.name} end", fatal=False)
            live = self._owner.live
            for task in live:
                task.cancel()
            self.abandoned.extend(abandon(live))
            self.abort()
            self._apply(self.life.abort(self._clock.now()))

    async def _walk_to_closed(self) -> None:
        life = self.life
        while not life.closed:
            now = self._clock.now()
            if life.state is _S.DRAINING:
                if self._queue.is_idle():
                    self._apply(life.drained(now))
                else:
                    await self._wait_change()
            elif life.state is _S.EXITING:
                exit_done = self._on_exit is None or self._on_exit.done()
                if exit_done and self._queue.is_idle():
                    self._apply(life.exited(now))
                else:
                    await self._wait_change()
            elif life.state is _S.SETTLING:
                await self._settle()
                self.settled_at = self._clock.now()
                self._apply(life.settled(self.settled_at))
            elif life.state is _S.RELEASING:
                await self._release()
                self._apply(life.released(self._clock.now()))
            else:  # pragma: no cover - the machine never leaves an ending state backwards
                raise AssertionError(f"end task in state {life.state}")

    async def _wait_change(self) -> None:
        """Wait until something changed or the drain deadline, which escalates."""
        self._changed.clear()
        deadline = self.life.next_deadline()
        assert deadline is not None  # DRAINING/EXITING always have a drain deadline
        if not await wait_event(self._changed, deadline, self._clock.now()):
            # Timed out. The loop may wake a timer a hair before its deadline (its clock
            # resolution): the deadline is what passed, so poll at it, never before.
            self._apply(self.life.poll(max(self._clock.now(), deadline)))

    async def _settle(self) -> None:
        plan = self.life.plan
        assert plan is not None
        live = self._owner.live
        if live and not self.life.exited_gracefully:
            # Well-behaved tasks (and on_exit) may finish; then cancel twice, abandon. After
            # a graceful on_exit, what is still running is left over: cancel it at once.
            timeout = max(0.0, plan.settle_wait_deadline - self._clock.now())
            await asyncio.wait(live, timeout=timeout)
        self.settle_abandoned = await self._owner.shutdown(
            plan.settle_deadline, recancel_at=plan.cancel_deadline
        )
        self.abandoned.extend(self.settle_abandoned)
        for handle in list(self._handles.values()):
            handle.mark_done()
            self._finish(handle)

    async def _release(self) -> None:
        plan = self.life.plan
        assert plan is not None
        reserve = self._reserve_steps
        steps = await self.streams.release(
            lambda now, left: plan.step_deadline(now, left + reserve),
            clock=self._clock,
            abandoned=self.abandoned,
        )
        self.steps.extend(steps)
        for step in steps:
            self.abandoned.extend(step.abandoned)

    # -- scheduling -----------------------------------------------------------------------
    def schedule(
        self, handle: SpeechHandle, body: SpeechBody, *, parent: SpeechHandle | None = None
    ) -> SpeechHandle:
        """Queue a speech (it starts once this agent runs); with ``parent`` (the speech
        whose tool asks), nested: it plays now, while the parent waits for its tools.
        Raises ``SessionClosedError`` once the activity is closing."""
        if not self.life.accepts_speech or self._owner.closed:
            raise SessionClosedError(f"{self.name} is {self.life.state.value}: no more speech")
        self._handles[handle.id] = handle
        self._bodies[handle.id] = body
        handle.on_interrupt(self._on_interrupted)
        if parent is not None and self._queue.enqueue_nested(handle.id, parent.id):
            parent.nested.append(handle)
        else:
            self._queue.enqueue(handle.id, handle.priority)
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
            self._changed.set()
            if self.life.state in (_S.ENTERING, _S.ACTIVE):
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
        for child in handle.nested:  # a parent that ended takes its nested speech along
            child.interrupt(force=True)

    def _on_interrupted(self, handle: SpeechHandle) -> None:
        if handle.id in (self._queue.current, self._queue.nested_current):
            output = self._svc.audio_output
            if output is not None:
                output.clear_buffer()
            task = self._tasks.get(handle.id)
            if task is not None:
                task.cancel()
        else:
            self._finish(handle)
            if self._queue.is_idle():
                self._changed.set()

    def interrupt(self, *, force: bool = False) -> list[SpeechHandle]:
        """Interrupt current and queued speech (only interruptible ones unless ``force``)."""
        handles = list(self._handles.values())
        return [h for h in handles if h.interrupt(force=force)]

    # -- user turns -----------------------------------------------------------------------
    def on_user_turn(self, message: ChatMessage, reply: Reply) -> None:
        """Run ``on_user_turn_completed`` (owned), then ``reply()`` unless it raised
        ``StopResponse``. A pending agent keeps the turn until it starts (after
        ``on_enter``); an agent that is ending ignores it (the message is in history)."""
        if self.life.state is _S.PENDING:
            self._deferred_turns.append((message, reply))
        elif self.life.state in (_S.ENTERING, _S.ACTIVE):
            self._spawn_turn(message, reply)

    def take_deferred_turns(self) -> list[tuple[ChatMessage, Reply]]:
        """The turns a superseded pending agent never ran (handed to its successor)."""
        turns, self._deferred_turns = self._deferred_turns, []
        return turns

    def _spawn_turn(self, message: ChatMessage, reply: Reply) -> None:
        async def run() -> None:
            ctx = ChatContext(list(self._svc.history))
            hook = self._owner.spawn(
                self.agent.on_user_turn_completed(ctx, message),
                name="on_user_turn_completed",
                joined=True,
            )
            try:
                await join(hook)
            except StopResponse:
                return
            except Exception as exc:
                self._svc.report_error(exc, "on_user_turn_completed", fatal=False)
            if self.life.state in (_S.ENTERING, _S.ACTIVE):
                reply()

        try:
            self._owner.spawn(run(), name="user_turn")
        except ClosedError:
            pass

    def _on_task_error(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        name = task.get_name().rsplit("/", 1)[-1]
        log.warning("%s/%s failed: %r", self.name, name, exc)
        self._svc.report_error(exc, name, fatal=False)


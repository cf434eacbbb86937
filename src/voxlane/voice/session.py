"""AgentSession: the public API (DESIGN §4) and the one closing task (DESIGN §2, I1-I7).

Every close entry point — ``aclose()``, ``shutdown()``, a participant disconnect with
``close_on_disconnect``, a fatal provider error — goes through ``_request_close``, which
creates the single closing task or joins the existing one. The closing task never waits
without a deadline, tears resources down in ``finally`` whatever happened before, and emits
``close`` exactly once.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.closing import Outcome, ResourceStack, StepReport, bounded_aclose
from voxlane.aio.ledger import LEDGER, current_session_id
from voxlane.aio.tasks import TaskOwner, wait_event
from voxlane.chat import ChatMessage
from voxlane.core.close_plan import CloseBudget, ClosePlan, DrainPlan
from voxlane.core.states import CloseReason, SessionEvent, SessionState, session_machine
from voxlane.core.turns import UserState
from voxlane.errors import SessionClosedError, VoxlaneError
from voxlane.providers.llm import LLM
from voxlane.providers.stt import STT
from voxlane.providers.tts import TTS
from voxlane.providers.vad import VAD
from voxlane.room import AudioOutput, DisconnectReason, Participant, Room
from voxlane.voice.activity import AgentActivity
from voxlane.voice.agent import Agent
from voxlane.voice.events import (
    AgentState,
    AgentStateChanged,
    CloseEvent,
    ConversationItemAdded,
    ErrorEvent,
    EventEmitter,
    SpeechCreated,
    TurnMetrics,
    UserInputTranscribed,
    UserStateChanged,
)
from voxlane.voice.input import UserInput
from voxlane.voice.report import TeardownReport, Usage, session_report
from voxlane.voice.speech import SpeechHandle
from voxlane.voice.tracing import SessionTracer, trace_session

log = logging.getLogger("voxlane.session")
T = TypeVar("T")


async def _settled(awaitable: Awaitable[T]) -> T | Exception:
    """``await`` as ``gather(return_exceptions=True)`` would: an error is returned."""
    try:
        return await awaitable
    except Exception as exc:
        return exc


class AgentSession(EventEmitter):
    """Runs agents against a room's audio with the given providers.

    Configuration is keyword-only. ``close_timeout`` bounds every forced close (I1);
    ``drain_timeout`` bounds graceful drains (handoff, ``shutdown(drain=True)``), after
    which they escalate to a forced close (I4).
    """

    def __init__(
        self,
        *,
        stt: STT | None = None,
        llm: LLM | None = None,
        tts: TTS | None = None,
        vad: VAD | None = None,
        close_timeout: float = 4.0,
        drain_timeout: float = 10.0,
        max_tool_steps: int = 5,
        min_endpoint_delay: float = 0.5,
        allow_interruptions: bool = True,
        userdata: Any = None,
        session_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.id = session_id or f"sess_{uuid.uuid4().hex[:12]}"
        self._stt, self._llm, self._tts, self._vad = stt, llm, tts, vad
        self._budget = CloseBudget(close_timeout=close_timeout)
        self._drain_timeout = drain_timeout
        self._max_tool_steps = max_tool_steps
        self._min_endpoint_delay = min_endpoint_delay
        self.allow_interruptions = allow_interruptions
        self.userdata = userdata
        self._clock = clock or DEFAULT_CLOCK
        self._machine = session_machine()
        self._context = contextvars.copy_context()
        self._context.run(current_session_id.set, self.id)
        self._owner = TaskOwner(
            f"session:{self.id}",
            on_error=self._on_task_error,
            clock=self._clock,
            context=self._context,
        )
        self._streams = ResourceStack()
        self._history: list[ChatMessage] = []
        self._usage = Usage()
        self._agent_state = AgentState.INITIALIZING
        self._user_state = UserState.LISTENING
        self._activity: AgentActivity | None = None
        self._retiring: list[AgentActivity] = []
        self._handoff_reports: list[TeardownReport] = []
        self._handoff_task: asyncio.Task[None] | None = None
        self._link_task: asyncio.Task[None] | None = None
        self._input: UserInput | None = None
        self._output: AudioOutput | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._participant: Participant | None = None
        self._t0 = 0.0
        self.started_at = time.time()
        self.ended_at: float | None = None
        self._closing: asyncio.Task[CloseEvent] | None = None
        self._close_reason: CloseReason | None = None
        self._close_error: BaseException | None = None
        self._force_close = asyncio.Event()
        self._close_requested = asyncio.Event()
        self.close_event: CloseEvent | None = None
        self.tracing: SessionTracer | None = None
        """OpenTelemetry spans of this session, when OpenTelemetry is installed."""

    # -- read-only state -------------------------------------------------------------------
    @property
    def state(self) -> SessionState:
        return self._machine.state

    @property
    def agent_state(self) -> AgentState:
        return self._agent_state

    @property
    def user_state(self) -> UserState:
        return self._user_state

    @property
    def current_agent(self) -> Agent | None:
        return self._activity.agent if self._activity else None

    @property
    def history(self) -> list[ChatMessage]:
        return list(self._history)

    @property
    def usage(self) -> Usage:
        return self._usage

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def stt(self) -> STT | None:
        return self._stt

    @property
    def llm(self) -> LLM | None:
        return self._llm

    @property
    def tts(self) -> TTS | None:
        return self._tts

    @property
    def audio_output(self) -> AudioOutput | None:
        return self._output

    @property
    def max_tool_steps(self) -> int:
        return self._max_tool_steps

    @property
    def close_timeout(self) -> float:
        return self._budget.close_timeout

    # -- starting ---------------------------------------------------------------------------
    async def start(
        self,
        agent: Agent,
        *,
        room: Room | None = None,
        close_on_disconnect: bool = True,
        audio_output: AudioOutput | None = None,
    ) -> None:
        """Start running ``agent``. Returns once the agent is scheduled (``on_enter`` runs in
        the background). Raises ``SessionClosedError`` if the session was already closed,
        ``IllegalTransition`` if it was already started."""
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            raise SessionClosedError("session is closed")
        self._machine.fire(SessionEvent.START)
        self.tracing = trace_session(self)
        self._context.run(self._start_sync, agent, room, close_on_disconnect, audio_output)
        await asyncio.sleep(0)  # let on_enter begin, so start() is a real scheduling point
        if self.state is SessionState.STARTING:
            self._machine.fire(SessionEvent.STARTED)

    def _start_sync(
        self,
        agent: Agent,
        room: Room | None,
        close_on_disconnect: bool,
        audio_output: AudioOutput | None,
    ) -> None:
        self._t0 = self._clock.now()
        self.started_at = time.time()
        self._output = audio_output or (room.audio_output if room is not None else None)
        self._input = UserInput(
            stt=self._stt,
            vad=self._vad,
            listener=self,
            owner=self._owner,
            streams=self._streams,
            clock=self._clock,
            usage=self._usage,
            min_endpoint_delay=self._min_endpoint_delay,
        )
        if room is not None:
            if close_on_disconnect:
                self._unsubscribe = room.on_participant_disconnected(self._on_disconnected)
            self._link_task = self._owner.spawn(self._link(room), name="link-participant")
        self._activity = AgentActivity(agent, self)
        self._activity.start()

    async def _link(self, room: Room) -> None:
        participant = await room.wait_for_participant()
        self._participant = participant
        if self._input is not None and self.state in (SessionState.STARTING, SessionState.RUNNING):
            self._input.attach(room.audio_input(participant), sample_rate=room.sample_rate)

    def _on_disconnected(self, participant: Participant, reason: DisconnectReason) -> None:
        if self._participant is None or participant == self._participant:
            log.info("session %s: participant left (%s), closing", self.id, reason.value)
            self._request_close(CloseReason.PARTICIPANT_DISCONNECTED)

    # -- speaking ---------------------------------------------------------------------------
    def _running_activity(self) -> AgentActivity:
        if (
            self.state not in (SessionState.STARTING, SessionState.RUNNING)
            or self._activity is None
        ):
            raise SessionClosedError(f"session is {self.state.value}: cannot schedule speech")
        return self._activity

    def say(
        self,
        text: str,
        *,
        allow_interruptions: bool | None = None,
        add_to_history: bool = True,
    ) -> SpeechHandle:
        """Speak ``text``. Returns the handle at once; ``await`` it to wait for playout."""
        activity = self._running_activity()
        handle = SpeechHandle(allow_interruptions=self._interruptible(allow_interruptions))
        activity.schedule(
            handle, lambda h: activity.generator.say(h, text, add_to_history=add_to_history)
        )
        self.emit("speech_created", SpeechCreated(handle, "say"))
        return handle

    def generate_reply(
        self,
        *,
        user_input: str | None = None,
        instructions: str | None = None,
        allow_interruptions: bool | None = None,
    ) -> SpeechHandle:
        """Ask the LLM for a reply (running tools as it asks), spoken as it streams."""
        activity = self._running_activity()
        if self._llm is None:
            raise VoxlaneError("generate_reply needs an LLM: pass llm= to AgentSession")
        if user_input:
            self.add_to_history(ChatMessage("user", user_input, at_s=self.session_time()))
        handle = SpeechHandle(allow_interruptions=self._interruptible(allow_interruptions))
        activity.schedule(handle, lambda h: activity.generator.reply(h, instructions=instructions))
        self.emit("speech_created", SpeechCreated(handle, "generate_reply"))
        return handle

    def _interruptible(self, value: bool | None) -> bool:
        if value is not None:
            return value
        agent = self.current_agent
        return self.allow_interruptions and (agent.allow_interruptions if agent else True)

    def interrupt(self, *, force: bool = False) -> None:
        """Interrupt current and queued speech (``force`` ignores ``allow_interruptions``)."""
        if self._activity is not None:
            self._activity.interrupt(force=force)

    # -- handoff ----------------------------------------------------------------------------
    def update_agent(self, agent: Agent) -> None:
        """Hand off to ``agent``: the current agent drains (bounded by ``drain_timeout``),
        runs ``on_exit``, then ``agent`` starts with ``on_enter``. Speech requested meanwhile
        goes to the new agent."""
        old = self._running_activity()
        pending = self._handoff_task is not None and not self._handoff_task.done()
        new = AgentActivity(agent, self)
        self._activity = new
        if pending:
            # The previous target never started: drop its queue; the running handoff will
            # start whichever activity is current when the old agent has drained.
            old.interrupt(force=True)
            return
        self._retiring.append(old)
        self._handoff_task = self._owner.spawn(self._handoff(old), name="handoff")

    def request_handoff(self, agent: Agent) -> None:
        self.update_agent(agent)

    async def _handoff(self, old: AgentActivity) -> None:
        drained = await old.drain(DrainPlan.start(self._clock.now(), self._drain_timeout).deadline)
        if not drained:
            log.warning("session %s: handoff drain timed out, interrupting", self.id)
        plan = ClosePlan.start(self._clock.now(), self._budget)
        report = TeardownReport(CloseReason.USER_INITIATED)
        report.abandoned.extend(await old.close(plan.settle_deadline))
        if not drained:
            report.escalations.append("handoff: drain timed out, old agent interrupted")
        await self._teardown([old.streams], plan, report)
        if report.abandoned:
            log.warning("session %s: handoff abandoned %d task(s)", self.id, len(report.abandoned))
        self._handoff_reports.append(report)  # merged into the session's close report
        self._retiring.remove(old)
        if self._activity is not None and self.state is SessionState.RUNNING:
            self._activity.start()

    # -- SessionServices for activities -----------------------------------------------------
    def as_session(self) -> AgentSession:
        return self

    @property
    def task_context(self) -> contextvars.Context:
        """The context session tasks run in (carries the session id for the ledger)."""
        return self._context

    def session_time(self) -> float:
        return self._clock.now() - self._t0

    def add_to_history(self, message: ChatMessage) -> ChatMessage:
        self._history.append(message)
        self.emit("conversation_item_added", ConversationItemAdded(message))
        return message

    def set_agent_state(self, state: AgentState) -> None:
        if state is not self._agent_state:
            old, self._agent_state = self._agent_state, state
            self.emit("agent_state_changed", AgentStateChanged(old, state))

    def report_error(self, error: BaseException, source: str, *, fatal: bool) -> None:
        self.emit("error", ErrorEvent(error, source, recoverable=not fatal))
        if fatal:
            self._request_close(CloseReason.ERROR, error)

    def _on_task_error(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        # A session-level task (STT/VAD reader, input feed, handoff) failing is fatal: the
        # session can no longer hear, or no longer knows which agent runs.
        log.warning("session %s: %s failed: %r", self.id, task.get_name(), exc)
        self.report_error(exc, task.get_name(), fatal=True)

    # -- InputListener ----------------------------------------------------------------------
    def on_user_state(self, old: UserState, new: UserState) -> None:
        self._user_state = new
        self.emit("user_state_changed", UserStateChanged(old, new))

    def on_user_speech_started(self) -> None:
        activity = self._activity
        speech = activity.current_speech if activity is not None else None
        if speech is not None and speech.allow_interruptions:
            speech.interrupt()

    def on_transcript(self, text: str, is_final: bool) -> None:
        self.emit("user_input_transcribed", UserInputTranscribed(text, is_final))

    def on_user_turn(self, text: str) -> None:
        if self.state is not SessionState.RUNNING or self._activity is None:
            return
        message = self.add_to_history(ChatMessage("user", text, at_s=self.session_time()))
        activity = self._activity
        metrics = TurnMetrics(committed_at=self._clock.now())
        if self._input is not None:
            metrics.speech_ended_at = self._input.speech_ended_at
            metrics.final_at = self._input.final_at

        def reply() -> None:
            if self.state is SessionState.RUNNING and self._llm is not None:
                self.generate_reply().metrics = metrics

        activity.on_user_turn(message, reply)

    # -- closing ----------------------------------------------------------------------------
    def shutdown(self, *, drain: bool = True) -> None:
        """Close without waiting: ``drain=True`` lets queued speech finish first (bounded by
        ``drain_timeout``, then forced); ``drain=False`` is a forced close."""
        reason = CloseReason.DRAINED if drain else CloseReason.USER_INITIATED
        self._request_close(reason, drain=drain)

    async def aclose(self) -> CloseEvent:
        """Forced close, bounded by ``close_timeout``. Idempotent; every caller gets the one
        ``CloseEvent``. Being cancelled while waiting does not stop the close."""
        return await asyncio.shield(self._request_close(CloseReason.USER_INITIATED))

    async def wait_closed(self) -> CloseEvent:
        """Wait until the session has closed (however it was asked to)."""
        if self.close_event is not None:
            return self.close_event
        await self._close_requested.wait()
        assert self._closing is not None
        return await asyncio.shield(self._closing)

    def _request_close(
        self, reason: CloseReason, error: BaseException | None = None, *, drain: bool = False
    ) -> asyncio.Task[CloseEvent]:
        if self._closing is not None:
            if not drain:
                self._force_close.set()  # a forced request escalates a drain in progress
            return self._closing
        self._close_reason, self._close_error = reason, error
        if drain and self.state is SessionState.RUNNING:
            self._machine.fire(SessionEvent.DRAIN)
        else:
            self._force_close.set()
        loop = asyncio.get_running_loop()
        self._closing = loop.create_task(
            self._run_close(), name=f"session:{self.id}/close", context=self._context.copy()
        )
        self._close_requested.set()
        return self._closing

    async def _run_close(self) -> CloseEvent:
        clock = self._clock
        started = clock.now()
        assert self._close_reason is not None
        report = TeardownReport(self._close_reason)
        if self._close_error is not None:
            report.error = f"{type(self._close_error).__name__}: {self._close_error}"
        activities: list[AgentActivity] = []
        try:
            if self.state is SessionState.DRAINING:
                await self._drain(report)
            self._machine.fire(SessionEvent.CLOSE)
            activities = [a for a in (*self._retiring, self._activity) if a is not None]
            await self._close_forced(ClosePlan.start(clock.now(), self._budget), activities, report)
        except BaseException as exc:  # an error here must never skip the close event
            log.exception("session %s: error while closing", self.id)
            report.error = report.error or f"close failed: {exc!r}"
            if not isinstance(exc, Exception):
                raise
        finally:
            # Safety net: anything not released above is hard-released now (never blocks).
            for stack in [*(a.streams for a in activities), self._streams]:
                stack.abort_all()
            for earlier in self._handoff_reports:
                report.abandoned.extend(earlier.abandoned)
                report.escalations.extend(earlier.escalations)
            report.duration_ms = (clock.now() - started) * 1000
            report.open_connections_after = LEDGER.count_open(self.id)
            if self._machine.state is SessionState.CLOSING:
                self._machine.fire(SessionEvent.CLOSED)
            event = CloseEvent(report.reason, self._close_error, list(self._history), report)
            self.close_event = event
            self.ended_at = time.time()
            report.listener_errors = [repr(e) for e in self.emit("close", event)]
        return event

    async def _drain(self, report: TeardownReport) -> None:
        """Graceful part of ``shutdown(drain=True)``: bounded; a forced request cuts it short."""
        plan = DrainPlan.start(self._clock.now(), self._drain_timeout)
        drained = False
        if self._activity is not None:
            drain = self._owner.spawn(self._activity.drain(plan.deadline), name="drain")
            forced = asyncio.ensure_future(
                wait_event(self._force_close, plan.deadline, plan.started_at)
            )
            try:
                await asyncio.wait(
                    {drain, forced},
                    timeout=max(0.0, plan.deadline - self._clock.now()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                forced.cancel()
            drained = (
                drain.done()
                and not drain.cancelled()
                and drain.exception() is None
                and drain.result()
            )
            drain.cancel()
        if not drained:
            report.escalations.append("drain: not complete in time, escalated to forced close")

    async def _close_forced(
        self, plan: ClosePlan, activities: list[AgentActivity], report: TeardownReport
    ) -> None:
        clock = self._clock
        # 1. interrupt: no new input, no handoff, no new speech.
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in (self._handoff_task, self._link_task):
            if task is not None:
                task.cancel()
        if self._input is not None:
            self._input.detach()

        # 2. settle: speech/tool/hook tasks and a trailing transcript, concurrently, bounded.
        async def settle_input() -> None:
            if self._input is not None:
                text = await self._input.finish(plan.settle_deadline)
                if text:
                    self.add_to_history(ChatMessage("user", text, at_s=self.session_time()))

        t = clock.now()
        results: list[Any]
        quiet_input = not (self._input and self._input.expects_trailing_final)
        if len(activities) == 1 and quiet_input and not activities[0].has_live_tasks:
            # The usual silent close needs no concurrency: one idle agent (its settle takes
            # a loop turn or two) and an input with nothing to wait for. Awaiting directly
            # spares the tasks gather would make; a busy agent or a pending transcript
            # settle concurrently, so neither eats the other's window.
            results = [await _settled(activities[0].close(plan.settle_deadline))]
            results.append(await _settled(settle_input()))
        else:
            results = await asyncio.gather(
                *(a.close(plan.settle_deadline) for a in activities),
                settle_input(),
                return_exceptions=True,
            )
        for result in results:
            if isinstance(result, list):
                report.abandoned.extend(result)
            elif isinstance(result, BaseException):
                report.error = report.error or f"settle failed: {result!r}"
        report.abandoned.extend(await self._owner.shutdown(plan.settle_deadline))
        settle_outcome: Outcome = "timeout" if report.abandoned else "ok"
        report.steps.append(StepReport("settle", (clock.now() - t) * 1000, settle_outcome))
        if report.abandoned:
            report.escalations.append(f"settle: abandoned {len(report.abandoned)} task(s)")

        # 3. teardown: provider streams (newest first), then the transport output.
        await self._teardown([*(a.streams for a in activities), self._streams], plan, report)
        if self._output is not None:
            step = await bounded_aclose(
                "audio_output", self._output, plan.teardown_deadline, clock=clock
            )
            report.add_step(step)

    async def _teardown(
        self, stacks: list[ResourceStack], plan: ClosePlan, report: TeardownReport
    ) -> None:
        items = [item for stack in stacks for item in stack.take_all()]
        steps_after = 1 if self._output is not None else 0
        for i, (name, resource) in enumerate(items):
            now = self._clock.now()
            deadline = plan.step_deadline(now, len(items) - i + steps_after)
            report.add_step(
                await bounded_aclose(f"close {name}", resource, deadline, clock=self._clock)
            )

    def report_dict(self) -> dict[str, Any]:
        """The DESIGN §8 session report (after close)."""
        if self.close_event is None:
            raise SessionClosedError("the session has not closed yet")
        return session_report(
            session_id=self.id,
            started_at=self.started_at,
            ended_at=self.ended_at or time.time(),
            teardown=self.close_event.report,
            history=self._history,
            usage=self._usage,
        )

"""The private runtime behind ``AgentSession``: the wiring between the session's lifecycle,
its agents (activities), the user's input and the audio output.

Decisions are the pure :class:`~voxlane.core.lifecycle.SessionLifecycle`'s; this object
carries out its commands. It owns every activity it ever created until that activity is
CLOSED — a superseded or never-started handoff target included — so a close always finds
everything it must end. The close itself (one task, every entry point joins it) is in
:mod:`voxlane.voice.closing`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from voxlane.aio.clock import Clock
from voxlane.aio.closing import ResourceStack
from voxlane.aio.tasks import TaskOwner
from voxlane.chat import ChatMessage
from voxlane.core.close_plan import Budget
from voxlane.core.lifecycle import (
    ActivityState,
    CloseReason,
    SessionCommand,
    SessionLifecycle,
    SessionState,
)
from voxlane.core.turns import UserState
from voxlane.errors import SessionClosedError, VoxlaneError
from voxlane.providers.llm import LLM
from voxlane.providers.stt import STT
from voxlane.providers.tts import TTS
from voxlane.providers.vad import VAD
from voxlane.room import AudioOutput, DisconnectReason, Participant, Room
from voxlane.voice.activity import AgentActivity
from voxlane.voice.agent import Agent
from voxlane.voice.api import SessionAPI
from voxlane.voice.events import (
    AgentState,
    AgentStateChanged,
    CloseEvent,
    ConversationItemAdded,
    ErrorEvent,
    EventName,
    SpeechCreated,
    TurnMetrics,
    UserInputTranscribed,
    UserStateChanged,
)
from voxlane.voice.input import UserInput
from voxlane.voice.report import HookError, Undelivered, Usage
from voxlane.voice.speech import SpeechHandle, running_tool_of

log = logging.getLogger("voxlane.session")


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    budget: Budget
    max_tool_steps: int
    min_endpoint_delay: float
    allow_interruptions: bool
    participant_timeout: float


class SessionRuntime:
    """Implements ``SessionServices`` (for activities) and ``InputListener`` (for input)."""

    def __init__(
        self,
        session: SessionAPI[Agent],
        *,
        emit: Callable[[EventName, object], list[BaseException]],
        run_close: Callable[[SessionRuntime], Coroutine[Any, Any, CloseEvent]],
        session_id: str,
        stt: STT | None,
        llm: LLM | None,
        tts: TTS | None,
        vad: VAD | None,
        config: RuntimeConfig,
        clock: Clock,
        task_context: contextvars.Context,
    ) -> None:
        self.session = session
        self.emit = emit
        self._run_close = run_close
        self.id = session_id
        self.stt, self.llm, self.tts, self.vad = stt, llm, tts, vad
        self.config = config
        self.budget = config.budget
        self.clock = clock
        self.task_context = task_context
        self.life = SessionLifecycle(config.budget)
        self.owner = TaskOwner(
            f"session:{session_id}", on_error=self._on_task_error, clock=clock, context=task_context
        )
        self.streams = ResourceStack()  # the input's STT and VAD streams
        self.history: list[ChatMessage] = []
        self.usage = Usage()
        self.errors: list[HookError] = []
        self.agent_state = AgentState.INITIALIZING
        self.user_state = UserState.LISTENING
        self.current: AgentActivity | None = None
        self.activities: list[AgentActivity] = []
        """Every activity not yet CLOSED, oldest first."""
        self.ended: list[AgentActivity] = []
        self.ended_in_close: list[AgentActivity] = []
        """Activities that closed while the session drained or closed: their teardown
        steps belong to the close report."""
        self.changed = asyncio.Event()  # an activity changed state, or a close was requested
        self.input: UserInput | None = None
        self.audio_output: AudioOutput | None = None
        self.audio_output_closed = False
        self.unsubscribe: Callable[[], None] | None = None
        self.participant: Participant | None = None
        self.link_task: asyncio.Task[None] | None = None
        self.closing: asyncio.Task[CloseEvent] | None = None
        self.close_error: BaseException | None = None
        self.close_requested = asyncio.Event()
        self.close_event: CloseEvent | None = None
        self.t0 = 0.0
        self.started_at = time.time()
        self.ended_at: float | None = None

    # -- SessionServices --------------------------------------------------------------------
    @property
    def max_tool_steps(self) -> int:
        return self.config.max_tool_steps

    def session_time(self) -> float:
        return self.clock.now() - self.t0

    def add_to_history(self, message: ChatMessage) -> ChatMessage:
        self.history.append(message)
        self.emit("conversation_item_added", ConversationItemAdded(message))
        return message

    def set_agent_state(self, state: AgentState) -> None:
        if state is not self.agent_state:
            old, self.agent_state = self.agent_state, state
            self.emit("agent_state_changed", AgentStateChanged(old, state))

    def report_error(self, error: BaseException, source: str, *, fatal: bool) -> None:
        if self.close_event is not None:  # an abandoned task failing after the close
            log.warning("session %s: %s failed after close: %r", self.id, source, error)
            return
        self.errors.append(HookError(source, f"{type(error).__name__}: {error}", fatal))
        self.emit("error", ErrorEvent(error, source, recoverable=not fatal))
        if fatal:
            self.request_close(CloseReason.ERROR, error)

    def request_handoff(self, agent: Agent) -> None:
        self.update_agent(agent)

    def _on_task_error(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        # A session-level task (STT/VAD reader, input feed, link) failing is fatal: the
        # session can no longer hear.
        log.warning("session %s: %s failed: %r", self.id, task.get_name(), exc)
        self.report_error(exc, task.get_name().rsplit("/", 1)[-1], fatal=True)

    # -- starting ---------------------------------------------------------------------------
    def start(
        self,
        agent: Agent,
        room: Room | None,
        close_on_disconnect: bool,
        audio_output: AudioOutput | None,
    ) -> None:
        """Synchronous part of ``AgentSession.start`` (runs in the session's context)."""
        self.t0 = self.clock.now()
        self.started_at = time.time()
        self.audio_output = audio_output or (room.audio_output if room is not None else None)
        self.input = UserInput(
            stt=self.stt,
            vad=self.vad,
            listener=self,
            owner=self.owner,
            streams=self.streams,
            clock=self.clock,
            usage=self.usage,
            min_endpoint_delay=self.config.min_endpoint_delay,
        )
        self.current = self._new_activity(agent)
        if room is not None:
            if close_on_disconnect:
                self.unsubscribe = room.on_participant_disconnected(self._on_disconnected)
                gone = room.departed_participants()
                if gone and not room.remote_participants():
                    # The caller left before the session started: close now, run no hook.
                    who, why = next(iter(gone.items()))
                    log.info("session %s: %s already left (%s)", self.id, who.identity, why)
                    self.request_close(CloseReason.PARTICIPANT_DISCONNECTED)
                    return
            self.link_task = self.owner.spawn(self._link(room), name="link-participant")
        self._maybe_start_current()

    async def _link(self, room: Room) -> None:
        """Attach the first participant's audio; a room nobody joins in time closes."""
        waiter = asyncio.ensure_future(room.wait_for_participant())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=self.config.participant_timeout)
        finally:
            waiter.cancel()
        if not done:
            log.info("session %s: no participant within the participant_timeout", self.id)
            error = TimeoutError(
                f"no participant joined within {self.config.participant_timeout:g} s"
            )
            self.request_close(CloseReason.PARTICIPANT_DISCONNECTED, error)
            return
        self.participant = waiter.result()
        if self.input is not None and not self.life.closing:
            frames = room.audio_input(self.participant)
            self.input.attach(frames, sample_rate=room.sample_rate)

    def _on_disconnected(self, participant: Participant, reason: DisconnectReason) -> None:
        if self.participant is None or participant == self.participant:
            log.info("session %s: participant left (%s), closing", self.id, reason.value)
            self.request_close(CloseReason.PARTICIPANT_DISCONNECTED)

    # -- activities -------------------------------------------------------------------------
    def _new_activity(self, agent: Agent) -> AgentActivity:
        activity = AgentActivity(agent, self, self.budget, on_change=self._on_activity_changed)
        self.activities.append(activity)
        return activity

    def _on_activity_changed(self, activity: AgentActivity) -> None:
        if activity.life.closed and activity in self.activities:
            self.activities.remove(activity)
            self.ended.append(activity)
            if self.life.state in (SessionState.DRAINING, SessionState.CLOSING):
                self.ended_in_close.append(activity)
        self.changed.set()
        self._maybe_start_current()

    def _maybe_start_current(self) -> None:
        """Start the current agent once every agent before it has closed."""
        current = self.current
        if (
            current is not None
            and current.state is ActivityState.PENDING
            and self.life.starts_agents
            and all(a is current for a in self.activities)
        ):
            current.start()

    def speech_target(self) -> AgentActivity:
        if not self.life.accepts_speech or self.current is None:
            raise SessionClosedError(f"session is {self.life.state.value}: cannot schedule speech")
        return self.current

    def say(
        self, text: str, allow_interruptions: bool | None, add_to_history: bool
    ) -> SpeechHandle:
        """Queue ``text``; from inside a tool, nested in the speech that runs the tool."""
        activity = self.speech_target()
        parent = running_tool_of.get()
        if parent is not None:
            activity = next((a for a in self.activities if a.owns(parent)), activity)
        handle = SpeechHandle(
            allow_interruptions=self._interruptible(allow_interruptions), text=text
        )
        activity.schedule(
            handle,
            lambda h: activity.generator.say(h, text, add_to_history=add_to_history),
            parent=parent,
        )
        self.emit("speech_created", SpeechCreated(handle, "say"))
        return handle

    def generate_reply(
        self, user_input: str | None, instructions: str | None, allow_interruptions: bool | None
    ) -> SpeechHandle:
        activity = self.speech_target()
        if self.llm is None:
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
        agent = self.current.agent if self.current is not None else None
        return self.config.allow_interruptions and (agent.allow_interruptions if agent else True)

    def interrupt(self, *, force: bool = False) -> None:
        for activity in self.activities:
            activity.interrupt(force=force)

    def update_agent(self, agent: Agent) -> None:
        """Hand off to ``agent``. The current agent drains (bounded), runs ``on_exit`` and
        closes; then ``agent`` starts. A pending target that is superseded is closed at once
        (its queued speech reported undelivered; the user turns it held go to ``agent``)."""
        old = self.speech_target()
        new = self._new_activity(agent)
        self.current = new
        if old.state is ActivityState.PENDING:
            for message, reply in old.take_deferred_turns():
                new.on_user_turn(message, reply)
            old.close()
        else:
            old.drain()

    # -- InputListener ----------------------------------------------------------------------
    def on_user_state(self, old: UserState, new: UserState) -> None:
        self.user_state = new
        self.emit("user_state_changed", UserStateChanged(old, new))

    def on_user_speech_started(self) -> None:
        for activity in self.activities:
            speech = activity.current_speech
            if speech is not None and speech.allow_interruptions:
                speech.interrupt()

    def on_transcript(self, text: str, is_final: bool) -> None:
        self.emit("user_input_transcribed", UserInputTranscribed(text, is_final))

    def on_user_turn(self, text: str) -> None:
        """A completed turn is always committed (I6); only a running session replies."""
        if self.life.state is SessionState.CLOSED:
            return
        message = self.add_to_history(ChatMessage("user", text, at_s=self.session_time()))
        activity = self.current
        if activity is None or not self.life.replies_to_turns:
            return
        metrics = TurnMetrics(committed_at=self.clock.now())
        if self.input is not None:
            metrics.speech_ended_at = self.input.speech_ended_at
            metrics.final_at = self.input.final_at

        def reply() -> None:
            if self.life.replies_to_turns and self.llm is not None:
                self.generate_reply(None, None, None).metrics = metrics

        activity.on_user_turn(message, reply)

    # -- closing ----------------------------------------------------------------------------
    def request_close(
        self, reason: CloseReason, error: BaseException | None = None, *, drain: bool = False
    ) -> asyncio.Task[CloseEvent]:
        """Every close entry point: the first fixes reason and error; a forced request
        escalates a drain in progress. Returns the one closing task."""
        if self.close_error is None and self.life.reason is None:
            self.close_error = error
        described = f"{type(error).__name__}: {error}" if error is not None else None
        now = self.clock.now()
        for command in self.life.request_close(
            now, reason, drain=drain, error=described, trailing_transcript=self.mid_utterance
        ):
            # BEGIN_DRAIN or BEGIN_CLOSE: the closing task runs the drain first or not (it
            # reads the state); a BEGIN_CLOSE during its drain wakes it to cut the drain short.
            assert command in (SessionCommand.BEGIN_DRAIN, SessionCommand.BEGIN_CLOSE)
            self.changed.set()
            if self.closing is None:
                self.closing = asyncio.get_running_loop().create_task(
                    self._run_close(self),
                    name=f"session:{self.id}/close",
                    context=self.task_context.copy(),
                )
                self.close_requested.set()
        assert self.closing is not None  # the first request always plans a drain or a close
        return self.closing

    @property
    def mid_utterance(self) -> bool:
        """Whether the user's last words are still to be finalized by the STT."""
        return self.input is not None and self.input.expects_trailing_final

    def undelivered(self) -> list[Undelivered]:
        return [
            Undelivered(h.id, a.name, h.text)
            for a in (*self.ended, *self.activities)
            for h in a.undelivered
        ]

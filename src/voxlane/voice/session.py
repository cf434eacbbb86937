"""AgentSession: the public API (DESIGN §4).

The session's wiring — lifecycle machine, agents, input, close procedure — is a private
:class:`~voxlane.voice.runtime.SessionRuntime`; this class is what users call: start, speak,
interrupt, hand off, close, and read-only state. Every close entry point (``aclose()``,
``shutdown()``, a participant disconnect with ``close_on_disconnect``, a fatal provider
error) joins the one closing task; ``close`` is emitted exactly once.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from typing import Any, TypeVar

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.ledger import current_session_id
from voxlane.chat import ChatMessage
from voxlane.core.close_plan import Budget
from voxlane.core.lifecycle import CloseReason, SessionState
from voxlane.core.turns import UserState
from voxlane.errors import SessionClosedError
from voxlane.providers.llm import LLM
from voxlane.providers.stt import STT
from voxlane.providers.tts import TTS
from voxlane.providers.vad import VAD
from voxlane.room import AudioOutput, Room
from voxlane.voice.agent import Agent
from voxlane.voice.closing import run_close
from voxlane.voice.events import AgentState, CloseEvent, EventEmitter, EventName, Listener
from voxlane.voice.report import Usage, session_report
from voxlane.voice.runtime import RuntimeConfig, SessionRuntime
from voxlane.voice.speech import SpeechHandle
from voxlane.voice.tracing import SessionTracer, trace_session

F = TypeVar("F", bound=Listener)


class AgentSession:
    """Runs agents against a room's audio with the given providers.

    Configuration is keyword-only. ``close_timeout`` bounds every forced close (I1);
    ``drain_timeout`` bounds graceful drains (handoff, ``shutdown(drain=True)``), after
    which they escalate to a forced close (I4). ``participant_timeout`` bounds the wait for
    a participant to join the room: nobody in time closes the session.
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
        participant_timeout: float = 60.0,
        max_tool_steps: int = 5,
        min_endpoint_delay: float = 0.5,
        allow_interruptions: bool = True,
        userdata: Any = None,
        session_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._events = EventEmitter()
        self.id = session_id or f"sess_{uuid.uuid4().hex[:12]}"
        self.userdata = userdata
        context = contextvars.copy_context()
        context.run(current_session_id.set, self.id)
        self._rt = SessionRuntime(
            self,
            emit=self._events.emit,
            run_close=run_close,
            session_id=self.id,
            stt=stt,
            llm=llm,
            tts=tts,
            vad=vad,
            config=RuntimeConfig(
                budget=Budget(close_timeout=close_timeout, drain_timeout=drain_timeout),
                max_tool_steps=max_tool_steps,
                min_endpoint_delay=min_endpoint_delay,
                allow_interruptions=allow_interruptions,
                participant_timeout=participant_timeout,
            ),
            clock=clock or DEFAULT_CLOCK,
            task_context=context,
        )
        self.tracing: SessionTracer | None = None
        """OpenTelemetry spans of this session, when OpenTelemetry is installed."""

    # -- events ---------------------------------------------------------------------------
    def on(self, event: EventName, callback: F | None = None) -> Any:
        """Register ``callback`` for ``event``; usable as ``@session.on("close")``. Listeners
        are plain functions (an ``async def`` is refused); one that raises is logged and,
        for ``close``, listed in the report."""
        return self._events.on(event, callback)

    def off(self, event: EventName, callback: Listener) -> None:
        self._events.off(event, callback)

    # -- read-only state -------------------------------------------------------------------
    @property
    def state(self) -> SessionState:
        return self._rt.life.state

    @property
    def agent_state(self) -> AgentState:
        return self._rt.agent_state

    @property
    def user_state(self) -> UserState:
        return self._rt.user_state

    @property
    def current_agent(self) -> Agent | None:
        return self._rt.current.agent if self._rt.current else None

    @property
    def history(self) -> list[ChatMessage]:
        return list(self._rt.history)

    @property
    def usage(self) -> Usage:
        return self._rt.usage

    @property
    def clock(self) -> Clock:
        return self._rt.clock

    @property
    def stt(self) -> STT | None:
        return self._rt.stt

    @property
    def llm(self) -> LLM | None:
        return self._rt.llm

    @property
    def tts(self) -> TTS | None:
        return self._rt.tts

    @property
    def close_timeout(self) -> float:
        return self._rt.budget.close_timeout

    @property
    def close_event(self) -> CloseEvent | None:
        """The ``close`` event's payload, once the session has closed."""
        return self._rt.close_event

    @property
    def task_context(self) -> contextvars.Context:
        """The context the session's tasks run in (carries the session id for the ledger)."""
        return self._rt.task_context

    @property
    def started_at(self) -> float:
        return self._rt.started_at

    @property
    def ended_at(self) -> float | None:
        return self._rt.ended_at

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
        rt = self._rt
        if rt.life.closing:
            raise SessionClosedError("session is closed")
        rt.life.start(rt.clock.now())
        self.tracing = trace_session(self)
        rt.task_context.run(rt.start, agent, room, close_on_disconnect, audio_output)
        await asyncio.sleep(0)  # let on_enter begin, so start() is a real scheduling point
        rt.life.started(rt.clock.now())

    # -- speaking ---------------------------------------------------------------------------
    def say(
        self,
        text: str,
        *,
        allow_interruptions: bool | None = None,
        add_to_history: bool = True,
    ) -> SpeechHandle:
        """Speak ``text``. Returns the handle at once; ``await`` it to wait for playout.
        Raises ``SessionClosedError`` once the session is closing."""
        return self._rt.say(text, allow_interruptions, add_to_history)

    def generate_reply(
        self,
        *,
        user_input: str | None = None,
        instructions: str | None = None,
        allow_interruptions: bool | None = None,
    ) -> SpeechHandle:
        """Ask the LLM for a reply (running tools as it asks), spoken as it streams."""
        return self._rt.generate_reply(user_input, instructions, allow_interruptions)

    def interrupt(self, *, force: bool = False) -> None:
        """Interrupt current and queued speech (``force`` ignores ``allow_interruptions``)."""
        self._rt.interrupt(force=force)

    def update_agent(self, agent: Agent) -> None:
        """Hand off to ``agent``: the current agent drains (bounded by ``drain_timeout``),
        runs ``on_exit``, then ``agent`` starts with ``on_enter``. Speech requested meanwhile
        goes to the new agent."""
        self._rt.update_agent(agent)

    # -- closing ----------------------------------------------------------------------------
    def shutdown(self, *, drain: bool = True) -> None:
        """Close without waiting: ``drain=True`` lets queued speech finish first (bounded by
        ``drain_timeout``, then forced); ``drain=False`` is a forced close."""
        reason = CloseReason.DRAINED if drain else CloseReason.USER_INITIATED
        self._rt.request_close(reason, drain=drain)

    async def aclose(self) -> CloseEvent:
        """Forced close, bounded by ``close_timeout``. Idempotent; every caller gets the one
        ``CloseEvent``. Being cancelled while waiting does not stop the close."""
        return await asyncio.shield(self._rt.request_close(CloseReason.USER_INITIATED))

    async def wait_closed(self) -> CloseEvent:
        """Wait until the session has closed (however it was asked to)."""
        rt = self._rt
        if rt.close_event is not None:
            return rt.close_event
        await rt.close_requested.wait()
        assert rt.closing is not None
        return await asyncio.shield(rt.closing)

    def report_dict(self) -> dict[str, Any]:
        """The DESIGN §8 session report (after close)."""
        rt = self._rt
        if rt.close_event is None:
            raise SessionClosedError("the session has not closed yet")
        return session_report(
            session_id=self.id,
            started_at=rt.started_at,
            ended_at=rt.ended_at or time.time(),
            teardown=rt.close_event.report,
            history=rt.history,
            usage=rt.usage,
        )

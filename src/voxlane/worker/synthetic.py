"""Synthetic calls: a call source for tests, benchmarks and ``voxlane start --synthetic N``.

Worker side, :class:`SyntheticCallSource` offers calls like a phone network would: up to
``concurrency`` at a time, redialling when one ends (until ``total`` calls were offered),
and hangs each accepted call up after its ``hangup_after`` seconds by telling the worker
(``remote_hangup``, what a SIP BYE will do). Job side, :func:`build_synthetic_call` makes
the call's room: an in-process ``LocalRoom`` with a ``ScriptedCaller`` that says its turns,
and the testing kit's fake providers, the LLM scripted by the call's spec.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from voxlane.aio.clock import Clock
from voxlane.core.supervision import JobOutcome
from voxlane.errors import VoxlaneError
from voxlane.room import DisconnectReason
from voxlane.testing.caller import ScriptedCaller
from voxlane.testing.fakes import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD
from voxlane.transports.local import LocalRoom
from voxlane.voice.events import AgentState, AgentStateChanged
from voxlane.voice.session import AgentSession
from voxlane.worker.source import Call, CallSink

DEFAULT_TURNS = ("I would like to book a cleaning on tuesday", "thanks that is all")
DEFAULT_LLM: tuple[dict[str, Any], ...] = (
    {"text": "Thank you for calling. How can I help you today?"},
    {"text": "You are booked for a cleaning on Tuesday at ten."},
    {"text": "You are welcome, goodbye!"},
)
TURN_TIMEOUT = 10.0
_ids = itertools.count(1)


def _next_id() -> str:
    return f"call_{next(_ids):05d}"


class ScriptError(VoxlaneError):
    """A call script that is not of the documented shape; the message (one line) says
    where: ``"script.json: llm[1].tool_calls[0]: expected [name, {args}]"``."""


_SCRIPT_KEYS = {"turns", "llm", "metadata"}
_REPLY_KEYS = {"text", "tool_calls", "delay"}


def _known_keys(obj: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(obj) - known
    if unknown:
        raise ScriptError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(known))})"
        )


def _check_reply(reply: Any, where: str) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise ScriptError(f'{where}: expected an object like {{"text": "..."}}')
    _known_keys(reply, _REPLY_KEYS, where)
    if not isinstance(reply.get("text", ""), str):
        raise ScriptError(f"{where}.text: expected a string")
    delay = reply.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay < 3600:
        raise ScriptError(f"{where}.delay: expected seconds, 0 to 3600")
    calls = reply.get("tool_calls", [])
    if not isinstance(calls, list):
        raise ScriptError(f"{where}.tool_calls: expected a list of [name, {{args}}]")
    for i, call in enumerate(calls):
        ok = (
            isinstance(call, list)
            and len(call) == 2
            and isinstance(call[0], str)
            and isinstance(call[1], dict)
        )
        if not ok:
            raise ScriptError(f"{where}.tool_calls[{i}]: expected [name, {{args}}]")
    return dict(reply)


def template_from_json(obj: Any, source: str = "script") -> SyntheticCall:
    """A call template from a parsed call script: ``{"turns": [str], "llm": [{"text": str,
    "tool_calls": [[name, {args}]], "delay": s}], "metadata": {}}`` (each key optional).
    Raises :class:`ScriptError` (naming ``source`` and the place) when it is not of that
    shape."""
    if not isinstance(obj, dict):
        raise ScriptError(f"{source}: expected a JSON object with turns, llm, metadata")
    _known_keys(obj, _SCRIPT_KEYS, source)
    turns = obj.get("turns", list(DEFAULT_TURNS))
    if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
        raise ScriptError(f"{source}: turns: expected a list of strings")
    llm = obj.get("llm", list(DEFAULT_LLM))
    if not isinstance(llm, list):
        raise ScriptError(f"{source}: llm: expected a list of replies")
    replies = tuple(_check_reply(r, f"{source}: llm[{i}]") for i, r in enumerate(llm))
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ScriptError(f"{source}: metadata: expected an object")
    return SyntheticCall(turns=tuple(turns), llm=replies, metadata=dict(metadata))


@dataclass(frozen=True, kw_only=True)
class SyntheticCall:
    """One synthetic call (implements ``Call``). ``llm``: scripted LLM rounds, each
    ``{"text": str, "tool_calls": [[name, {args}]]}``; ``metadata`` reaches
    ``JobContext.metadata`` in the job."""

    call_id: str = field(default_factory=_next_id)
    hangup_after: float = 3.0
    turns: tuple[str, ...] = DEFAULT_TURNS
    llm: tuple[dict[str, Any], ...] = DEFAULT_LLM
    metadata: dict[str, Any] = field(default_factory=dict)
    close_timeout: float = 4.0

    def job_spec(self) -> dict[str, Any]:
        return {
            "kind": "synthetic",
            "call_id": self.call_id,
            "turns": list(self.turns),
            "llm": [dict(r) for r in self.llm],
            "metadata": dict(self.metadata),
            "close_timeout": self.close_timeout,
        }

    def job_event(self, name: str, data: dict[str, Any]) -> None:
        """Synthetic calls expect no events from their job."""

    def report_extra(self, outcome: JobOutcome, report: dict[str, Any]) -> dict[str, Any]:
        """Nothing: the job's report says it all."""
        return {}


class SyntheticCallSource:
    """Offers synthetic calls to a ``CallSink`` (implements ``CallSource``).

    ``calls``: offer exactly these, at most ``concurrency`` at a time (None: all at once),
    each after a pause of ``gap`` seconds, then return once each has ended or was rejected.
    Otherwise: keep ``concurrency`` calls up, each lasting ``call_seconds``, until ``total``
    calls were offered (None: until cancelled), each like ``template`` (turns, LLM script,
    metadata); a rejected offer is retried after ``redial_interval``.
    """

    def __init__(
        self,
        *,
        calls: Sequence[SyntheticCall] | None = None,
        concurrency: int | None = None,
        total: int | None = None,
        gap: float = 0.0,
        template: SyntheticCall | None = None,
        call_seconds: float = 3.0,
        redial_interval: float = 0.2,
    ) -> None:
        self._calls = list(calls) if calls is not None else None
        self.concurrency = concurrency
        self.gap = gap
        self.template = template or SyntheticCall()
        self.total = total
        self.call_seconds = call_seconds
        self.redial_interval = redial_interval
        self.offered: list[str] = []
        self.rejected: list[tuple[str, str]] = []
        self.ended: dict[str, JobOutcome] = {}
        self._active: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wake = asyncio.Event()

    # -- CallSource -------------------------------------------------------------------------
    async def run(self, sink: CallSink) -> None:
        limit = self.concurrency
        if self._calls is not None:
            for call in self._calls:
                while limit is not None and len(self._active) >= limit:
                    await self._wait_wake(1.0)
                if self.gap:
                    await asyncio.sleep(self.gap)
                self._offer(sink, call)
            while self._active:
                await self._wait_wake(1.0)
            return
        limit = limit or 1
        while self.total is None or len(self.offered) < self.total:
            if len(self._active) >= limit:
                await self._wait_wake(1.0)
                continue
            call = replace(self.template, call_id=_next_id(), hangup_after=self.call_seconds)
            if not self._offer(sink, call):
                await asyncio.sleep(self.redial_interval)  # busy: the network redials later
        while self._active:
            await self._wait_wake(1.0)

    def reject(self, call: Call, reason: str) -> None:
        self.rejected.append((call.call_id, reason))

    def call_ended(self, call: Call, outcome: JobOutcome, report: dict[str, Any]) -> None:
        self.ended[call.call_id] = outcome
        self._active.discard(call.call_id)
        timer = self._timers.pop(call.call_id, None)
        if timer is not None:
            timer.cancel()
        self._wake.set()

    async def aclose(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    # -- internals --------------------------------------------------------------------------
    def _offer(self, sink: CallSink, call: SyntheticCall) -> bool:
        self.offered.append(call.call_id)
        if not sink.offer(call):
            return False
        self._active.add(call.call_id)
        loop = asyncio.get_running_loop()
        self._timers[call.call_id] = loop.call_later(
            call.hangup_after, sink.remote_hangup, call.call_id, DisconnectReason.HANGUP.value
        )
        return True

    async def _wait_wake(self, timeout: float) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()
        self._wake.clear()


# -- job side -------------------------------------------------------------------------------
@dataclass
class SyntheticJob:
    """The room and providers of one synthetic call inside the job process."""

    room: LocalRoom
    caller: ScriptedCaller
    session: AgentSession
    turns: list[str]

    def ready_event(self) -> tuple[str, dict[str, Any]] | None:
        return None

    async def aclose(self, deadline: float) -> None:
        """Nothing of its own to release (the room is in-process)."""

    def report_extra(self) -> dict[str, Any]:
        return {}

    def hang_up(self, reason: str) -> None:
        """The caller leaves (the worker told us: remote hangup)."""
        self.caller.hang_up(DisconnectReason.parse(reason))

    async def run(self) -> None:
        """Say each turn once the agent listens; then keep the line open until hung up."""
        idle = asyncio.Event()

        def track(ev: AgentStateChanged) -> None:
            if ev.new_state is AgentState.LISTENING:
                idle.set()
            else:
                idle.clear()

        self.session.on("agent_state_changed", track)
        for text in self.turns:
            await self.caller.silence_until(idle, TURN_TIMEOUT)
            await self.caller.silence(0.3)
            await self.caller.say(text)
            idle.clear()
        never = asyncio.Event()
        while self.caller.participant.connected:
            await self.caller.silence_until(never, 60.0)


def fake_replies(script: Sequence[dict[str, Any]]) -> list[FakeReply]:
    """A spec's LLM script as ``FakeLLM`` replies: each ``{"text": str, "tool_calls":
    [[name, {args}]], "delay": seconds before the reply starts}`` (each key optional)."""
    return [
        FakeReply(
            text=str(r.get("text", "")),
            tool_calls=[(str(n), dict(a)) for n, a in r.get("tool_calls", [])],
            delay=float(r.get("delay", 0.0)),
        )
        for r in script
    ]


def build_synthetic_call(spec: dict[str, Any], clock: Clock, session_id: str) -> SyntheticJob:
    """The job side of a synthetic call's spec (see ``SyntheticCall.job_spec``)."""
    room = LocalRoom(str(spec.get("call_id", "synthetic")), clock=clock)
    stt = FakeSTT()
    replies = fake_replies(spec.get("llm", []))
    session = AgentSession(
        stt=stt,
        vad=FakeVAD(),
        llm=FakeLLM(replies),
        tts=FakeTTS(),
        close_timeout=float(spec.get("close_timeout", 4.0)),
        session_id=session_id,
        clock=clock,
    )
    caller = ScriptedCaller(room, stt=stt)
    return SyntheticJob(room, caller, session, [str(t) for t in spec.get("turns", [])])

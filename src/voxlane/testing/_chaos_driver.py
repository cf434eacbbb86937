"""Runs one chaos scenario against the public API and checks it (see
:mod:`voxlane.testing.chaos` for the checks; :mod:`voxlane.testing.chaos_plan` for plans).

Only public surface is used: the ``AgentSession`` constructor and methods, events, the
agent hooks and a function tool, the fakes and adversarial helpers, a ``ScriptedCaller``
speaking into a ``LocalRoom``, and the resource ledger's counts. User turns come from the
caller's audio through FakeVAD/FakeSTT, never from internal wiring.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from voxlane.aio.ledger import LEDGER
from voxlane.core.states import CloseReason, SessionState
from voxlane.errors import ProviderAuthError, SessionClosedError
from voxlane.testing._chaos_agent import (
    FRAME_S,
    ChaosAgent,
    Failure,
    ScenarioResult,
    build_providers,
)
from voxlane.testing.caller import ScriptedCaller
from voxlane.testing.chaos_plan import Action, ScenarioPlan
from voxlane.transports.local import LocalRoom
from voxlane.voice.agent import Agent
from voxlane.voice.events import CloseEvent, ErrorEvent, SpeechCreated, UserInputTranscribed
from voxlane.voice.session import AgentSession
from voxlane.voice.speech import SpeechHandle

SLACK_S = 0.1
"""Scheduling slack allowed on top of every close bound."""
ZERO_TURNS = 20
"""Zero-length loop turns given to cancelled tasks to unwind before the live-task check."""

_REASON = {
    "hangup": CloseReason.PARTICIPANT_DISCONNECTED,
    "aclose": CloseReason.USER_INITIATED,
    "shutdown_force": CloseReason.USER_INITIATED,
    "shutdown_drain": CloseReason.DRAINED,
    "fatal_stt": CloseReason.ERROR,
    "fatal_error": CloseReason.ERROR,
    "final_aclose": CloseReason.USER_INITIATED,
    "rescue_aclose": CloseReason.USER_INITIATED,
    "hangup_before_start": CloseReason.PARTICIPANT_DISCONNECTED,
}


class ScenarioRun:
    """One scenario: drives the session through its plan (:meth:`drive`, on a running loop),
    records what happened, checks it; failures land in :attr:`result`."""

    def __init__(self, plan: ScenarioPlan, verbose: bool) -> None:
        self.plan = plan
        self.verbose = verbose
        self.result = ScenarioResult(plan.seed, plan)
        self.t0 = 0.0
        self.driver: set[asyncio.Task[Any]] = set()
        self.requests: list[tuple[float, str, bool]] = []  # (time, entry, forced)
        self.closes: list[tuple[float, CloseEvent]] = []
        self.closed = asyncio.Event()
        self.waiters: list[tuple[str, object]] = []
        self.waiter_tasks: list[tuple[str, asyncio.Task[Any]]] = []
        self.finals: list[tuple[float, str, str]] = []  # (time, text, session state)
        self.handles: list[tuple[SpeechHandle, Agent | None]] = []
        self.at_close: dict[str, Any] = {}
        self.start_called: float | None = None
        self.hangup_before_start = False
        self.next_action = 0
        self.agents_made = 0
        self.drain_during_handoff = False
        # Built outside the loop: nothing here binds to a loop before it is first awaited.
        self.stt, tts, llm, vad = build_providers(plan)
        self.room = LocalRoom()
        self.caller = ScriptedCaller(self.room, stt=self.stt, frame_duration=FRAME_S)
        self.session = AgentSession(
            stt=self.stt,
            tts=tts,
            llm=llm,
            vad=vad,
            close_timeout=plan.close_timeout,
            drain_timeout=plan.drain_timeout,
            allow_interruptions=plan.allow_interruptions,
            session_id=f"chaos-{plan.seed}",
        )
        self._subscribe(self.session)

    # -- recording ---------------------------------------------------------------------------
    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.t0

    def note(self, text: str) -> None:
        if self.verbose:
            self.result.trace.append(f"{self.now():8.3f}  {text}")

    def fail(self, check: str, details: str) -> None:
        self.note(f"FAILED {check}: {details}")
        self.result.failures.append(Failure(self.plan.seed, check, details, self.plan.describe()))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"chaos-driver/{name}")
        self.driver.add(task)
        return task

    def make_agent(self, index: int) -> ChaosAgent:
        return ChaosAgent(self.plan.agents[index], self)

    def request(self, entry: str, *, forced: bool) -> None:
        """A close request is being made now (recorded before the call makes it)."""
        if self.closes:
            return
        if self.start_called is None and entry == "hangup":
            self.hangup_before_start = True  # counted from start(): the session did not exist
            return
        self.requests.append((self.now(), entry, forced))
        self.note(f"close request: {entry}")

    def deadline(self) -> float | None:
        ct, dt = self.plan.close_timeout, self.plan.drain_timeout
        bounds = [t + (ct if forced else dt + ct) for t, _, forced in self.requests]
        return min(bounds) + SLACK_S if bounds else None

    # -- listeners ---------------------------------------------------------------------------
    def _subscribe(self, session: AgentSession) -> None:
        def on_close(ev: CloseEvent) -> None:
            self.closes.append((self.now(), ev))
            self.note(f"close event #{len(self.closes)}: {ev.reason.value}")
            if len(self.closes) == 1:
                self.at_close = {
                    "open": [f"{e.kind}:{e.label}" for e in LEDGER.open_entries(session.id)],
                    "unresolved": [
                        f"speech #{i} ({h.state.value})"
                        for i, (h, _) in enumerate(self.handles, 1)
                        if not h.done()
                    ],
                    "agent": session.current_agent,
                }
                self.closed.set()

        def on_transcript(ev: UserInputTranscribed) -> None:
            if ev.is_final and ev.transcript.strip():
                self.finals.append((self.now(), ev.transcript.strip(), session.state.value))
                late = " AFTER CLOSE" * bool(self.closes)
                self.note(f"final transcript {ev.transcript!r}{late}")

        def on_speech(ev: SpeechCreated) -> None:
            self.handles.append((ev.speech, session.current_agent))
            n = len(self.handles)
            self.note(
                f"speech_created #{n} {ev.speech.id} ({ev.source}) for {session.current_agent}"
            )

        def on_error(ev: ErrorEvent) -> None:
            self.note(f"error event from {ev.source}: {ev.error!r} recoverable={ev.recoverable}")
            if not ev.recoverable:
                self.request("fatal_error", forced=True)

        session.on("close", on_close)
        session.on("user_input_transcribed", on_transcript)
        session.on("speech_created", on_speech)
        session.on("error", on_error)
        if self.verbose:
            for name in (
                "agent_state_changed",
                "user_state_changed",
                "conversation_item_added",
                "function_tools_executed",
            ):
                session.on(name, lambda ev, n=name: self.note(f"{n}: {ev}"))

    # -- driving -----------------------------------------------------------------------------
    async def _sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _wait(self, event: asyncio.Event, until: float) -> bool:
        if not event.is_set():
            waiter = self.spawn(event.wait(), "wait")
            await asyncio.wait({waiter}, timeout=max(0.0, until - self.now()))
            waiter.cancel()
        return event.is_set()

    def _spawn_waiter(self, name: str) -> None:
        self.waiter_tasks.append((name, self.spawn(self._waiter(name), name)))

    async def _waiter(self, name: str) -> None:
        session = self.session
        try:
            ev = await (session.aclose() if name != "wait_closed" else session.wait_closed())
        except Exception as exc:
            self.fail("api_error", f"{name}() raised {exc!r}")
            return
        self.waiters.append((name, ev))

    def act(self, session: AgentSession, a: Action) -> None:
        state = session.state
        current = session.current_agent
        pending = isinstance(current, ChaosAgent) and not current.entered
        self.note(
            f"action {a.describe().strip()} (state {state.value}"
            + (f", handoff to {current} pending)" if pending else ")")
        )
        if a.kind == "shutdown_drain" and pending and state is SessionState.RUNNING:
            self.drain_during_handoff = True
        try:
            if a.kind == "say":
                session.say(a.text)
            elif a.kind == "generate_reply":
                session.generate_reply(user_input=a.text or None)
            elif a.kind == "interrupt":
                session.interrupt(force=a.force)
            elif a.kind == "update_agent":
                session.update_agent(self.make_agent(a.agent))
            elif a.kind in ("shutdown_drain", "shutdown_force"):
                self.request(a.kind, forced=a.kind == "shutdown_force")
                session.shutdown(drain=a.kind == "shutdown_drain")
            elif a.kind in ("aclose", "wait_closed"):
                if a.kind == "aclose":
                    self.request("aclose", forced=True)
                self._spawn_waiter(a.kind)
            elif a.kind == "fatal_stt":
                streams = self.stt.streams
                if streams and not streams[-1].closed and not streams[-1].input_ended:
                    self.request("fatal_stt", forced=True)
                    streams[-1].fail(ProviderAuthError("chaos: key revoked", provider="fake-stt"))
                else:
                    self.note("fatal_stt: no live STT stream, nothing to fail")
        except SessionClosedError as exc:
            if state in (SessionState.NEW, SessionState.STARTING, SessionState.RUNNING):
                self.fail(
                    "api_error",
                    f"{a.describe().strip()} raised {exc!r} in state "
                    f"{state.value} (session not closing)",
                )
            else:
                self.note(f"  -> SessionClosedError (state {state.value}): ok")
        except Exception as exc:
            self.fail("api_error", f"{a.describe().strip()} raised {exc!r} in state {state.value}")

    async def _control(self, session: AgentSession) -> None:
        for i, a in enumerate(self.plan.actions):
            await self._sleep_until(a.at)
            self.next_action = i + 1
            self.act(session, a)

    def hang_up(self) -> None:
        if self.plan.close_on_disconnect:
            self.request("hangup", forced=True)
        self.note("caller hangs up")
        self.caller.hang_up()

    async def _caller(self) -> None:
        for step in self.plan.caller:
            await self._sleep_until(step.at)
            if not self.caller.participant.connected:
                return
            if step.kind == "say":
                self.note(f"caller starts saying {step.text!r}")
                await self.caller.say(step.text, trailing_silence=step.trailing_silence)
            elif step.kind == "hangup_mid":
                self.note(f"caller starts saying {step.text!r} (will hang up)")
                await self.caller.say_partially(step.text, step.fraction)
                self.hang_up()
            else:
                self.hang_up()

    async def _start(self, session: AgentSession, room: LocalRoom) -> None:
        mode = self.plan.start_mode
        agent = self.make_agent(self.plan.first_agent)
        await self._sleep_until(self.plan.start_at)
        if mode == "after_hangup":
            self.hang_up()
        elif mode == "closed_before":
            self.request("aclose", forced=True)
            await self._waiter("aclose")
        self.start_called = self.now()
        if self.hangup_before_start and self.plan.close_on_disconnect:
            self.requests.append((self.now(), "hangup_before_start", True))
        requested_before = bool(self.requests)

        async def start() -> None:
            try:
                await session.start(
                    agent, room=room, close_on_disconnect=self.plan.close_on_disconnect
                )
            except SessionClosedError as exc:
                if not self.requests:
                    self.fail("api_error", f"start() raised {exc!r} with no close requested")
                else:
                    self.note(f"start() raised {exc!r}: ok, close requested")
                return
            except Exception as exc:
                self.fail("api_error", f"start() raised {exc!r}")
                return
            if mode == "closed_before":
                self.fail("api_error", "start() after close did not raise SessionClosedError")

        starting = self.spawn(start(), "start")
        if mode == "concurrent_aclose":
            self.request("aclose", forced=True)
            self._spawn_waiter("aclose")
        elif mode == "concurrent_drain":
            self.request("shutdown_drain", forced=False)
            session.shutdown(drain=True)
        elif mode == "concurrent_hangup":
            await asyncio.sleep(0)  # start() has subscribed, and is in its first await
            self.hang_up()
        await asyncio.wait({starting}, timeout=self.plan.end_at)
        if not starting.done():
            self.fail(
                "api_error",
                f"start() did not return within {self.plan.end_at:.1f}s"
                + (" (close requested before it)" if requested_before else ""),
            )

    async def drive(self) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = loop.time()
        me = asyncio.current_task()
        assert me is not None
        self.driver.add(me)
        plan, session = self.plan, self.session
        caller = self.spawn(self._caller(), "caller") if plan.start_mode != "after_hangup" else None
        await self._start(session, self.room)
        control = self.spawn(self._control(session), "timeline")
        await self._wait(self.closed, plan.end_at)
        if not self.closed.is_set() and not self.requests:
            self.request("final_aclose", forced=True)
            self._spawn_waiter("aclose")
        bound = self.deadline()
        assert bound is not None
        if not await self._wait(self.closed, bound + 1.0):
            first = min(self.requests)
            self.fail(
                "close_bounded",
                f"no close event {bound + 1.0 - first[0]:.2f}s after the "
                f"first request ({first[1]} at {first[0]:.3f}); rescuing with aclose()",
            )
            self.request("rescue_aclose", forced=True)
            self._spawn_waiter("aclose")
            if not await self._wait(self.closed, self.now() + plan.close_timeout + 1.0):
                self.fail("close_bounded", "never closed, even after a rescue aclose()")
                return
        await self._after_close(session)
        control.cancel()
        if caller is not None:
            caller.cancel()

    async def _after_close(self, session: AgentSession) -> None:
        t_close, ev = self.closes[0]
        report = ev.report
        res = self.result
        res.reason = ev.reason.value
        res.report = report.summary()
        first = min(self.requests) if self.requests else None
        res.first_request = first[1] if first else None
        bound = self.deadline()
        if bound is not None:
            res.over_budget_s = t_close - bound
            if t_close > bound + 1e-9 and not any(f.check == "close_bounded" for f in res.failures):
                self.fail(
                    "close_bounded",
                    f"close at {t_close:.3f} is {t_close - bound:.3f}s past "
                    f"its bound {bound:.3f} (requests: {self._requests_text()})",
                )
        # Live tasks: give cancelled tasks some zero-length turns to unwind first.
        abandoned = Counter(a.name for a in report.abandoned)
        unreported: Counter[str] = Counter()
        for _ in range(ZERO_TURNS):
            live = [t for t in asyncio.all_tasks() if not t.done() and t not in self.driver]
            unreported = Counter(t.get_name() for t in live) - abandoned
            if not unreported:
                break
            await asyncio.sleep(0)
        if unreported:
            self.fail(
                "live_tasks",
                f"alive after close, not in report.abandoned: "
                f"{sorted(unreported.elements())}; abandoned: {sorted(abandoned)}",
            )
        if self.at_close["open"] or report.open_connections_after:
            self.fail(
                "connections",
                f"open at the close event: {self.at_close['open']}; "
                f"report.open_connections_after={report.open_connections_after}",
            )
        users = [m.text for m in ev.history if m.role == "user"]
        for t, text, state in self.finals:
            if not any(text in u for u in users):
                when = "after the close event" if t > t_close else f"at {t:.3f}"
                self.fail(
                    "transcripts",
                    f"final transcript {text!r} ({when}, session {state}; "
                    f"requests {self._requests_text()}) not in the history's user "
                    f"messages {users}",
                )
        if self.at_close["unresolved"]:
            self.fail("handles_resolved", f"not done at close: {self.at_close['unresolved']}")
        requested = {_REASON[e] for t, e, _ in self.requests if t <= t_close}
        if ev.reason not in requested:
            self.fail(
                "close_reason",
                f"reason {ev.reason.value}, requested: {sorted(r.value for r in requested)}",
            )
        if self.plan.mode == "graceful":
            self._check_graceful(ev, t_close)
        # The rest of the timeline at once (API calls after close), then probes.
        for a in self.plan.actions[self.next_action :]:
            self.act(session, a)
        for kind in (
            "say",
            "update_agent",
            "generate_reply",
            "interrupt",
            "shutdown_drain",
            "shutdown_force",
            "aclose",
            "wait_closed",
        ):
            self.act(session, Action(self.now(), kind, "after close", 0))
        for _ in range(ZERO_TURNS):
            await asyncio.sleep(0)
        self._final_checks(session, ev)

    def _check_graceful(self, ev: CloseEvent, t_close: float) -> None:
        if any(forced for t, _, forced in self.requests if t <= t_close):
            return  # a forced request (fatal error) made it a forced close
        problems = []
        if ev.reason is not CloseReason.DRAINED:
            problems.append(f"reason {ev.reason.value}")
        if ev.report.escalations or ev.report.abandoned:
            problems.append(
                f"escalations {ev.report.escalations}, abandoned "
                f"{[a.name for a in ev.report.abandoned]}"
            )
        final_agent = self.at_close["agent"]
        for i, (handle, agent) in enumerate(self.handles, 1):
            dropped = isinstance(agent, ChaosAgent) and not agent.entered
            if handle.interrupted and not (dropped and agent is not final_agent):
                problems.append(f"speech #{i} of {agent} interrupted")
        if problems:
            when = " (requested while a handoff was pending)" * self.drain_during_handoff
            self.fail(
                "graceful_drain",
                f"drain{when} with all work bounded by "
                f"{self.plan.work_bound_s}s < drain_timeout {self.plan.drain_timeout}s: "
                + "; ".join(problems),
            )

    def _final_checks(self, session: AgentSession, ev: CloseEvent) -> None:
        if len(self.closes) != 1:
            self.fail("close_once", f"close emitted {len(self.closes)} times")
        stuck = [name for name, task in self.waiter_tasks if not task.done()]
        if stuck:
            self.fail("same_event", f"{stuck} still waiting after the close event")
        others = [name for name, got in self.waiters if got is not ev]
        if others or session.close_event is not ev:
            who = others or ["session.close_event"]
            self.fail("same_event", f"a different CloseEvent went to {who}")
        if session.state is not SessionState.CLOSED:
            self.fail("state", f"state {session.state.value} after close")
        still = [f"{e.kind}:{e.label}" for e in LEDGER.open_entries(session.id)]
        if still and not self.at_close["open"]:
            self.fail("connections", f"open after the close event: {still}")

    def _requests_text(self) -> str:
        return ", ".join(f"{e}@{t:.3f}{'' if f else '(drain)'}" for t, e, f in self.requests)

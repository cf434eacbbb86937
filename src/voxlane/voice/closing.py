"""The one closing task of a session (DESIGN §2, I1-I7).

Every close entry point joins the task :func:`run_close` runs. It never waits without a
deadline: a drain is bounded by the session's drain plan, everything after by its close plan
(both from the one ``Budget``). Teardown runs in ``finally`` whatever happened before, a
resource leaves its stack only once released, and whatever is still registered at the end is
hard-released (aborted). ``close`` is emitted exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from voxlane.aio.closing import Outcome, StepReport, abort_resource, bounded_aclose
from voxlane.aio.ledger import LEDGER
from voxlane.aio.tasks import abandon, wait_event
from voxlane.chat import ChatMessage
from voxlane.core.close_plan import ClosePlan
from voxlane.core.lifecycle import ActivityState, SessionState
from voxlane.voice.events import CloseEvent
from voxlane.voice.report import TeardownReport

if TYPE_CHECKING:
    from voxlane.voice.runtime import SessionRuntime

log = logging.getLogger("voxlane.session")


async def run_close(rt: SessionRuntime) -> CloseEvent:
    clock = rt.clock
    started = clock.now()
    life = rt.life
    assert life.reason is not None
    report = TeardownReport(life.reason, error=life.error)
    try:
        if life.state is SessionState.DRAINING:
            drained = await _drain(rt)
            if life.state is SessionState.DRAINING:
                trailing = rt.mid_utterance
                if drained:
                    life.drained(clock.now(), trailing_transcript=trailing)
                else:  # the deadline passed (a timer may wake a hair early: poll at it)
                    assert life.drain_plan is not None
                    at = max(clock.now(), life.drain_plan.deadline)
                    life.poll(at, trailing_transcript=trailing)
            if life.state is SessionState.DRAINING:  # pragma: no cover - defensive
                life.request_close(clock.now(), life.reason, drain=False)
        plan = life.close_plan
        assert plan is not None
        await _close_forced(rt, plan, report)
    except BaseException as exc:  # an error here must never skip the close event
        log.exception("session %s: error while closing", rt.id)
        report.error = report.error or f"close failed: {exc!r}"
        if not isinstance(exc, Exception):
            raise
    finally:
        event = _finish(rt, report, started)
    return event


async def _drain(rt: SessionRuntime) -> bool:
    """Graceful part of ``shutdown(drain=True)``: a pending handoff completes (the new agent
    starts and plays its queued speech), then the current agent drains and closes. Returns
    True once every agent is closed; False at the deadline or on a forced request."""
    plan = rt.life.drain_plan
    assert plan is not None
    clock = rt.clock
    while rt.life.state is SessionState.DRAINING and not plan.expired(clock.now()):
        current = rt.current
        if current is None or (current.state is ActivityState.CLOSED and not rt.activities):
            return True
        rt.changed.clear()
        if current.state is not ActivityState.PENDING and rt.activities == [current]:
            current.drain(plan.deadline, purpose="drain")
        if not await wait_event(rt.changed, plan.deadline, clock.now()):
            return False  # the deadline passed
    return False


def _failed(report: TeardownReport, phase: str, exc: Exception) -> None:
    """A close phase raised (a provider's sync call, a bug): record it and go on."""
    log.warning("close phase %s failed: %r", phase, exc)
    report.error = report.error or f"{phase} failed: {type(exc).__name__}: {exc}"
    report.escalations.append(f"{phase}: {type(exc).__name__}: {exc}")


async def _close_forced(rt: SessionRuntime, plan: ClosePlan, report: TeardownReport) -> None:
    """Interrupt, settle, teardown — each phase isolated: one that raises is recorded and
    the next still runs (I2)."""
    clock = rt.clock
    output_steps = 1 if rt.audio_output is not None else 0
    activities = list(rt.activities)
    # 1. interrupt: no new input, no new speech; every agent told to end on this plan.
    try:
        if rt.unsubscribe is not None:
            rt.unsubscribe()
        if rt.link_task is not None:
            rt.link_task.cancel()
        if rt.input is not None:
            rt.input.detach()
        reserve = len(rt.streams) + output_steps
        for activity in activities:
            activity.close(plan, reserve_steps=reserve)
    except Exception as exc:
        _failed(report, "interrupt", exc)

    # 2. settle: a trailing transcript and the session's own tasks, while every agent
    #    settles in its end task (all bounded by the plan's settle deadline).
    t = clock.now()
    try:
        if rt.input is not None:
            text = await rt.input.finish(plan.settle_deadline)
            if text:
                rt.add_to_history(ChatMessage("user", text, at_s=rt.session_time()))
    except Exception as exc:
        _failed(report, "settle input", exc)
    report.abandoned.extend(
        await rt.owner.shutdown(plan.settle_deadline, recancel_at=plan.cancel_deadline)
    )
    settled = clock.now()
    # Each agent settles (by the settle deadline) and then releases its streams, newest
    # first, by its step deadlines, in its end task: one wait covers both.
    ends = {task for a in activities if (task := a.end_task()) is not None and not task.done()}
    if ends:
        await asyncio.wait(ends, timeout=max(0.0, plan.teardown_deadline - clock.now()))
    settled = max([settled, *(a.settled_at for a in activities if a.settled_at is not None)])
    report.abandoned.extend(a for act in activities for a in act.settle_abandoned)
    outcome: Outcome = "timeout" if report.abandoned else "ok"
    report.steps.append(StepReport("settle", (settled - t) * 1000, outcome))
    if report.abandoned:
        report.escalations.append(f"settle: abandoned {len(report.abandoned)} task(s)")

    # 3. teardown: the agents' stream steps (above), then the input's streams, then the
    #    transport output.
    for activity in rt.ended_in_close:  # their abandoned tasks are merged in _finish
        for step in activity.steps:
            report.add_step(step, abandoned=False)
    try:
        for step in await rt.streams.release(
            lambda now, left: plan.step_deadline(now, left + output_steps),
            clock=clock,
            abandoned=report.abandoned,
        ):
            report.add_step(step)
    finally:
        if rt.audio_output is not None:
            step = await bounded_aclose(
                "audio_output",
                rt.audio_output,
                plan.teardown_deadline,
                clock=clock,
                abandoned=report.abandoned,
            )
            report.add_step(step)
            rt.audio_output_closed = True


def _finish(rt: SessionRuntime, report: TeardownReport, started: float) -> CloseEvent:
    """Safety net, report and event. Never blocks."""
    clock = rt.clock
    for activity in list(rt.activities):  # not CLOSED by the teardown deadline
        activity.abort()
        end = activity.end_task()
        if end is not None and not end.done():
            report.abandoned.extend(abandon([end]))
        report.escalations.append(f"{activity.name}: not closed in time, streams aborted")
    rt.streams.abort_all()
    if rt.audio_output is not None and not rt.audio_output_closed:
        abort_resource(rt.audio_output)
        report.escalations.append("audio_output: aborted (teardown did not reach it)")
    live = rt.owner.live  # the session's own tasks, if the settle never shut them down
    for task in live:
        task.cancel()
    report.abandoned.extend(abandon(live))
    reported = {id(task) for task in report.abandoned}
    for activity in (*rt.ended, *rt.activities):
        report.escalations.extend(activity.life.escalations)
        report.abandoned.extend(t for t in activity.abandoned if id(t) not in reported)
        reported.update(id(t) for t in activity.abandoned)
    report.escalations[:0] = rt.life.escalations
    report.errors = list(rt.errors)
    report.undelivered = rt.undelivered()
    report.duration_ms = (clock.now() - started) * 1000
    report.open_connections_after = LEDGER.count_open(rt.id)
    if rt.life.state is SessionState.CLOSING:
        rt.life.closed(clock.now())
    event = CloseEvent(report.reason, rt.close_error, list(rt.history), report)
    rt.close_event = event
    rt.ended_at = time.time()
    report.listener_errors = [repr(e) for e in rt.emit("close", event)]
    return event

"""``JobContext``: what user code in a job process sees of its job (room, id, shutdown hooks).

The agent file's ``create_agent`` may take the context as its one argument; code running in
the job can also reach it with :func:`current_job_context`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import cancel_and_wait
from voxlane.room import Room

ShutdownCallback = Callable[[], Awaitable[None]]

_current: ContextVar[JobContext | None] = ContextVar("voxlane_job_context", default=None)


def current_job_context() -> JobContext:
    """The job this code runs in. Raises ``LookupError`` outside a job process."""
    ctx = _current.get()
    if ctx is None:
        raise LookupError("not running in a voxlane job")
    return ctx


@dataclass(frozen=True)
class CallbackReport:
    name: str
    duration_ms: float
    outcome: str  # "ok" | "error" | "timeout"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "duration_ms": round(self.duration_ms, 3),
            "outcome": self.outcome,
            "error": self.error,
        }


class JobContext:
    """One job: its id, its room, the call's metadata and the shutdown callbacks."""

    def __init__(
        self,
        job_id: str,
        room: Room,
        *,
        metadata: dict[str, Any] | None = None,
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        self.job_id = job_id
        self.room = room
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._clock = clock
        self._callbacks: list[ShutdownCallback] = []
        self.started_at = time.time()

    def add_shutdown_callback(self, callback: ShutdownCallback) -> None:
        """Run ``callback()`` after the session closed, before the job reports and exits.

        Callbacks run concurrently, bounded together by the job's shutdown timeout: one that
        does not return in time is cancelled, then abandoned, and reported as ``timeout``.
        """
        self._callbacks.append(callback)

    def make_current(self) -> None:
        _current.set(self)

    async def run_shutdown_callbacks(self, deadline: float) -> list[CallbackReport]:
        """Run every callback, returning by ``deadline`` whatever they do."""
        if not self._callbacks:
            return []
        start = self._clock.now()
        loop = asyncio.get_running_loop()
        tasks = {
            loop.create_task(_call(cb), name=f"job:{self.job_id}/shutdown:{_name(cb)}"): cb
            for cb in self._callbacks
        }
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - start))
        end = self._clock.now()
        # Past the deadline: cancel, give a last moment (a tenth of the budget), then abandon
        # (the job process exits without awaiting them: DESIGN §2).
        await cancel_and_wait(pending, end + 0.1 * max(0.0, deadline - start), self._clock)
        reports = []
        for task, cb in tasks.items():
            if task in pending:
                reports.append(CallbackReport(_name(cb), (end - start) * 1000, "timeout"))
            elif task.exception() is not None:
                exc = task.exception()
                reports.append(
                    CallbackReport(_name(cb), (end - start) * 1000, "error", repr(exc)[:300])
                )
            else:
                reports.append(CallbackReport(_name(cb), (end - start) * 1000, "ok"))
        return reports


async def _call(cb: ShutdownCallback) -> None:
    await cb()


def _name(cb: ShutdownCallback) -> str:
    return getattr(cb, "__qualname__", None) or repr(cb)

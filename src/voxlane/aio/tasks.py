"""Owned tasks: every task has an owner that cancels it with a deadline (STYLE §5-§6).

User code (tools, hooks, custom nodes) and provider streams may ignore cancellation. So an
owner never awaits its tasks without a bound: :meth:`TaskOwner.shutdown` cancels, waits
with ``asyncio.wait(timeout=...)`` (which returns on time, unlike ``wait_for`` or a
TaskGroup exit), cancels again, waits again until the same deadline, and then *abandons*
what is left: no longer awaited, referenced so it is not garbage collected mid-flight, and
reported with its stack.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.errors import ClosedError

T = TypeVar("T")
log = logging.getLogger("voxlane.aio")

# Abandoned tasks stay referenced here until they finish on their own, so that asyncio does
# not destroy them while pending (and so that leak checks can find them).
_ABANDONED: set[asyncio.Task[Any]] = set()


@dataclass(frozen=True)
class AbandonedTask:
    """A task that did not finish by its deadline, even after being cancelled twice."""

    name: str
    stack: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.name, "stack": list(self.stack)}


def describe_stack(task: asyncio.Task[Any], limit: int = 30) -> list[str]:
    """Where ``task`` is suspended, outermost first, following the chain of awaits.

    ``Task.get_stack()`` shows only the outermost coroutine frame; the await chain (``cr_await``)
    shows the line that is actually stuck (e.g. inside a tool awaiting ``asyncio.shield``).
    """
    lines: list[str] = []
    obj: Any = task.get_coro()
    while obj is not None and len(lines) < limit:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None)
        frame = frame or getattr(obj, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        nxt = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None)
        obj = nxt or getattr(obj, "gi_yieldfrom", None)
        if type(obj).__name__ in ("async_generator_asend", "async_generator_athrow"):
            # ``async for`` over an async generator awaits an asend object, which exposes
            # no frame; its only referent is the generator, whose frame we want.
            obj = next((r for r in gc.get_referents(obj) if inspect.isasyncgen(r)), None)
        if isinstance(obj, asyncio.Future) and not isinstance(obj, asyncio.Task):
            lines.append(f"awaiting {obj!r}"[:200])
            break
    if not lines:
        for frame in task.get_stack(limit=limit):
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
    return lines


def abandon(tasks: Iterable[asyncio.Task[Any]]) -> list[AbandonedTask]:
    """Stop awaiting ``tasks``; keep them referenced; report each with its stack."""
    report = []
    for task in tasks:
        if task.done():
            continue
        report.append(AbandonedTask(task.get_name(), describe_stack(task)))
        _ABANDONED.add(task)
        task.add_done_callback(_ABANDONED.discard)
    return report


def abandoned_tasks() -> frozenset[asyncio.Task[Any]]:
    """Abandoned tasks still running (the testing kit's leak check looks here)."""
    return frozenset(t for t in _ABANDONED if not t.done())


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]],
    deadline: float,
    clock: Clock = DEFAULT_CLOCK,
    *,
    recancel_at: float | None = None,
) -> list[AbandonedTask]:
    """Cancel ``tasks``, wait for them until ``deadline`` (cancelling twice), abandon the rest.

    The second cancel goes out at ``recancel_at`` (a close plan's ``cancel_deadline``;
    default: halfway to ``deadline``): a task that swallowed the first cancel may honour a
    second. Returns on time whatever the tasks do (swallow ``CancelledError``, shield, hang).
    If the caller is cancelled meanwhile, the tasks are left cancelled and the caller's
    cancellation propagates.
    """
    pending = {t for t in tasks if not t.done()}
    if not pending:
        return []
    for task in pending:
        task.cancel()
    now = clock.now()
    second = recancel_at if recancel_at is not None else now + (deadline - now) / 2
    _, pending = await asyncio.wait(pending, timeout=max(0.0, min(second, deadline) - now))
    if pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - clock.now()))
    return abandon(pending)


async def wait_pending(
    futures: Iterable[asyncio.Future[Any]], deadline: float, clock: Clock = DEFAULT_CLOCK
) -> set[asyncio.Future[Any]]:
    """Wait until every one of ``futures`` is done or ``deadline``; return those still
    pending (empty: all done in time). Cancels nothing; returns on time whatever they do.

    The caller decides what a non-empty result means: typically cancel with
    :func:`cancel_and_wait`, then abandon.
    """
    pending = {f for f in futures if not f.done()}
    if not pending:
        return set()
    _, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - clock.now()))
    return pending


async def wait_event(event: asyncio.Event, deadline: float, now: float) -> bool:
    """Wait for ``event`` until ``deadline``; True if it was set. Returns on time."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=max(0.0, deadline - now))
    finally:
        waiter.cancel()
    return event.is_set()


async def join(task: asyncio.Task[T]) -> T:
    """Await an owned task's result without tying our fate to it.

    Unlike ``await task``, when *we* are cancelled we cancel ``task`` and return at once,
    instead of waiting for a task that may ignore cancellation.
    """
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        raise
    return task.result()


class TaskOwner:
    """Owns the tasks it spawns: errors reach ``on_error``, shutdown is bounded.

    ``context``: the ``contextvars.Context`` tasks are spawned in (a copy per task).

    ``spawn`` after ``shutdown`` has begun raises ``ClosedError`` (the coroutine is closed).
    """

    def __init__(
        self,
        name: str,
        *,
        on_error: Callable[[asyncio.Task[Any], BaseException], None] | None = None,
        clock: Clock = DEFAULT_CLOCK,
        context: contextvars.Context | None = None,
    ) -> None:
        self.name = name
        self._on_error = on_error
        self._clock = clock
        self._context = context
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(
        self, coro: Coroutine[Any, Any, T], *, name: str, joined: bool = False
    ) -> asyncio.Task[T]:
        """Run ``coro`` as an owned task. ``joined``: the spawner awaits the result (with
        :func:`join`) and handles its error itself, so ``on_error`` is not told of it."""
        if self._closed:
            coro.close()
            raise ClosedError(f"{self.name}: cannot spawn {name!r}, owner is shutting down")
        # Tasks run in a copy of the owner's context (e.g. the session id for the ledger),
        # not the caller's: a task spawned on behalf of user code still belongs to its owner.
        ctx = self._context.copy() if self._context is not None else None
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}/{name}", context=ctx)
        self._tasks.add(task)
        task.add_done_callback(self._on_joined_done if joined else self._on_done)
        return task

    def _on_joined_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieving it marks it handled
        if exc is None:
            return
        if self._on_error is not None:
            self._on_error(task, exc)
        else:
            log.error("task %s failed", task.get_name(), exc_info=exc)

    @property
    def live(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(t for t in self._tasks if not t.done())

    @property
    def closed(self) -> bool:
        return self._closed

    async def shutdown(
        self, deadline: float, *, recancel_at: float | None = None
    ) -> list[AbandonedTask]:
        """Refuse new tasks; cancel and wait for the live ones until ``deadline``; abandon."""
        self._closed = True
        return await cancel_and_wait(self.live, deadline, self._clock, recancel_at=recancel_at)

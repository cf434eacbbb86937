"""Bounded release of resources (STYLE §4-§5, DESIGN I2).

:func:`bounded_aclose` runs one resource's ``aclose()`` under a deadline; if it raises or
does not return in time, the resource's sync ``abort()`` (when it has one) releases it hard.
:class:`ResourceStack` registers resources at acquisition and closes them in reverse order,
each step isolated and given a fair share of the remaining time, so one failing or hanging
step never skips the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import AbandonedTask, abandon

Outcome = Literal["ok", "timeout", "error", "aborted"]


@runtime_checkable
class AsyncResource(Protocol):
    async def aclose(self) -> None: ...


@runtime_checkable
class Abortable(Protocol):
    def abort(self) -> None:
        """Release at once, without any graceful exchange. Never blocks, never raises."""
        ...


@dataclass
class StepReport:
    """One teardown step: what, how long, how it ended."""

    name: str
    duration_ms: float
    outcome: Outcome
    error: str | None = None
    abandoned: list[AbandonedTask] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "duration_ms": round(self.duration_ms, 3),
            "outcome": self.outcome,
        }
        if self.error:
            d["error"] = self.error
        return d


def abort_resource(resource: object) -> bool:
    """Hard-release ``resource`` if it can be (``abort()``); never raises. True if it did."""
    abort = getattr(resource, "abort", None)  # the Abortable protocol, without isinstance's cost
    if callable(abort):
        try:
            abort()
        except Exception:  # abort must not raise; if it does, the step is still reported
            return False
        return True
    return False


async def run_step(
    name: str,
    action: Callable[[], Awaitable[None]],
    deadline: float,
    *,
    on_expiry: Callable[[], bool] | None = None,
    clock: Clock = DEFAULT_CLOCK,
    abandoned: list[AbandonedTask] | None = None,
) -> StepReport:
    """Run ``action`` until ``deadline``; never waits longer, whatever ``action`` does.

    On expiry the action's task is cancelled and abandoned, then ``on_expiry`` (a hard
    release, returning True if it released) runs: outcome ``aborted``, else ``timeout``.
    On error ``on_expiry`` runs too (an error means "not graceful", never "still open").
    If the caller is cancelled meanwhile, the step is cancelled and ``on_expiry`` runs; an
    action that will not stop is abandoned and recorded in ``abandoned`` (the caller's
    cancellation then propagates, so it has no report to put it in).
    """
    start = clock.now()
    task: asyncio.Task[None] = asyncio.ensure_future(action())
    task.set_name(f"step/{name}")
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - start))
    except asyncio.CancelledError:
        task.cancel()
        if on_expiry is not None:
            on_expiry()
        try:
            await asyncio.sleep(0)  # one loop turn for a well-behaved action to unwind
        finally:
            stuck = abandon([task])
            if abandoned is not None:
                abandoned.extend(stuck)
        raise
    elapsed = (clock.now() - start) * 1000
    if task in done:
        # An action that ended cancelled (``aclose`` re-raising its reader's cancellation)
        # failed: it must not cancel the teardown that ran it.
        exc = asyncio.CancelledError() if task.cancelled() else task.exception()
        if exc is None:
            return StepReport(name, elapsed, "ok")
        if on_expiry is not None:
            on_expiry()
        return StepReport(name, elapsed, "error", f"{type(exc).__name__}: {exc}")
    task.cancel()
    released = on_expiry() if on_expiry is not None else False
    # One loop turn for a well-behaved task to unwind; a stubborn one is abandoned.
    await asyncio.sleep(0)
    stuck = abandon([task])
    return StepReport(
        name,
        (clock.now() - start) * 1000,
        "aborted" if released else "timeout",
        "did not finish before its deadline",
        stuck,
    )


@runtime_checkable
class DeadlineAware(Protocol):
    def set_release_deadline(self, deadline: float) -> None:
        """The loop time this resource must be released by: a graceful close must not plan
        past it (``abort()`` follows if it does)."""
        ...


async def bounded_aclose(
    name: str,
    resource: AsyncResource,
    deadline: float,
    *,
    clock: Clock = DEFAULT_CLOCK,
    abandoned: list[AbandonedTask] | None = None,
) -> StepReport:
    """``resource.aclose()`` under ``deadline``; ``abort()`` it if that fails or hangs.

    A resource that wants to know (``DeadlineAware``) is told ``deadline`` first.
    """
    tell = getattr(resource, "set_release_deadline", None)  # DeadlineAware
    if callable(tell):
        tell(deadline)
    return await run_step(
        name,
        resource.aclose,
        deadline,
        on_expiry=lambda: abort_resource(resource),
        clock=clock,
        abandoned=abandoned,
    )


class ResourceStack:
    """Resources registered at acquisition, closed in reverse order with bounded steps.

    ``push`` when a resource is acquired; ``discard`` once its user has released it.
    The owner's teardown calls :meth:`release`: a resource leaves the stack only once its
    bounded close has returned (released, or aborted), so a teardown cut short leaves
    everything not yet released where :meth:`abort_all` finds it.
    """

    def __init__(self) -> None:
        self._items: list[tuple[str, AsyncResource]] = []

    def push(self, name: str, resource: AsyncResource) -> None:
        self._items.append((name, resource))

    def discard(self, resource: AsyncResource) -> None:
        self._items = [(n, r) for n, r in self._items if r is not resource]

    def __len__(self) -> int:
        return len(self._items)

    async def release(
        self,
        deadline_for: Callable[[float, int], float],
        *,
        clock: Clock = DEFAULT_CLOCK,
        abandoned: list[AbandonedTask] | None = None,
    ) -> list[StepReport]:
        """Close every resource, newest first, each with :func:`bounded_aclose` by
        ``deadline_for(now, resources_left)``; a resource is dropped once that returned.
        Resources pushed meanwhile are closed too. ``abandoned``: where a step abandoned
        because *we* were cancelled is recorded (see :func:`run_step`)."""
        reports: list[StepReport] = []
        while self._items:
            name, resource = self._items[-1]
            deadline = deadline_for(clock.now(), len(self._items))
            reports.append(
                await bounded_aclose(
                    f"close {name}", resource, deadline, clock=clock, abandoned=abandoned
                )
            )
            self.discard(resource)
        return reports

    def take_all(self) -> list[tuple[str, AsyncResource]]:
        """Unregister and return everything, newest first (the order to close it in)."""
        items, self._items = self._items, []
        return list(reversed(items))

    def abort_all(self) -> None:
        """Last resort: hard-release whatever is still registered. Never blocks."""
        for _, resource in self.take_all():
            abort_resource(resource)

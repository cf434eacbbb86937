"""Small asyncio helpers of the gateway: every wait returns by its deadline.

Why not ``asyncio.wait_for``/``asyncio.timeout`` around a task: on expiry they cancel and
then wait without bound for the task to finish (DESIGN §2). ``asyncio.wait(timeout=...)``
returns on time whatever the task does; a task still running after cancel + second wait is
abandoned and reported by the caller.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["cancel_and_wait", "retrieve", "wait_until"]

_log = logging.getLogger("voxlane.gateway")


def retrieve(task: asyncio.Future[Any]) -> BaseException | None:
    """Return (and so mark as retrieved) a done task's exception; None if it had none."""
    if not task.done() or task.cancelled():
        return None
    return task.exception()


async def wait_until(tasks: set[asyncio.Future[Any]], deadline: float) -> set[asyncio.Future[Any]]:
    """Wait for ``tasks`` until the loop time ``deadline``; return those still pending."""
    if not tasks:
        return set()
    timeout = max(0.0, deadline - asyncio.get_running_loop().time())
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    return pending


async def cancel_and_wait(task: asyncio.Future[Any], deadline: float) -> bool:
    """Cancel ``task`` and wait for it until ``deadline``. True when it finished.

    A task still running at the deadline is abandoned (logged with its stack); the caller
    must not await it again without a bound.
    """
    if task is asyncio.current_task():
        raise RuntimeError("cancel_and_wait() on the current task")
    if not task.done():
        task.cancel()
        await wait_until({task}, deadline)
    if task.done():
        exc = retrieve(task)
        if exc is not None:
            _log.debug("task %r ended with %r", task, exc)
        return True
    name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
    frames = task.get_stack() if isinstance(task, asyncio.Task) else []
    stack = "".join(f"\n  {f.f_code.co_filename}:{f.f_lineno}" for f in frames)
    _log.warning("abandoned task %s still running after cancel:%s", name, stack)
    return False

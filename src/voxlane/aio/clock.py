"""One injectable clock over the event loop's monotonic time (DESIGN §7).

Durations and deadlines are loop-clock seconds. Under the testing kit's virtual-time loop
the same code runs on virtual time, so timeouts are tested in milliseconds.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return at ``deadline`` (at once if it has passed)."""
        ...


class LoopClock:
    """The running event loop's clock (``loop.time()``)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)


DEFAULT_CLOCK: Clock = LoopClock()

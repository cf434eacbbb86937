"""Virtual time for asyncio tests (DESIGN §7, STYLE §10; anchor: trio's autojump clock).

``VirtualTimeLoop`` is a selector event loop whose ``time()`` is virtual: whenever nothing
is ready to run and no I/O is pending, it jumps straight to the next timer. A 30-minute idle
cycle takes milliseconds; ``asyncio.wait(timeout=...)``, ``asyncio.sleep`` and ``call_at`` all
follow it. Real I/O still works (the selector is polled without waiting first), but a test
mixing long real waits with timers should use a real loop (``@pytest.mark.real_time``).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

DEADLOCK_AFTER_S = 30.0
"""Real seconds with no timer, no ready callback and no I/O before the loop gives up."""


class VirtualTimeDeadlock(RuntimeError):
    """Nothing can ever happen again: no timers, no I/O — the test awaits something forever."""


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(selectors.DefaultSelector())
        self._virtual_now = start
        selector: Any = self._selector  # type: ignore[attr-defined]
        self._real_select = selector.select
        selector.select = self._select

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by hand (timers due by then fire on the next turn)."""
        self._virtual_now += seconds

    def _select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events: list[tuple[selectors.SelectorKey, int]] = self._real_select(0)
        if events or timeout == 0:
            return events
        if timeout is not None:
            self._virtual_now += timeout
            return []
        # No timer is scheduled: only real I/O (a thread, a socket) can wake us now.
        started = time.monotonic()
        while time.monotonic() - started < DEADLOCK_AFTER_S:
            events = self._real_select(0.05)
            if events:
                return events
        raise VirtualTimeDeadlock(
            f"no timers, no ready callbacks and no I/O for {DEADLOCK_AFTER_S:.0f}s of real time"
        )


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` to completion on a fresh ``VirtualTimeLoop``."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())

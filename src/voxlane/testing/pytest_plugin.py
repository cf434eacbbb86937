"""voxlane's pytest plugin (registered as the ``voxlane`` pytest11 entry point).

* ``async def`` tests run on a fresh :class:`VirtualTimeLoop` (virtual time) — or on a real
  loop with ``@pytest.mark.real_time``. After the test body, stuck adversarial helpers are
  released so the loop can close (``asyncio.Runner`` would otherwise wait for them forever).
* The ``leak_check`` fixture fails a test that leaves provider connections open (resource
  ledger) or, for async tests, tasks alive on its loop after the test body returned.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from voxlane.aio.ledger import LEDGER
from voxlane.testing.adversarial import release_all
from voxlane.testing.virtual_time import VirtualTimeLoop

_LEAK_KEY = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_time: run this async test on a real event loop")


def _alive() -> list[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


async def _run_test(coro: Any, leaks: list[str] | None) -> None:
    """Run the test body; then release stuck adversarial helpers (their tasks were reported
    by whoever abandoned them) and give everything a few loop turns to finish. A task still
    alive after that is a leak."""
    try:
        await coro
    finally:
        release_all()
        for _ in range(10):
            if not _alive():
                break
            await asyncio.sleep(0)
    if leaks is not None:
        leaks.extend(f"task left alive: {t.get_name()}" for t in _alive())


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    real = pyfuncitem.get_closest_marker("real_time") is not None
    leaks = pyfuncitem.stash.get(_LEAK_KEY, None)
    with asyncio.Runner(loop_factory=None if real else VirtualTimeLoop) as runner:
        runner.run(_run_test(pyfuncitem.obj(**kwargs), leaks))
    return True


@pytest.fixture
def leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves provider connections open or tasks alive."""
    before = LEDGER.count_open()
    leaks: list[str] = []
    request.node.stash[_LEAK_KEY] = leaks
    yield
    opened = LEDGER.open_entries()
    if len(opened) > before:
        leaks.extend(
            f"connection left open: {e.kind} {e.label} (session {e.session_id})" for e in opened
        )
        for e in opened:
            e.release()  # do not let one leak fail every later test
    if leaks:
        pytest.fail("leak check failed:\n  " + "\n  ".join(leaks), pytrace=False)

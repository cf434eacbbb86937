"""DESIGN I1: every forced close ends within close_timeout, whatever user code does.

The matrix {misbehaving code} x {close entry point} (voxlane.testing.scenarios), on virtual
time: ``close`` fires exactly once within the budget, the ledger shows 0 open connections
for the session, and the report names each abandoned task with its stack.
"""

from __future__ import annotations

import asyncio

import pytest

from voxlane.testing.scenarios import (
    ENTRIES,
    EXPECTED_REASON,
    MATRIX,
    SCENARIOS,
    close_via,
    make_busy,
    open_connections,
)

CLOSE_TIMEOUT = 4.0


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("name", [*MATRIX, "normal_silent", "normal_speaking"])
async def test_forced_close_is_bounded(name: str, entry: str) -> None:
    scenario = SCENARIOS[name]
    loop = asyncio.get_running_loop()
    busy = await make_busy(name, close_timeout=CLOSE_TIMEOUT, busy_for=3.0)
    if name.startswith("tool"):
        assert busy.agent.tool_started.is_set()  # the misbehaving tool is running
    start = loop.time()
    event = await close_via(busy, entry)
    elapsed = loop.time() - start

    assert elapsed <= CLOSE_TIMEOUT + 1e-6, f"close took {elapsed:.3f}s"
    assert busy.closes == [event]
    assert event.reason is EXPECTED_REASON[entry]
    assert open_connections(busy) == 0
    assert event.report.open_connections_after == 0
    if scenario.stuck_in:
        stacks = [line for a in event.report.abandoned for line in a.stack]
        assert any(scenario.stuck_in in line for line in stacks), event.report.summary()
        assert all(a.name for a in event.report.abandoned)
    if scenario.listener_raises:
        assert any("listener exploded" in e for e in event.report.listener_errors)
    if entry == "fatal_provider_error":
        assert event.error is not None and "credentials" in str(event.error)
    if name == "normal_silent":
        assert elapsed == 0.0  # nothing to wait for: no timer at all
    # Closing again is a no-op that returns the same event.
    assert await busy.session.aclose() is event
    assert len(busy.closes) == 1

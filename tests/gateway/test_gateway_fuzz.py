"""A seeded, bounded fuzz campaign against a real gateway (``voxlane.testing.fuzz_ws``).

About 6 s here: 800 cases of garbage and mutated frames on ``/v1/stt`` (real pocketsphinx)
and ``/v1/tts`` (espeak-ng), 4 connections at a time, health checks between batches.
Longer campaigns: ``python bench/fuzz.py --targets gateway --cases 20000``. A failure
names its case index; ``ws_case(SEED, index).describe()`` shows its frames.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from gateway_helpers import API_KEY, gateway, logged_problems, run

from voxlane.testing.fuzz_ws import ws_case

SEED = 20261210
CASES = 800


def test_cases_are_a_pure_function_of_seed_and_index() -> None:
    assert [ws_case(SEED, i) for i in range(50)] == [ws_case(SEED, i) for i in range(50)]
    assert [ws_case(SEED, i) for i in range(50)] != [ws_case(SEED + 1, i) for i in range(50)]
    kinds = {ws_case(SEED, i).endpoint for i in range(50)}
    assert kinds == {"stt", "tts"}


def test_gateway_survives_garbage_and_mutated_frames(caplog: pytest.LogCaptureFixture) -> None:
    from voxlane.testing.fuzz_ws import run_ws_campaign

    caplog.set_level(logging.INFO)

    async def main() -> None:
        async with gateway() as server:
            report = await run_ws_campaign(server.url, SEED, CASES, api_key=API_KEY)
            assert report.cases == CASES
            assert report.ok, [(f.index, f.error) for f in report.failures[:10]]
            async with asyncio.timeout(10):  # nothing of the campaign stays open
                while server.statistics().live_connections or server.live_sessions:
                    await asyncio.sleep(0.02)
            stats = server.statistics()
            assert stats.open_connections == stats.open_tts_connections == 0
            assert stats.connections_seen > CASES

    run(main(), timeout=120)
    assert not logged_problems(caplog), logged_problems(caplog)[:5]

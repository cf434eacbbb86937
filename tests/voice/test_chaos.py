"""Randomized lifecycle scenarios (voxlane.testing.chaos): 2,000 seeded scenarios on virtual
time, each checked after its close for the lifecycle promises (bounded close, one close
event, no open connection, no unreported live task, no lost transcript, ...), plus
hand-picked regression seeds and checks of the harness itself.

A failure lists the seed; replay it with ``python -m voxlane.testing.chaos SEED``.

The tests are sync: the runner makes one virtual-time loop per scenario itself.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from voxlane.aio.ledger import LEDGER
from voxlane.testing.chaos import (
    Failure,
    ScenarioRun,
    execute,
    generate,
    run_scenario,
    run_scenarios,
)
from voxlane.voice.events import CloseEvent

SEED_BASE = 0
SCENARIOS = 2000

# Seeds are tied to the generator (voxlane/testing/chaos_plan.py): the fingerprint of each
# plan is pinned so that a generator change cannot silently turn a regression case into a
# different scenario. After changing the generator, pick the seeds again (bench/chaos.py
# lists failing seeds; the shortest plan of each failure class makes the best case).
REGRESSIONS: dict[int, tuple[str, str]] = {
    1363: ("a final transcript that arrives while DRAINING is lost", "d5995dd845da"),
    1889: ("a turn that completes during a forced close (slow on_exit) is lost", "125bc53b0f19"),
    377: ("shutdown(drain=True) during a handoff cuts the old agent's speech", "b8f4852de9aa"),
    652: ("shutdown(drain=True) during a handoff strands the new agent's speech", "66112b40821d"),
    4854: ("start() after the caller left never closes", "b4879fdfaff9"),
    2915: ("update_agent(C) during a handoff to B leaves B's hook tasks running", "a0b7711a8ca9"),
    2169: ("a close during a handoff's teardown leaves a stream open", "bf7557f70540"),
    3155: ("a speech's hanging TTS close leaves an unreported task", "f14cc502363e"),
}
# Scenarios full of misbehaving code and providers that the current code closes correctly:
# they pin the harness's strictness (a check that fires on these is a harness bug).
HEALTHY = [1767, 1929, 941, 1774, 1763, 306]


def fingerprint(seed: int) -> str:
    return hashlib.sha1(generate(seed).describe().encode()).hexdigest()[:12]


def _explain(failures: list[Failure]) -> str:
    parts = []
    for f in failures:
        parts.append(
            f"seed {f.seed}: {f.check}: {f.details}\n"
            f"  replay: python -m voxlane.testing.chaos {f.seed}\n"
            + "\n".join(f"    {line}" for line in f.plan.splitlines())
        )
    return "\n\n".join(parts)


@pytest.mark.slow
def test_seeded_scenarios_keep_the_lifecycle_promises() -> None:
    summary = run_scenarios(SCENARIOS, SEED_BASE, keep=5)
    assert summary["scenarios"] == SCENARIOS
    if summary["failures"]:
        first = [Failure(**f) for f in summary["first_failures"]]
        pytest.fail(
            f"{summary['failures']} of {SCENARIOS} scenarios broke a promise "
            f"(failed checks: {summary['failed_checks']}); the first {len(first)}:\n\n"
            + _explain(first),
            pytrace=False,
        )


@pytest.mark.parametrize("seed", sorted(REGRESSIONS), ids=lambda s: f"seed{s}")
def test_regression_seed(seed: int) -> None:
    what, pinned = REGRESSIONS[seed]
    assert fingerprint(seed) == pinned, "the generator changed: pick the regression seeds again"
    result = run_scenario(seed)
    if result.failures:
        pytest.fail(f"{what}:\n\n" + _explain(result.failures), pytrace=False)


@pytest.mark.parametrize("seed", HEALTHY, ids=lambda s: f"seed{s}")
def test_healthy_seed(seed: int) -> None:
    result = run_scenario(seed)
    assert not result.failures, _explain(result.failures)
    assert result.reason is not None and result.stragglers == 0


def test_plans_and_outcomes_are_deterministic() -> None:
    for seed in (3, 377, 1190):
        assert generate(seed) == generate(seed)
        a, b = run_scenario(seed), run_scenario(seed)
        assert [(f.check, f.details) for f in a.failures] == [
            (f.check, f.details) for f in b.failures
        ]
        assert a.over_budget_s == b.over_budget_s


def test_the_harness_sees_a_leaked_task_and_a_leaked_connection() -> None:
    """Plant what the checks look for in a healthy scenario: both must be reported."""
    run = ScenarioRun(generate(HEALTHY[0]), verbose=False)
    planted: list[asyncio.Task[None]] = []

    def leak(_: CloseEvent) -> None:
        planted.append(asyncio.get_running_loop().create_task(asyncio.sleep(60), name="planted"))
        LEDGER.open("llm", "planted", session_id=run.session.id)

    run.session.on("close", leak)
    result = execute(run)
    checks = {f.check: f.details for f in result.failures}
    assert "planted" in checks.get("live_tasks", ""), checks
    assert "llm:planted" in checks.get("connections", ""), checks
    assert planted[0].done() and LEDGER.count_open(run.session.id) == 0  # cleaned up


def test_replay_shows_plan_trace_and_report() -> None:
    from voxlane.testing.chaos import replay

    text = replay(HEALTHY[0])
    assert f"seed={HEALTHY[0]}" in text and "trace:" in text and "close event #1" in text
    assert text.rstrip().endswith("0 failure(s)")

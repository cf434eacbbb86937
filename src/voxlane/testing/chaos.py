"""Randomized lifecycle testing: seeded scenarios (:mod:`voxlane.testing.chaos_plan`) run
against the public API on virtual time, with the lifecycle promises checked after each close.

    from voxlane.testing.chaos import run_scenarios, replay
    summary = run_scenarios(2000, seed0=0)   # {"scenarios", "failures", "first_failures", ...}
    print(replay(1234))                      # one seed: plan, event trace, report, failures

or ``python -m voxlane.testing.chaos SEED [SEED ...]``. Each scenario runs on its own
``VirtualTimeLoop`` (cheap: a selector and a self-pipe), so scenarios cannot disturb each
other; afterwards stuck helpers are released, leftover tasks cancelled and the session's
leaked ledger entries (already reported) released.

Checks (the ``check`` of a :class:`Failure`), made when ``close`` has fired:

* ``close_once`` — ``close`` fired exactly once (listener calls counted, also after the
  remaining timeline and a round of API calls made after the close);
* ``same_event`` — every ``aclose()`` / ``wait_closed()`` caller, and ``session.close_event``,
  got that one ``CloseEvent``;
* ``close_bounded`` — it came within ``close_timeout`` + 0.1 s of the first forced request
  (``aclose``, ``shutdown(drain=False)``, a hangup with ``close_on_disconnect``, a fatal
  provider error — or a hangup before ``start()``, counted from ``start()``), or within
  ``drain_timeout`` + ``close_timeout`` + 0.1 s of a ``shutdown(drain=True)``; each request
  promises its own bound and the earliest counts. A session nothing closes is closed with
  ``aclose()`` when the timeline ends;
* ``connections`` — no ledger entry of the session open, at the event and after it, and
  ``report.open_connections_after == 0``;
* ``live_tasks`` — after up to 20 zero-length loop turns (no virtual time passes, so nothing
  can finish by sleeping), every unfinished task on the loop is either the driver's own or
  named in ``report.abandoned`` (names compared as multisets). The driver's own tasks are
  excluded by identity, not by name: the main driver task, the caller and timeline tasks,
  the tasks it spawned to call ``start()``, ``aclose()`` and ``wait_closed()``, and its
  event waiters — nothing the session or the agents created;
* ``transcripts`` — every final, non-empty ``user_input_transcribed`` text is in the close
  event's history, in a user message;
* ``handles_resolved`` — every ``SpeechHandle`` (from ``speech_created``) was done when
  ``close`` fired;
* ``api_error`` — a public call raised anything but ``SessionClosedError``, or raised it while
  the session was neither draining nor closing (``start()``: with no close requested), or
  ``start()`` on a closed session did not raise (or never returned);
* ``close_reason`` — the reason is that of one of the requests made; ``state`` — CLOSED;
* ``driver_error`` — an exception escaped into the driver itself (a harness bug, or user
  code escaping by a path the driver does not expect);
* ``graceful_drain`` — graceful plans only: the drain ended without escalation or abandoned
  tasks, and no speech was cut — except that of an agent replaced by ``update_agent`` before
  it ever started, which the API drops by design.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from voxlane.aio.ledger import LEDGER
from voxlane.testing._chaos_agent import Failure, ScenarioResult
from voxlane.testing._chaos_driver import ScenarioRun
from voxlane.testing.adversarial import release_all
from voxlane.testing.chaos_plan import ScenarioPlan, generate
from voxlane.testing.virtual_time import VirtualTimeLoop

__all__ = [
    "Failure",
    "ScenarioPlan",
    "ScenarioResult",
    "ScenarioRun",
    "execute",
    "generate",
    "merge_summaries",
    "replay",
    "run_scenario",
    "run_scenarios",
]


async def _cleanup() -> int:
    """Release stuck helpers, cancel everything, wait (bounded); return what is left."""
    me = asyncio.current_task()
    pending: list[asyncio.Task[Any]] = []
    for _ in range(5):
        release_all()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not pending:
            return 0
        for t in pending:
            t.cancel()
        await asyncio.wait(pending, timeout=1.0)
    return len([t for t in pending if not t.done()])


def run_scenario(seed: int, *, verbose: bool = False) -> ScenarioResult:
    """Run the scenario of ``seed`` on a fresh virtual-time loop and check it."""
    return execute(ScenarioRun(generate(seed), verbose))


def execute(run: ScenarioRun) -> ScenarioResult:
    """Drive ``run`` (built, not yet started: e.g. with extra listeners on ``run.session``)
    on a fresh virtual-time loop, check it, clean up; return its result."""
    with _quiet():
        return _execute(run)


def _execute(run: ScenarioRun) -> ScenarioResult:
    loop = VirtualTimeLoop()

    def on_loop_error(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        run.result.loop_errors.append(
            str(context.get("message")) + ": " + repr(context.get("exception"))
        )

    loop.set_exception_handler(on_loop_error)
    try:
        loop.run_until_complete(run.drive())
    except Exception as exc:
        # Every public call is made inside a check; reaching here is a driver bug (or a
        # user-code exception escaping through a path the driver did not expect).
        run.fail("driver_error", f"{exc!r}\n{traceback.format_exc()}")
    finally:
        run.result.stragglers = loop.run_until_complete(_cleanup())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        for entry in LEDGER.open_entries(run.session.id):
            entry.release()  # reported above; do not let one leak count against the next run
    return run.result


@contextmanager
def _quiet() -> Iterator[None]:
    """The scenarios misbehave on purpose; keep voxlane's warnings out of the output."""
    logger = logging.getLogger("voxlane")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_scenarios(n: int, seed0: int = 0, *, keep: int = 10) -> dict[str, Any]:
    """Run seeds ``seed0 .. seed0+n-1``; return a JSON-serializable summary:
    ``scenarios``, ``failures`` (scenarios with at least one), ``seconds`` (wall clock, for
    speed reports only), ``failed_checks``, ``first_failures`` (the first ``keep``, one per
    failing scenario, by seed), counts by first close request, by reason and by mode,
    ``max_close_over_bound_s`` (the closest any close came to its bound: > 0 is late)."""
    started = time.perf_counter()
    summary = _empty_summary(seed0)
    for seed in range(seed0, seed0 + n):
        _add(summary, run_scenario(seed), keep)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return _finish(summary)


def _empty_summary(seed0: int) -> dict[str, Any]:
    return {
        "scenarios": 0,
        "seed0": seed0,
        "failures": 0,
        "seconds": 0.0,
        "scenarios_per_second": None,
        "failed_checks": {},
        "first_failures": [],
        "by_first_request": {},
        "by_reason": {},
        "by_mode": {},
        "max_close_over_bound_s": None,
        "stragglers": 0,
        "loop_errors": 0,
    }


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def _add(summary: dict[str, Any], r: ScenarioResult, keep: int) -> None:
    summary["scenarios"] += 1
    _bump(summary["by_mode"], r.plan.mode)
    _bump(summary["by_first_request"], r.first_request or "none")
    _bump(summary["by_reason"], r.reason or "never_closed")
    summary["stragglers"] += r.stragglers
    summary["loop_errors"] += len(r.loop_errors)
    if r.over_budget_s is not None:
        over = summary["max_close_over_bound_s"]
        summary["max_close_over_bound_s"] = (
            r.over_budget_s if over is None else max(over, r.over_budget_s)
        )
    if r.failures:
        summary["failures"] += 1
        for check in sorted({f.check for f in r.failures}):
            _bump(summary["failed_checks"], check)
        if len(summary["first_failures"]) < keep:
            summary["first_failures"].append(r.failures[0].to_dict())


def merge_summaries(parts: list[dict[str, Any]], *, keep: int = 10) -> dict[str, Any]:
    """One summary of several (e.g. from worker processes over disjoint seed ranges)."""
    total = _empty_summary(min((p["seed0"] for p in parts), default=0))
    for p in parts:
        for key in ("scenarios", "failures", "stragglers", "loop_errors"):
            total[key] += p[key]
        total["seconds"] = max(total["seconds"], p["seconds"])
        for key in ("failed_checks", "by_first_request", "by_reason", "by_mode"):
            for name, n in p[key].items():
                _bump(total[key], name, n)
        over = [
            x
            for x in (total["max_close_over_bound_s"], p["max_close_over_bound_s"])
            if x is not None
        ]
        total["max_close_over_bound_s"] = max(over) if over else None
        total["first_failures"].extend(p["first_failures"])
    total["first_failures"] = sorted(total["first_failures"], key=lambda f: f["seed"])[:keep]
    return _finish(total)


def _finish(summary: dict[str, Any]) -> dict[str, Any]:
    seconds = summary["seconds"]
    summary["scenarios_per_second"] = round(summary["scenarios"] / seconds, 1) if seconds else None
    over = summary["max_close_over_bound_s"]
    summary["max_close_over_bound_s"] = None if over is None else round(over, 4)
    for key in ("failed_checks", "by_first_request", "by_reason", "by_mode"):
        summary[key] = dict(Counter(summary[key]).most_common())
    return summary


def replay(seed: int) -> str:
    """One seed, verbosely: the plan, the event trace, the teardown report, the failures."""
    r = run_scenario(seed, verbose=True)
    out = [r.plan.describe(), "", "trace:", *r.trace, "", r.report or "(no close report)"]
    out += [f"loop error: {e}" for e in r.loop_errors]
    if r.stragglers:
        out.append(f"{r.stragglers} task(s) still alive after cleanup")
    out += ["", f"{len(r.failures)} failure(s)"]
    out += [f"  {f.check}: {f.details}" for f in r.failures]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m voxlane.testing.chaos SEED [SEED ...]", file=sys.stderr)
        return 2
    failed = 0
    for seed in args:
        text = replay(int(seed))
        failed += "\n0 failure(s)" not in text
        print(text, end="\n\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

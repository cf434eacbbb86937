"""Long runs of the randomized lifecycle scenarios (voxlane.testing.chaos) on virtual time.

    python bench/chaos.py --scenarios 100000 [--seed S] [--jobs N] [--json]

Seeds ``S .. S+N-1`` are run in ``--jobs`` worker processes (default: one per CPU), in chunks
so the work spreads evenly. Without ``--json`` progress goes to stderr and a short summary
to stdout; with ``--json`` exactly one JSON object is printed on stdout:
``{"scenarios", "failures", "seconds", "first_failures": [{"seed", "check", "details",
"plan"}], "failed_checks", "by_first_request", "by_reason", "by_mode",
"max_close_over_bound_s", "scenarios_per_second", "jobs", ...}``. ``failures`` counts failing
scenarios; replay one with ``python -m voxlane.testing.chaos SEED``. The exit code is 1 when
any scenario failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from voxlane.testing.chaos import merge_summaries, run_scenarios

CHUNK = 250


def _chunk(args: tuple[int, int, int]) -> dict[str, Any]:
    n, seed0, keep = args
    return run_scenarios(n, seed0, keep=keep)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", type=int, default=20, help="failures to list")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    chunks = [
        (min(CHUNK, args.scenarios - i), args.seed + i, args.keep)
        for i in range(0, args.scenarios, CHUNK)
    ]
    started = time.perf_counter()
    parts: list[dict[str, Any]] = []
    if args.jobs <= 1:
        for chunk in chunks:
            parts.append(_chunk(chunk))
            _progress(args, parts, started)
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for future in as_completed([pool.submit(_chunk, c) for c in chunks]):
                parts.append(future.result())
                _progress(args, parts, started)
    summary = merge_summaries(parts, keep=args.keep)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["scenarios_per_second"] = round(summary["scenarios"] / summary["seconds"], 1)
    summary["jobs"] = args.jobs
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['scenarios']} scenarios, {summary['failures']} failing, "
            f"{summary['seconds']:.1f} s ({summary['scenarios_per_second']}/s, "
            f"{args.jobs} jobs); failed checks: {summary['failed_checks']}"
        )
        for f in summary["first_failures"]:
            print(f"  seed {f['seed']}: {f['check']}: {f['details'][:300]}")
    return 1 if summary["failures"] else 0


def _progress(args: argparse.Namespace, parts: list[dict[str, Any]], started: float) -> None:
    if args.json:
        return
    done = sum(p["scenarios"] for p in parts)
    failed = sum(p["failures"] for p in parts)
    elapsed = time.perf_counter() - started
    print(
        f"\r{done}/{args.scenarios} scenarios, {failed} failing, {elapsed:.0f} s",
        end="",
        file=sys.stderr,
        flush=True,
    )
    if done == args.scenarios:
        print(file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

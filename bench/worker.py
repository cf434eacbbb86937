"""Worker benchmark: job start latency with pre-warmed job processes vs cold, and memory
per job process (synthetic calls on fake providers, real processes, real clock).

    python bench/worker.py [--calls 6] [--json]

Start latency: from the worker accepting the call to the job's first heartbeat (its
session is running), as recorded in each report's ``supervisor.start_latency_ms``. Calls
run one at a time, each long enough for the pool to warm a replacement. Memory: the peak
RSS each job process reports (``job.max_rss_kb``), and the RSS of idle pre-warmed
processes (``/proc/PID/status``). With ``--json`` exactly one JSON object is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from voxlane.core.supervision import LadderConfig
from voxlane.worker.synthetic import SyntheticCall, SyntheticCallSource
from voxlane.worker.worker import Worker, WorkerConfig

AGENT = Path(__file__).resolve().parent.parent / "examples" / "receptionist.py"


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def _mode(prewarm: int, calls: int, reports: Path) -> dict[str, Any]:
    batch = [
        SyntheticCall(call_id=f"p{prewarm}_{i}", hangup_after=0.5, turns=()) for i in range(calls)
    ]
    config = WorkerConfig(
        agent_file=AGENT,
        reports_dir=reports,
        max_jobs=1,
        prewarm=prewarm,
        stop_when_source_done=True,
        ladder=LadderConfig(),
    )
    # One call at a time; the pause lets the pool warm a replacement between calls.
    source = SyntheticCallSource(calls=batch, concurrency=1, gap=1.5 if prewarm else 0.2)
    worker = Worker(config, source)
    idle_rss: list[int] = []
    run = asyncio.ensure_future(worker.run())
    while not run.done():
        idle_rss += [r for r in map(_rss_kb, worker.pool.idle_pids()) if r]
        await asyncio.wait({run}, timeout=0.5)
    await run
    rows = [json.loads((reports / f"{c.call_id}.json").read_text()) for c in batch]
    starts = [r["supervisor"].get("start_latency_ms") for r in rows]
    if None in starts:
        bad = [r["supervisor"] for r in rows if r["supervisor"].get("start_latency_ms") is None]
        raise SystemExit(f"a call never started: {json.dumps(bad)[:2000]}")
    return {
        "prewarm": prewarm,
        "calls": calls,
        "outcomes": sorted({r["supervisor"]["outcome"] for r in rows}),
        "prewarmed_handoffs": sum(1 for r in rows if r["supervisor"]["prewarmed"]),
        "start_ms_p50": round(statistics.median(starts), 1),
        "start_ms_max": round(max(starts), 1),
        "job_peak_rss_mb_mean": round(
            statistics.mean(r["job"]["max_rss_kb"] for r in rows) / 1024, 1
        ),
        "idle_rss_mb_mean": round(statistics.mean(idle_rss) / 1024, 1) if idle_rss else None,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        warm = await _mode(1, args.calls, Path(tmp) / "warm")
        cold = await _mode(0, args.calls, Path(tmp) / "cold")
    return {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "prewarmed": warm,
        "cold": cold,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=6)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    loop = asyncio.new_event_loop()
    result = loop.run_until_complete(main_async(args))
    if args.json:
        print(json.dumps(result))
    else:
        for mode in ("prewarmed", "cold"):
            r = result[mode]
            print(
                f"{mode:>9}: start p50 {r['start_ms_p50']} ms, max {r['start_ms_max']} ms; "
                f"job peak RSS {r['job_peak_rss_mb_mean']} MB; idle RSS {r['idle_rss_mb_mean']} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

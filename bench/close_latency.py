"""Close latency on the real clock: the adversarial matrix plus normal closes.

For every scenario x entry point, N sessions (``--runs``) are made busy concurrently and then
closed concurrently; each close is timed from the request to the close event.

    python bench/close_latency.py [--runs 20] [--close-timeout 4.0] [--json]

With ``--json`` exactly one JSON object is printed on stdout:
``{"close_timeout_s", "rows": [{"scenario", "entry", "runs", "closed", "close_events",
"p50_ms", "max_ms", "open_connections_after"}]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
from typing import Any

from voxlane.testing import release_all
from voxlane.testing.scenarios import ENTRIES, MATRIX, close_via, make_busy, open_connections


async def one_run(name: str, entry: str, close_timeout: float) -> tuple[bool, int, float, int]:
    loop = asyncio.get_running_loop()
    busy = await make_busy(name, close_timeout=close_timeout, busy_for=0.3)
    start = loop.time()
    closing = asyncio.ensure_future(close_via(busy, entry))
    # The bench's own watchdog: a close that never ends must not hang the bench.
    await asyncio.wait({closing}, timeout=close_timeout * 3)
    elapsed_ms = (loop.time() - start) * 1000
    closed = closing.done() and not closing.cancelled() and closing.exception() is None
    if not closing.done():
        closing.cancel()
    return closed, len(busy.closes), elapsed_ms, open_connections(busy)


async def run_row(name: str, entry: str, runs: int, close_timeout: float) -> dict[str, Any]:
    results = await asyncio.gather(*(one_run(name, entry, close_timeout) for _ in range(runs)))
    release_all()  # let the stuck helpers of this row finish before the next row
    await asyncio.sleep(0.05)
    times = [r[2] for r in results]
    return {
        "scenario": name,
        "entry": entry,
        "runs": runs,
        "closed": sum(1 for r in results if r[0]),
        "close_events": sum(r[1] for r in results),
        "p50_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
        "open_connections_after": sum(r[3] for r in results),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for name in ["normal_silent", "normal_speaking", *MATRIX]:
        for entry in ENTRIES:
            row = await run_row(name, entry, args.runs, args.close_timeout)
            rows.append(row)
            if not args.json:
                print(
                    f"{name:<28} {entry:<24} {row['closed']:>3}/{row['runs']:<3} "
                    f"events={row['close_events']:<3} p50={row['p50_ms']:>8.2f} ms "
                    f"max={row['max_ms']:>8.2f} ms open={row['open_connections_after']}",
                    file=sys.stderr,
                    flush=True,
                )
    return {"close_timeout_s": args.close_timeout, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--close-timeout", type=float, default=4.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args()
    # The scenarios log their misbehaviour on purpose; keep the bench's output to results.
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))
    else:
        bad = [
            r
            for r in result["rows"]
            if r["closed"] != r["runs"]
            or r["close_events"] != r["runs"]
            or r["open_connections_after"]
            or r["max_ms"] > args.close_timeout * 1000 + 100
        ]
        print(f"{len(result['rows'])} rows, {len(bad)} outside the promise")
    return 0


if __name__ == "__main__":
    sys.exit(main())

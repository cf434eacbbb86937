"""Shared pieces of the worker tests: a worker on the misbehaving agent, run in-process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from voxlane.core.supervision import LadderConfig
from voxlane.worker.metrics import WorkerMetrics
from voxlane.worker.synthetic import SyntheticCall, SyntheticCallSource
from voxlane.worker.worker import Worker, WorkerConfig

AGENT = Path(__file__).parent / "agents" / "misbehaving.py"
GREETING = {"text": "Hello, how can I help?"}
FAST_LADDER = LadderConfig(job_close_timeout=2.0, sigterm_timeout=0.5, sigkill_timeout=2.0)


def tool_call(name: str, **args: Any) -> dict[str, Any]:
    return {"tool_calls": [[name, args]]}


def make_worker(
    tmp_path: Path,
    calls: list[SyntheticCall],
    metrics: WorkerMetrics | None = None,
    **config: Any,
) -> tuple[Worker, SyntheticCallSource]:
    source = SyntheticCallSource(calls=calls)
    defaults: dict[str, Any] = {
        "agent_file": AGENT,
        "max_jobs": 4,
        "prewarm": len(calls),
        "ladder": FAST_LADDER,
    }
    cfg = WorkerConfig(
        reports_dir=tmp_path / "reports", stop_when_source_done=True, **{**defaults, **config}
    )
    return Worker(cfg, source, metrics=metrics), source


async def run_bounded(worker: Worker, timeout: float) -> int:
    """Run the worker; fail (after stopping it) if it takes longer than ``timeout``."""
    task = asyncio.ensure_future(worker.run())
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        worker.stop()
        worker.stop()
        await asyncio.wait({task}, timeout=15)
        raise AssertionError(f"worker did not finish within {timeout} s")
    return task.result()


def read_report(tmp_path: Path, call_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "reports" / f"{call_id}.json").read_text())
    return data

"""The worker's lifecycle and observability with real job processes: clean calls, drain,
rejection while draining, /metrics and /healthz."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from voxlane.worker.metrics import MetricsServer, WorkerMetrics
from voxlane.worker.source import CallSink
from voxlane.worker.synthetic import SyntheticCall, SyntheticCallSource
from voxlane.worker.worker import Worker, WorkerConfig, WorkerState

from .helpers import AGENT, GREETING, make_worker, read_report, run_bounded

pytestmark = pytest.mark.real_time


async def _get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        read = asyncio.ensure_future(reader.read())
        done, _ = await asyncio.wait({read}, timeout=5.0)
        if not done:
            read.cancel()
            raise AssertionError(f"no answer for {path}")
        data = read.result().decode()
    finally:
        writer.close()
    return int(data.split()[1]), data.split("\r\n\r\n", 1)[1]


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_clean_calls_all_close_and_metrics_move(tmp_path: Path) -> None:
    calls = [
        SyntheticCall(
            call_id=f"ok{i}", hangup_after=2.0 + i * 0.2, turns=("hello there",), llm=(GREETING,)
        )
        for i in range(3)
    ]
    metrics = WorkerMetrics()
    worker, source = make_worker(tmp_path, calls, metrics)
    server = MetricsServer(metrics)
    port = await server.start()
    run = asyncio.ensure_future(run_bounded(worker, 20.0))
    try:
        during = ""
        for _ in range(100):
            await asyncio.sleep(0.1)
            status, during = await _get(port, "/metrics")
            if (
                _metric(during, "voxlane_active_jobs") == 3
                and _metric(during, "voxlane_open_provider_connections") > 0
            ):
                break
        assert _metric(during, "voxlane_active_jobs") == 3
        assert _metric(during, "voxlane_open_provider_connections") > 0
        assert _metric(during, "voxlane_calls_accepted_total") == 3
        assert (await _get(port, "/healthz"))[0] == 200
        assert await run == 0
        status, after = await _get(port, "/metrics")
    finally:
        await server.aclose()
    assert status == 200
    assert _metric(after, "voxlane_active_jobs") == 0
    assert _metric(after, "voxlane_open_provider_connections") == 0
    assert _metric(after, 'voxlane_jobs_total{outcome="closed"}') == 3
    assert _metric(after, "voxlane_job_close_duration_seconds_count") == 3
    assert _metric(after, "voxlane_provider_connections_left_open_total") == 0
    for i in range(3):
        report = read_report(tmp_path, f"ok{i}")
        assert report["supervisor"]["outcome"] == "closed"
        assert report["supervisor"]["prewarmed"] is True
        assert report["close"]["open_connections_after"] == 0
        assert report["job_id"] == f"ok{i}"
        assert {"session_id", "started_at", "ended_at", "close", "history", "usage"} <= set(report)
    assert set(source.ended.values()) == {"closed"}


async def test_drain_timeout_forces_long_calls_and_rejects_new_ones(tmp_path: Path) -> None:
    calls = [
        SyntheticCall(call_id=f"long{i}", hangup_after=60.0, turns=(), llm=(GREETING,))
        for i in range(2)
    ]
    worker, source = make_worker(tmp_path, calls, drain_timeout=0.5)
    run = asyncio.ensure_future(run_bounded(worker, 20.0))
    for _ in range(100):
        await asyncio.sleep(0.1)
        if worker.active_jobs == 2:
            break
    await asyncio.sleep(0.5)  # the calls are running
    t0 = asyncio.get_running_loop().time()
    worker.stop()
    await asyncio.sleep(0.1)
    assert worker.state is WorkerState.DRAINING
    assert worker.offer(SyntheticCall(call_id="late")) is False
    assert ("late", "busy") in source.rejected
    assert await run == 0
    elapsed = asyncio.get_running_loop().time() - t0
    assert elapsed < 0.5 + worker.config.exit_budget()
    for i in range(2):
        report = read_report(tmp_path, f"long{i}")
        assert report["supervisor"]["outcome"] == "closed"  # asked, and closed in time
        assert report["supervisor"]["close_requests"] == ["job_shutdown"]
        assert report["close"]["open_connections_after"] == 0


async def test_broken_agent_file_fails_fast(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('broken agent')\n")
    worker, source = make_worker(tmp_path, [SyntheticCall(call_id="never")], agent_file=broken)
    t0 = asyncio.get_running_loop().time()
    ready = asyncio.ensure_future(worker.wait_ready(15.0))
    assert await run_bounded(worker, 15.0) == 1
    assert asyncio.get_running_loop().time() - t0 < 10.0
    assert source.offered == []
    assert await ready is False  # never ready: never announced
    assert worker.metrics.health == "starting"


GATED = Path(__file__).parent / "agents" / "gated.py"


async def test_health_says_starting_until_the_pool_is_warm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/healthz: "starting" (503) while the job processes load the agent, "ok" (200) once
    the worker takes calls, "draining" (503) once it stops taking them."""
    gate = tmp_path / "gate"
    monkeypatch.setenv("VOXLANE_TEST_GATE", str(gate))  # inherited by the job processes
    metrics = WorkerMetrics()
    calls = [SyntheticCall(call_id="gated", hangup_after=0.5, llm=(GREETING,))]
    worker, source = make_worker(tmp_path, calls, metrics, agent_file=GATED)
    server = MetricsServer(metrics)
    port = await server.start()
    run = asyncio.ensure_future(run_bounded(worker, 30.0))
    try:
        for _ in range(10):  # the warm-up is held at the gate: STARTING, not taking calls
            await asyncio.sleep(0.1)
            assert await _get(port, "/healthz") == (503, "starting\n")
            assert worker.state is WorkerState.STARTING and not worker.ready
        assert source.offered == []
        gate.touch()
        assert await worker.wait_ready(20.0)
        assert await _get(port, "/healthz") == (200, "ok\n")
        assert source.offered == ["gated"]  # the first call came once ready
        assert await run == 0  # the finite source is done: drained and stopped
        assert await _get(port, "/healthz") == (503, "draining\n")
    finally:
        if not run.done():
            worker.stop()
            worker.stop()
            await asyncio.wait({run}, timeout=15)
        await server.aclose()


async def test_stop_while_starting_never_becomes_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXLANE_TEST_GATE", str(tmp_path / "never"))
    worker, source = make_worker(tmp_path, [SyntheticCall(call_id="x")], agent_file=GATED)
    run = asyncio.ensure_future(run_bounded(worker, 20.0))
    ready = asyncio.ensure_future(worker.wait_ready(20.0))
    await asyncio.sleep(0.5)
    worker.stop()
    assert await ready is False
    assert worker.metrics.health == "draining"
    assert await run == 0
    assert source.offered == []


class _FailingSource(SyntheticCallSource):
    """A call source whose ``run`` fails in its first step (a socket it cannot use)."""

    async def run(self, sink: CallSink) -> None:
        raise OSError("no such interface")


class _HealthLog(WorkerMetrics):
    """Records every state /healthz goes through."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "health":
            self.__dict__.setdefault("seen", []).append(value)
        super().__setattr__(name, value)


async def test_a_source_that_fails_at_once_never_makes_the_worker_ready(tmp_path: Path) -> None:
    metrics = _HealthLog()
    worker = Worker(
        WorkerConfig(reports_dir=tmp_path / "reports", agent_file=AGENT, max_jobs=1, prewarm=1),
        _FailingSource(calls=[]),
        metrics=metrics,
    )
    ready = asyncio.ensure_future(worker.wait_ready(20.0))
    assert await run_bounded(worker, 30.0) == 1  # voxlane start exits non-zero
    assert await ready is False
    assert "ok" not in metrics.__dict__["seen"], metrics.__dict__["seen"]

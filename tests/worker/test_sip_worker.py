"""SIP through the worker, against the real sipp on 127.0.0.1: signaling stays in the
worker, each answered call runs in its own job process that owns its RTP socket.

Each test runs a :class:`Worker` in-process with a :class:`SipCallSource` on an ephemeral
port, places calls with sipp (bounded, killed by PID if it overruns), and reads the
reports. Skipped when sipp (Debian ``sip-tester``) is not installed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from sip.sipp import HAVE_SIPP, HOST, SippResult, prepare_workdir, run_sipp
from voxlane.core.supervision import JobOutcome, LadderConfig
from voxlane.worker.sip_source import SipCallSource, SipSourceConfig
from voxlane.worker.worker import Worker, WorkerConfig, WorkerState

from .helpers import AGENT, FAST_LADDER, read_report, tool_call

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_time,
    pytest.mark.skipif(not HAVE_SIPP, reason="sipp (sip-tester) not installed"),
]

LONG_REPLY = {
    "text": "Certainly. We have a table for two at seven thirty tonight, by the window, "
    "and I can also offer eight fifteen if that suits you better."
}
GREETING = {"text": "Hello."}
BOUND = FAST_LADDER.job_close_timeout + 1.0


def after_first_turn(name: str, **args: Any) -> tuple[dict[str, Any], ...]:
    """An LLM script: greet, then answer the caller's first turn by calling tool ``name``
    (mid-call: the caller has been talking for a few seconds by then)."""
    return (GREETING, tool_call(name, **args))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_workdir(tmp_path_factory.mktemp("sipp"))


async def start_worker(
    tmp_path: Path, *, max_jobs: int = 2, ladder: LadderConfig = FAST_LADDER, **sip: Any
) -> tuple[Worker, SipCallSource, asyncio.Task[int]]:
    source = SipCallSource(SipSourceConfig(host=HOST, port=0, rtp_timeout_s=5.0, **sip))
    await source.open()
    config = WorkerConfig(
        agent_file=AGENT,
        reports_dir=tmp_path / "reports",
        max_jobs=max_jobs,
        prewarm=max_jobs,
        ladder=ladder,
        drain_timeout=10.0,
    )
    worker = Worker(config, source)
    task = asyncio.ensure_future(worker.run())
    for _ in range(300):  # until the pool is warm and the source is serving
        if worker.state is WorkerState.RUNNING and worker.pool.idle_count == max_jobs:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    return worker, source, task


async def stop_worker(worker: Worker, task: asyncio.Task[int], timeout: float = 20.0) -> int:
    worker.stop()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        worker.stop()
        await asyncio.wait({task}, timeout=15.0)
        raise AssertionError("worker did not stop in time")
    return task.result()


def only_report(tmp_path: Path, source: SipCallSource) -> dict[str, Any]:
    (call_id,) = source.ended
    return read_report(tmp_path, call_id)


def assert_sipp_ok(result: SippResult) -> None:
    assert result.returncode == 0, result.errors or result.stdout


async def one_call(
    tmp_path: Path, workdir: Path, scenario: str, **worker: Any
) -> tuple[dict[str, Any], SipCallSource]:
    """One sipp call to a worker started for it; the worker stops (exit 0) afterwards.
    Returns the call's report and the source."""
    worker_, source, task = await start_worker(tmp_path, **worker)
    try:
        result = await run_sipp(workdir, scenario, source.port)
    finally:
        assert await stop_worker(worker_, task) == 0
    assert_sipp_ok(result)
    return only_report(tmp_path, source), source


async def test_call_runs_in_a_job_and_hangup_mid_reply_closes_it(
    tmp_path: Path, workdir: Path
) -> None:
    report, source = await one_call(tmp_path, workdir, "uac_bye_mid_reply.xml",
                                    llm=(LONG_REPLY,))
    assert report["supervisor"]["outcome"] == "closed"
    assert report["supervisor"]["prewarmed"] is True
    assert report["job"]["pid"] != os.getpid()  # the session ran in the job process
    close = report["close"]
    assert close["reason"] == "participant_disconnected"
    assert close["open_connections_after"] == 0
    assert close["duration_ms"] <= 4000 and close["abandoned"] == []
    sip = report["sip"]
    assert sip["disconnect_reason"] == "hangup"
    assert sip["rtp"]["packets_in"] > 100  # the caller's speech reached the job's socket
    assert sip["rtp"]["loud_packets_out"] > 25  # the agent's reply went back over RTP
    assert any(m["role"] == "user" for m in report["history"])
    assert report["supervisor"]["close_requests"] == ["participant_disconnected:hangup"]
    assert source.answered == 1 and not source.rejected


async def test_loop_blocking_tool_is_killed_and_the_caller_gets_bye(
    tmp_path: Path, workdir: Path
) -> None:
    ladder = LadderConfig(job_close_timeout=2.0, sigterm_timeout=0.5, heartbeat_timeout=1.0)
    # The caller talks, then waits (up to 20 s) for our BYE and answers it.
    report, _ = await one_call(tmp_path, workdir, "uac_answer_bye.xml", ladder=ladder,
                               llm=after_first_turn("block", seconds=60))
    sup = report["supervisor"]
    assert sup["outcome"] == JobOutcome.KILLED_AFTER_SIGTERM.value, sup
    assert sup["unresponsive"] is True and sup["returncode"] == -15
    times = sup["rung_times_ms"]
    # Unresponsive after 1 s without heartbeats: SIGTERM at once, and it ends the job.
    assert times["ended"] - times["sigterm_sent"] <= (ladder.sigterm_timeout + 1.0) * 1000
    assert report["close"]["reason"] == "job_killed_after_sigterm"
    assert report["close"]["open_connections_after"] == 0


async def test_blocked_job_after_caller_bye_is_killed_within_the_close_timeout(
    tmp_path: Path, workdir: Path
) -> None:
    # Heartbeats are not missed for long enough (timeout 30 s) before the caller's BYE:
    # the close request, then the ladder, must end it.
    ladder = LadderConfig(job_close_timeout=2.0, sigterm_timeout=0.5, heartbeat_timeout=30.0)
    # sipp passes only if its BYE was answered: the worker's signaling does so at once.
    report, _ = await one_call(tmp_path, workdir, "uac_bye_mid_reply.xml", ladder=ladder,
                               llm=after_first_turn("block", seconds=60))
    sup = report["supervisor"]
    assert sup["outcome"] == JobOutcome.KILLED_AFTER_SIGTERM.value, sup
    times = sup["rung_times_ms"]
    assert times["ended"] - times["close_requested"] <= BOUND * 1000


async def test_crashing_job_hangs_up_its_caller_and_others_are_unaffected(
    tmp_path: Path, workdir: Path
) -> None:
    worker, source, task = await start_worker(
        tmp_path, llm=(LONG_REPLY,), scripts={"crash": after_first_turn("crash", code=3)}
    )
    try:
        crashing, fine = await asyncio.gather(
            run_sipp(workdir, "uac_answer_bye.xml", source.port, service="crash"),
            run_sipp(workdir, "uac_bye_mid_reply.xml", source.port),
        )
    finally:
        assert await stop_worker(worker, task) == 0
    assert_sipp_ok(crashing)  # it received our BYE
    assert_sipp_ok(fine)
    outcomes = sorted(o.value for o in source.ended.values())
    assert outcomes == ["closed", "crashed"]
    for call_id, outcome in source.ended.items():
        report = read_report(tmp_path, call_id)
        if outcome is JobOutcome.CRASHED:
            assert report["supervisor"]["returncode"] == 3
            assert report["close"]["reason"] == "job_crashed"
        else:
            assert report["close"]["reason"] == "participant_disconnected"
            assert report["sip"]["rtp"]["loud_packets_out"] > 25
        assert report["close"]["open_connections_after"] == 0


async def test_full_worker_answers_503(tmp_path: Path, workdir: Path) -> None:
    worker, source, task = await start_worker(tmp_path, max_jobs=1, llm=(LONG_REPLY,))
    try:
        busy = asyncio.ensure_future(run_sipp(workdir, "uac_bye_mid_reply.xml", source.port))
        for _ in range(100):
            if worker.active_jobs == 1:
                break
            await asyncio.sleep(0.05)
        turned_away = await run_sipp(workdir, "uac_expect_503.xml", source.port, timeout_s=10)
        first = await busy
    finally:
        assert await stop_worker(worker, task) == 0
    assert_sipp_ok(turned_away)
    assert_sipp_ok(first)
    assert [reason for _, reason in source.rejected] == ["busy"]
    assert list(source.ended.values()) == [JobOutcome.CLOSED]


async def test_draining_worker_answers_503_and_lets_the_call_finish(
    tmp_path: Path, workdir: Path
) -> None:
    worker, source, task = await start_worker(tmp_path, llm=(LONG_REPLY,))
    try:
        call = asyncio.ensure_future(run_sipp(workdir, "uac_bye_mid_reply.xml", source.port))
        for _ in range(100):
            if worker.active_jobs == 1:
                break
            await asyncio.sleep(0.05)
        worker.stop()  # drain: the live call goes on, new INVITEs are turned away
        turned_away = await run_sipp(workdir, "uac_expect_503.xml", source.port, timeout_s=10)
        result = await call
        done, _ = await asyncio.wait({task}, timeout=15.0)
        assert done, "the drained worker did not stop"
    finally:
        if not task.done():
            await stop_worker(worker, task)
    assert task.result() == 0
    assert_sipp_ok(turned_away)
    assert_sipp_ok(result)
    assert list(source.ended.values()) == [JobOutcome.CLOSED]
    assert only_report(tmp_path, source)["close"]["reason"] == "participant_disconnected"

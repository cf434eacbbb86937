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
    sip.setdefault("rtp_timeout_s", 5.0)
    source = SipCallSource(SipSourceConfig(host=HOST, port=0, **sip))
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
    assert await worker.wait_ready(30.0), "the worker never took calls"  # pool warm, serving
    assert worker.state is WorkerState.RUNNING and worker.pool.idle_count == max_jobs
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
    report, source = await one_call(tmp_path, workdir, "uac_bye_mid_reply.xml", llm=(LONG_REPLY,))
    assert report["supervisor"]["outcome"] == "closed"
    assert report["supervisor"]["prewarmed"] is True
    assert report["job"]["pid"] != os.getpid()  # the session ran in the job process
    close = report["close"]
    assert close["reason"] == "participant_disconnected"
    assert close["open_connections_after"] == 0
    assert close["duration_ms"] <= 4000 and close["abandoned"] == []
    sip = report["sip"]
    assert sip["disconnect_reason"] == "hangup"
    # The signaling side, in the standalone server's words (docs/sip.md).
    assert sip["ended_by"] == "caller_bye" and sip["dialog_reason"] == "bye"
    assert sip["answered"] is True and sip["codec"] == "PCMU"
    assert sip["source"].startswith(f"{HOST}:") and sip["from"].startswith("sip:sipp@")
    assert sip["talk_s"] > 1.0 and 0 <= sip["ring_s"] < 5.0
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
    report, _ = await one_call(
        tmp_path,
        workdir,
        "uac_answer_bye.xml",
        ladder=ladder,
        llm=after_first_turn("block", seconds=60),
    )
    sup = report["supervisor"]
    assert sup["outcome"] == JobOutcome.KILLED_AFTER_SIGTERM.value, sup
    assert sup["unresponsive"] is True and sup["returncode"] == -15
    times = sup["rung_times_ms"]
    # Unresponsive after 1 s without heartbeats: SIGTERM at once, and it ends the job.
    assert times["ended"] - times["sigterm_sent"] <= (ladder.sigterm_timeout + 1.0) * 1000
    assert report["close"]["reason"] == "job_killed_after_sigterm"
    assert report["close"]["open_connections_after"] == 0
    # The job could not report: the worker's sip block still says how the call ended.
    assert report["sip"]["ended_by"] == "error" and report["sip"]["answered"] is True


async def test_blocked_job_after_caller_bye_is_killed_within_the_close_timeout(
    tmp_path: Path, workdir: Path
) -> None:
    # Heartbeats are not missed for long enough (timeout 30 s) before the caller's BYE:
    # the close request, then the ladder, must end it.
    ladder = LadderConfig(job_close_timeout=2.0, sigterm_timeout=0.5, heartbeat_timeout=30.0)
    # sipp passes only if its BYE was answered: the worker's signaling does so at once.
    report, _ = await one_call(
        tmp_path,
        workdir,
        "uac_bye_mid_reply.xml",
        ladder=ladder,
        llm=after_first_turn("block", seconds=60),
    )
    sup = report["supervisor"]
    assert sup["outcome"] == JobOutcome.KILLED_AFTER_SIGTERM.value, sup
    times = sup["rung_times_ms"]
    assert times["ended"] - times["close_requested"] <= BOUND * 1000
    assert report["sip"]["ended_by"] == "caller_bye"


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
            assert report["sip"]["ended_by"] == "error"
        else:
            assert report["close"]["reason"] == "participant_disconnected"
            assert report["sip"]["rtp"]["loud_packets_out"] > 25
            assert report["sip"]["ended_by"] == "caller_bye"
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
    report = only_report(tmp_path, source)
    assert report["close"]["reason"] == "participant_disconnected"
    assert report["sip"]["ended_by"] == "caller_bye"


@pytest.mark.parametrize(
    ("scenario", "worker", "ended_by", "room"),
    [
        # The agent's tool ends the call: the session closes first, we send BYE.
        ("uac_answer_bye.xml", {"llm": after_first_turn("hang_up")}, "agent_hangup", None),
        # The caller goes silent (and never hangs up): RTP timeout, we send BYE.
        ("uac_no_bye.xml", {"llm": (LONG_REPLY,), "rtp_timeout_s": 2.0}, "rtp_timeout", "timeout"),
        # The call outlasts max_call_s: we hang up.
        (
            "uac_answer_bye.xml",
            {"llm": (LONG_REPLY,), "max_call_s": 3.0},
            "max_duration",
            "room_closed",
        ),
    ],
    ids=["agent_hangup", "rtp_timeout", "max_duration"],
)
async def test_our_side_ends_the_call_and_the_report_says_how(
    tmp_path: Path,
    workdir: Path,
    scenario: str,
    worker: dict[str, Any],
    ended_by: str,
    room: str | None,
) -> None:
    report, _ = await one_call(tmp_path, workdir, scenario, **worker)
    sip = report["sip"]
    assert (sip["ended_by"], sip["disconnect_reason"]) == (ended_by, room), sip
    assert sip["dialog_reason"] is None  # the dialog was up until our BYE
    assert sip["answered"] is True
    assert report["supervisor"]["outcome"] == "closed"
    assert report["close"]["open_connections_after"] == 0


async def test_forced_stop_mid_call_reports_server_shutdown(tmp_path: Path, workdir: Path) -> None:
    worker, source, task = await start_worker(tmp_path, llm=(LONG_REPLY,))
    try:
        call = asyncio.ensure_future(run_sipp(workdir, "uac_answer_bye.xml", source.port))
        for _ in range(200):
            if source.answered == 1:
                break
            await asyncio.sleep(0.05)
        assert source.answered == 1
        worker.stop()
        worker.stop()  # force: every job is asked to close (job_shutdown), the caller gets BYE
        result = await call
    finally:
        assert await stop_worker(worker, task) == 0
    assert_sipp_ok(result)
    report = only_report(tmp_path, source)
    assert report["supervisor"]["close_requests"] == ["job_shutdown"]
    assert report["sip"]["ended_by"] == "server_shutdown"


# A caller that never ACKs our 200 OK (a spoofed INVITE, say): it answers the BYE the
# SIP core may send when the ACK timer (64·T1) fires, and is done either way.
UAC_NO_ACK = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="voxlane uac: no ACK">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <recv request="BYE" timeout="15000" ontimeout="done"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="done"/>
</scenario>
"""


async def test_unacked_invite_reports_no_ack(tmp_path: Path, workdir: Path) -> None:
    (workdir / "uac_worker_no_ack.xml").write_text(UAC_NO_ACK)
    # T1 = 50 ms: the ACK timer fires after 3.2 s; RTP may stay silent for longer.
    report, source = await one_call(
        tmp_path, workdir, "uac_worker_no_ack.xml", t1=0.05, rtp_timeout_s=30.0, llm=(LONG_REPLY,)
    )
    sip = report["sip"]
    assert sip["ended_by"] == "no_ack", sip
    assert sip["answered"] is False  # 200 OK sent, never ACKed
    assert report["close"]["open_connections_after"] == 0
    assert source.answered == 1

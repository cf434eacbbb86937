"""Real job processes under the supervisor: blocked loops, crashes, hanging callbacks.

Each test runs an in-process ``Worker`` on the misbehaving test agent with synthetic calls
(the call's LLM script picks the misbehaving tool) and a short ``job_close_timeout`` (2 s)
to keep the suite fast; the bound checked is the same: ``job_close_timeout`` + 1 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from voxlane.core.supervision import JobOutcome, LadderConfig
from voxlane.worker.synthetic import SyntheticCall

from .helpers import (
    FAST_LADDER,
    GREETING,
    make_worker,
    read_report,
    run_bounded,
    tool_call,
)

pytestmark = pytest.mark.real_time
BOUND = FAST_LADDER.job_close_timeout + 1.0


async def test_loop_blocking_tool_is_killed_on_time(tmp_path: Path) -> None:
    calls = [
        SyntheticCall(
            call_id="blocked", hangup_after=1.0, turns=(), llm=(tool_call("block", seconds=60),)
        ),
        SyntheticCall(
            call_id="deaf",
            hangup_after=1.0,
            turns=(),
            llm=(tool_call("ignore_sigterm_and_block", seconds=60),),
        ),
    ]
    worker, source = make_worker(tmp_path, calls)
    assert await run_bounded(worker, 20.0) == 0

    for call_id, outcome in [
        ("blocked", JobOutcome.KILLED_AFTER_SIGTERM),
        ("deaf", JobOutcome.KILLED_AFTER_SIGKILL),
    ]:
        report = read_report(tmp_path, call_id)
        sup = report["supervisor"]
        assert sup["outcome"] == outcome.value, sup
        times = sup["rung_times_ms"]
        assert times["ended"] - times["close_requested"] <= BOUND * 1000
        assert sup["reaped"] and not sup["reported"]
        assert report["close"]["reason"] == f"job_{outcome.value}"
        assert report["close"]["open_connections_after"] == 0
        assert source.ended[call_id] is outcome  # the source was told: it hangs up
    assert read_report(tmp_path, "deaf")["supervisor"]["returncode"] == -9
    assert read_report(tmp_path, "blocked")["supervisor"]["returncode"] == -15


async def test_unresponsive_job_is_killed_without_a_hangup(tmp_path: Path) -> None:
    ladder = LadderConfig(job_close_timeout=2.0, sigterm_timeout=0.5, heartbeat_timeout=1.0)
    calls = [
        SyntheticCall(
            call_id="stuck", hangup_after=60.0, turns=(), llm=(tool_call("block", seconds=60),)
        )
    ]
    worker, source = make_worker(tmp_path, calls, ladder=ladder)
    assert await run_bounded(worker, 15.0) == 0
    sup = read_report(tmp_path, "stuck")["supervisor"]
    assert sup["outcome"] == "killed_after_sigterm"
    assert sup["unresponsive"] is True
    assert "close_requested" not in sup["rung_times_ms"]  # no point asking a blocked loop
    assert source.ended["stuck"] is JobOutcome.KILLED_AFTER_SIGTERM


async def test_crash_mid_call_is_reported_and_others_unaffected(tmp_path: Path) -> None:
    calls = [
        SyntheticCall(
            call_id="crashing", hangup_after=2.0, turns=(), llm=(tool_call("crash", code=3),)
        ),
        SyntheticCall(call_id="fine", hangup_after=2.0, turns=(), llm=(GREETING,)),
    ]
    worker, source = make_worker(tmp_path, calls)
    assert await run_bounded(worker, 15.0) == 0
    crashed = read_report(tmp_path, "crashing")
    assert crashed["supervisor"]["outcome"] == "crashed"
    assert crashed["supervisor"]["returncode"] == 3
    assert crashed["close"]["reason"] == "job_crashed"
    fine = read_report(tmp_path, "fine")
    assert fine["supervisor"]["outcome"] == "closed"
    assert fine["close"]["reason"] == "participant_disconnected"
    assert fine["close"]["open_connections_after"] == 0
    assert [m["text"] for m in fine["history"]] == [GREETING["text"]]
    assert source.ended == {"crashing": JobOutcome.CRASHED, "fine": JobOutcome.CLOSED}


async def test_hanging_shutdown_callback_is_bounded(tmp_path: Path) -> None:
    calls = [
        SyntheticCall(
            call_id="hang",
            hangup_after=1.0,
            turns=(),
            llm=(GREETING,),
            metadata={"hang_shutdown": True, "ok_shutdown": True},
        )
    ]
    worker, _ = make_worker(tmp_path, calls, shutdown_timeout=0.5)
    assert await run_bounded(worker, 15.0) == 0
    report = read_report(tmp_path, "hang")
    assert report["supervisor"]["outcome"] == "closed"
    callbacks = {c["name"].rsplit(".", 1)[-1]: c for c in report["job"]["shutdown_callbacks"]}
    assert callbacks["hang_forever"]["outcome"] == "timeout"
    assert callbacks["quick"]["outcome"] == "ok"
    # hangup → session closed → callbacks bounded by 0.5 s → report → exit
    assert report["supervisor"]["close_duration_ms"] < 0.5 * 1000 + 1000


async def test_hangup_before_a_cold_job_started_still_reports(tmp_path: Path) -> None:
    calls = [SyntheticCall(call_id="early", hangup_after=0.0, turns=(), llm=(GREETING,))]
    worker, source = make_worker(tmp_path, calls, prewarm=0)
    assert await run_bounded(worker, 15.0) == 0
    report = read_report(tmp_path, "early")
    assert report["supervisor"]["outcome"] == "closed"
    assert report["supervisor"]["reported"] is True
    assert report["supervisor"]["prewarmed"] is False
    assert report["close"]["reason"] == "participant_disconnected"
    assert source.ended["early"] is JobOutcome.CLOSED


async def test_garbled_channel_ends_the_job_through_the_ladder(tmp_path: Path) -> None:
    calls = [
        SyntheticCall(call_id="garbled", hangup_after=30.0, turns=(), llm=(tool_call("garble"),))
    ]
    worker, source = make_worker(tmp_path, calls)
    assert await run_bounded(worker, 15.0) == 0
    sup = read_report(tmp_path, "garbled")["supervisor"]
    assert "max" in sup["protocol_error"]
    assert sup["close_requests"] == ["protocol_error"]
    assert sup["outcome"] in ("closed", "killed_after_sigterm")
    assert source.ended["garbled"].value == sup["outcome"]


async def test_tools_see_their_job_context(tmp_path: Path) -> None:
    calls = [SyntheticCall(call_id="me", hangup_after=1.5, turns=(), llm=(tool_call("whoami"),))]
    worker, _ = make_worker(tmp_path, calls)
    assert await run_bounded(worker, 15.0) == 0
    report = read_report(tmp_path, "me")
    assert report["supervisor"]["outcome"] == "closed"
    assert [m["text"] for m in report["history"] if m["role"] == "tool"] == ["me"]

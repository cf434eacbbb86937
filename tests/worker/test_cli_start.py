"""``voxlane start`` as a real worker process: SIGTERM drains 5 active calls, a second
signal forces, reports for all, exit 0; offers during the drain are rejected."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sip.sipp import HAVE_SIPP, HOST, SippResult, free_udp_port, prepare_workdir, run_sipp
from voxlane.cli.main import main

from .helpers import AGENT

RECEPTIONIST = Path(__file__).parents[2] / "examples" / "receptionist.py"
GATED = Path(__file__).parent / "agents" / "gated.py"

CALLS = 5


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "voxlane.cli.main", "start", str(AGENT),
           "--reports", str(tmp_path / "reports"), "--metrics-port", "0",
           "--max-jobs", str(CALLS), "--synthetic", str(CALLS), *extra]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())


def _line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError("no output from the worker in time")
        return dict(json.loads(proc.stdout.readline()))
    finally:
        sel.close()


def _metric(port: int, name: str) -> float:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def _health(port: int) -> tuple[int, str]:
    """/healthz: status and body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return int(resp.status), resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode().strip()


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _no_line(proc: subprocess.Popen[str], timeout: float) -> bool:
    """Nothing more on the worker's stdout within ``timeout``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        return not sel.select(timeout)


def _wait_active(proc: subprocess.Popen[str], port: int, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _metric(port, "voxlane_active_jobs") == n:
            return
        assert proc.poll() is None, "worker exited early"
        time.sleep(0.1)
    raise AssertionError(f"never {n} active jobs")


def _stop_and_wait(proc: subprocess.Popen[str], timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
        raise AssertionError(f"worker did not exit within {timeout} s") from None


def _reports(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "reports").glob("*.json"))]


def test_sigterm_drains_active_calls(tmp_path: Path) -> None:
    drain = 6.0
    proc = _start(tmp_path, "--call-seconds", "3", "--drain-timeout", str(drain))
    try:
        port = int(_line(proc, 30)["metrics_port"])
        _wait_active(proc, port, CALLS, 20)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = _stop_and_wait(proc, drain + 10)
        elapsed = time.monotonic() - t0
        stopped = _line(proc, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert code == 0
    assert elapsed < drain + 5.0 + 1.0
    reports = _reports(tmp_path)
    assert len(reports) == CALLS
    assert {r["supervisor"]["outcome"] for r in reports} == {"closed"}
    assert {r["close"]["reason"] for r in reports} == {"participant_disconnected"}
    assert all(r["close"]["open_connections_after"] == 0 for r in reports)
    assert stopped["jobs"] == CALLS and stopped["reports"] == CALLS
    assert stopped["rejected"] >= 1  # the synthetic network redialled while we drained


def test_second_signal_forces_at_once(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--call-seconds", "60", "--drain-timeout", "60")
    try:
        port = int(_line(proc, 30)["metrics_port"])
        _wait_active(proc, port, CALLS, 20)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        code = _stop_and_wait(proc, 15)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert code == 0
    assert elapsed < 5.0 + 1.5  # job_close_timeout + slack, not the 60 s drain
    reports = _reports(tmp_path)
    assert len(reports) == CALLS
    assert {r["supervisor"]["outcome"] for r in reports} == {"closed"}
    assert all(r["supervisor"]["close_requests"] == ["job_shutdown"] for r in reports)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--sip", "127.0.0.1:5060", "--synthetic", "1"],
        ["--sip", "nowhere"],
        ["--sip", "127.0.0.1:0", "--rtp-ports", "a-b"],
    ],
)
def test_start_needs_exactly_one_valid_call_source(
    tmp_path: Path, capsys: Any, args: list[str]
) -> None:
    assert main(["start", str(AGENT), "--reports", str(tmp_path), *args]) == 2
    assert "voxlane start:" in capsys.readouterr().err


@contextlib.contextmanager
def _sip_worker_call(
    tmp_path: Path, agent: Path, scenario: str, *extra: str
) -> Iterator[tuple[SippResult, subprocess.Popen[str], dict[str, Any]]]:
    """Start ``voxlane start --sip`` on a free port, wait for its started line (it takes
    calls from then on), place one sipp call; yield sipp's result, the running worker and
    its started line. The worker is killed (by PID) on the way out if the test did not
    stop it."""
    (tmp_path / "sipp").mkdir()
    workdir = prepare_workdir(tmp_path / "sipp")
    cmd = [sys.executable, "-m", "voxlane.cli.main", "start", str(agent),
           "--reports", str(tmp_path / "reports"), "--metrics-port", "0", "--max-jobs", "2",
           "--sip", f"{HOST}:0", *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        started = _line(proc, 60)
        sip_port = int(started["sip"].rpartition(":")[2])
        result = asyncio.run(run_sipp(workdir, scenario, sip_port, timeout_s=40))
        yield result, proc, started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.skipif(not HAVE_SIPP, reason="sipp (sip-tester) not installed")
def test_sip_calls_through_voxlane_start(tmp_path: Path) -> None:
    """``voxlane start --sip``: a real sipp call mid-reply hangup, then SIGTERM; the call's
    job reports a clean close, /metrics counts it, the worker exits 0."""
    with _sip_worker_call(tmp_path, AGENT, "uac_bye_mid_reply.xml", "--rtp-timeout", "5") as (
        result,
        proc,
        started,
    ):
        metrics_port = int(started["metrics_port"])
        deadline = time.monotonic() + 5
        while _metric(metrics_port, 'voxlane_jobs_total{outcome="closed"}') < 1:
            assert time.monotonic() < deadline, "the call's job never ended"
            time.sleep(0.1)
        assert _metric(metrics_port, "voxlane_open_provider_connections") == 0
        proc.send_signal(signal.SIGTERM)
        code = _stop_and_wait(proc, 15)
        stopped = _line(proc, 5)
    assert result.returncode == 0, result.errors or result.stdout
    assert code == 0
    assert stopped["outcomes"] == {"closed": 1}
    (report,) = _reports(tmp_path)
    assert report["close"]["reason"] == "participant_disconnected"
    assert report["close"]["open_connections_after"] == 0
    assert report["sip"]["rtp"]["loud_packets_out"] > 25
    assert report["job"]["pid"] != proc.pid


@pytest.mark.skipif(not HAVE_SIPP, reason="sipp (sip-tester) not installed")
def test_started_is_announced_once_calls_are_taken(tmp_path: Path) -> None:
    """While the job pool warms (the gated agent file holds every job process's import),
    /healthz says "starting" (503), INVITEs are turned away with 503, and nothing is
    announced; once warm, "started" — and the very first INVITE after it is answered."""
    gate = tmp_path / "gate"
    workdir = prepare_workdir(tmp_path)
    metrics_port, sip_port = _free_tcp_port(), free_udp_port()
    cmd = [sys.executable, "-m", "voxlane.cli.main", "start", str(GATED),
           "--reports", str(tmp_path / "reports"), "--metrics-port", str(metrics_port),
           "--max-jobs", "1", "--sip", f"{HOST}:{sip_port}", "--report-mode", "0640"]  # fmt: skip
    env = {**os.environ, "VOXLANE_TEST_GATE": str(gate)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:  # until the metrics server listens
            try:
                health = _health(metrics_port)
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline and proc.poll() is None, "no /healthz"
                time.sleep(0.1)
        assert health == (503, "starting")
        turned_away = asyncio.run(run_sipp(workdir, "uac_expect_503.xml", sip_port, timeout_s=10))
        assert turned_away.returncode == 0, turned_away.errors or turned_away.stdout
        assert _no_line(proc, 0.5), "announced before it takes calls"
        assert _health(metrics_port) == (503, "starting")

        gate.touch()  # the job process finishes loading the agent: the pool is warm
        started = _line(proc, 60)
        assert started["event"] == "started" and started["sip"] == f"{HOST}:{sip_port}"
        assert _health(metrics_port) == (200, "ok")
        first = asyncio.run(run_sipp(workdir, "uac_bye_mid_reply.xml", sip_port, timeout_s=40))
        assert first.returncode == 0, first.errors or first.stdout  # 200 OK, not 503
        proc.send_signal(signal.SIGTERM)
        assert _stop_and_wait(proc, 15) == 0
        stopped = _line(proc, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert stopped["outcomes"] == {"closed": 1} and stopped["rejected"] == 1
    (path,) = (tmp_path / "reports").glob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # --report-mode
    assert json.loads(path.read_text())["sip"]["ended_by"] == "caller_bye"


def test_loop_blocking_tool_is_killed_within_the_default_close_timeout(tmp_path: Path) -> None:
    """The acceptance check, end to end: default ``job_close_timeout`` (5 s)."""
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps({"turns": [], "llm": [{"tool_calls": [["block", {"seconds": 60}]]}]})
    )
    proc = _start(tmp_path, "--synthetic-script", str(script), "--synthetic-total", "1",
                  "--call-seconds", "1")  # fmt: skip
    try:
        _line(proc, 30)
        code = _stop_and_wait(proc, 20)
        stopped = _line(proc, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert code == 0
    assert stopped["outcomes"] == {"killed_after_sigterm": 1}
    (report,) = _reports(tmp_path)
    sup = report["supervisor"]
    assert sup["outcome"] == "killed_after_sigterm"
    assert sup["job_close_timeout_s"] == 5.0
    times = sup["rung_times_ms"]
    assert times["ended"] - times["close_requested"] <= (5.0 + 1.0) * 1000


@pytest.mark.skipif(not HAVE_SIPP, reason="sipp (sip-tester) not installed")
def test_sip_calls_through_voxlane_start_on_real_engines(tmp_path: Path) -> None:
    """``voxlane start --sip --providers local`` with the example receptionist: the worker
    runs the gateway and the LLM server, the call's job process connects to them; the
    caller speaks, is heard, hears a reply, hangs up during it."""
    pytest.importorskip("faster_whisper")
    pytest.importorskip("llama_cpp")
    with _sip_worker_call(
        tmp_path, RECEPTIONIST, "uac_bye_late.xml", "--providers", "local", "--rtp-timeout", "15"
    ) as (result, proc, _):
        proc.send_signal(signal.SIGTERM)
        code = _stop_and_wait(proc, 20)
    assert result.returncode == 0, result.errors or result.stdout
    assert code == 0
    (report,) = _reports(tmp_path)
    assert report["supervisor"]["outcome"] == "closed"
    assert report["close"]["reason"] == "participant_disconnected"
    assert report["close"]["open_connections_after"] == 0
    steps = {s["name"] for s in report["close"]["steps"]}
    assert {"close gateway-stt", "close silero-vad"} <= steps  # real providers, in the job
    users = " ".join(m["text"] for m in report["history"] if m["role"] == "user").lower()
    assert "tonight" in users or "table" in users, report["history"]
    assert any(m["role"] == "assistant" and m["text"].strip() for m in report["history"]), report[
        "history"
    ]
    assert report["sip"]["rtp"]["loud_packets_out"] > 25  # piper's voice, over RTP


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for an adoptive parent to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_job_processes_end_when_the_worker_is_killed(tmp_path: Path) -> None:
    """No orphans: a SIGKILLed worker's job processes see EOF on their channel and end."""
    proc = _start(tmp_path, "--call-seconds", "60", "--prewarm", "1")
    try:
        port = int(_line(proc, 30)["metrics_port"])
        _wait_active(proc, port, CALLS, 20)
        children = [
            int(p)
            for task in Path(f"/proc/{proc.pid}/task").iterdir()
            for p in (task / "children").read_text().split()
        ]
        assert len(children) >= CALLS
        proc.kill()
        proc.wait(5)
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        left = [p for p in children if _alive(p)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"job processes outlived their worker: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)

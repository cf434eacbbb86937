"""``voxlane sip`` as a process: it answers a sipp call, and SIGTERM mid-call is a bounded
shutdown (the caller gets a BYE, the report is written, exit status 0)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .sipp import HAVE_SIPP, HOST, free_udp_port, prepare_workdir

REPO = Path(__file__).parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_SIPP, reason="sipp (sip-tester) not installed"),
]


def read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The process's next stdout line, or "" at the deadline."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            return ""
    return proc.stdout.readline()


def test_sigterm_mid_call_hangs_up_reports_and_exits_0(tmp_path: Path) -> None:
    workdir = prepare_workdir(tmp_path)
    reports = tmp_path / "reports"
    server = subprocess.Popen(
        [sys.executable, "-m", "voxlane.cli.main", "sip", "--host", HOST, "--port", "0",
         "--reports", str(reports), str(REPO / "examples" / "receptionist.py")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sipp: subprocess.Popen[str] | None = None
    try:
        line = read_line(server, 20)
        assert line.startswith("voxlane sip: listening on "), line
        port = int(line.rsplit(":", 1)[1])
        sipp = subprocess.Popen(
            ["sipp", "-sf", "uac_answer_bye.xml", "-s", "agent", "-i", HOST, "-mi", HOST,
             "-p", str(free_udp_port()), "-mp", str(free_udp_port()), "-m", "1", "-l", "1",
             "-timeout", "30s", "-timeout_error", "-nostdin", f"{HOST}:{port}"],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        time.sleep(2.0)  # the call is up and both sides are talking
        assert sipp.poll() is None
        t0 = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
        assert time.monotonic() - t0 < 8.0  # close budget 4 s + shutdown margin
        assert server.returncode == 0, server.stderr.read() if server.stderr else ""
        assert sipp.wait(timeout=15) == 0  # sipp got our BYE and answered it
    finally:
        for proc in (server, sipp):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
    (path,) = reports.glob("*.json")
    report = json.loads(path.read_text())
    assert report["sip"]["ended_by"] == "server_shutdown"
    assert report["close"]["open_connections_after"] == 0
    assert report["close"]["reason"] == "participant_disconnected"

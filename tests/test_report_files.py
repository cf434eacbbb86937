"""Reports hold transcripts: every runner writes them owner-only (0600) unless told
otherwise (``--report-mode``), whatever the umask — the writer itself, ``voxlane demo``
(report.json and the call recording), and ``voxlane sip`` against the real sipp. The
worker's job reports: tests/worker/test_report_files.py."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sip.sipp import HAVE_SIPP, HOST, prepare_workdir, run_sipp
from voxlane.cli.main import main
from voxlane.runners.sip_server import SipServerConfig
from voxlane.voice.report import REPORT_MODE, report_file_name, write_json_durably

ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "examples" / "receptionist.py"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: a mode on disk is then the one the writer chose."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_report_file_names_stay_inside_the_reports_dir() -> None:
    """One rule for every runner that names a report after a call (``voxlane sip``, the
    worker): a Call-ID comes from the network and may hold ``/`` and ``..``."""
    assert report_file_name("1-2345@127.0.0.1") == "1-2345@127.0.0.1.json"  # sipp's: as is
    assert report_file_name("../../etc/x") == ".._.._etc_x.json"
    assert report_file_name("a b\x00\\c/é") == "a_b__c__.json"
    assert report_file_name("") == ".json"
    assert report_file_name("a" * 300) == "a" * 200 + ".json"  # within NAME_MAX


def test_the_writer_sets_exactly_the_mode(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "deep" / "r.json"
    write_json_durably(path, {"a": 1})
    assert REPORT_MODE == 0o600 and mode_of(path) == 0o600
    write_json_durably(path, {"a": 2}, mode=0o640)
    assert mode_of(path) == 0o640 and json.loads(path.read_text()) == {"a": 2}
    path.chmod(0o644)  # a report left by an older version: replaced with the new mode
    write_json_durably(path, {"a": 3})
    assert mode_of(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left
    assert SipServerConfig().report_mode == 0o600


@pytest.mark.parametrize(("option", "expected"), [([], 0o600), (["--report-mode", "0640"], 0o640)])
def test_demo_writes_its_report_and_recording_with_the_report_mode(
    tmp_path: Path, open_umask: None, option: list[str], expected: int
) -> None:
    argv = ["demo", "--fake", "--fast", "--out", str(tmp_path), "--agent", str(AGENT), *option]
    assert main(argv) == 0
    assert mode_of(tmp_path / "report.json") == expected
    assert mode_of(tmp_path / "call.wav") == expected


def _line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_SIPP, reason="sipp (sip-tester) not installed")
@pytest.mark.parametrize(("option", "expected"), [([], 0o600), (["--report-mode", "640"], 0o640)])
def test_voxlane_sip_writes_call_reports_with_the_report_mode(
    tmp_path: Path, open_umask: None, option: list[str], expected: int
) -> None:
    """A call cancelled while ringing still gets its report (session_id null)."""
    workdir = prepare_workdir(tmp_path)
    reports = tmp_path / "reports"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voxlane.cli.main",
            "sip",
            "--host",
            HOST,
            "--port",
            "0",
            "--answer-delay",
            "3",
            "--reports",
            str(reports),
            *option,
            str(AGENT),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = _line(server, 30)
        assert line.startswith("voxlane sip: listening on "), line
        port = int(line.rsplit(":", 1)[1])
        result = asyncio.run(run_sipp(workdir, "uac_cancel.xml", port, timeout_s=15))
        assert result.returncode == 0, result.errors or result.stdout
        for _ in range(100):  # the report is written as the call ends
            if list(reports.glob("*.json")):
                break
            time.sleep(0.05)
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait(timeout=5)
    (path,) = reports.glob("*.json")
    assert json.loads(path.read_text())["sip"]["ended_by"] == "cancel"
    assert mode_of(path) == expected

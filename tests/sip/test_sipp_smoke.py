"""Smoke runs of the sipp scenarios against the pure SIP layer over real UDP (loopback).

Skipped when sipp (Debian package ``sip-tester``) is not installed. Each run starts the
test UAS (tests/sip/udp_uas.py) and one sipp, both bounded by timeouts, and ends them
by their own handles only.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .pcap_audio import synthesize, tone, write_audio_pcap

SCENARIOS = Path(__file__).parent / "scenarios"
REPO = Path(__file__).parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed"),
]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scenarios copied next to their pcap (where sipp looks for it first)."""
    path = tmp_path_factory.mktemp("sipp")
    speech = synthesize("Hello. I would like to book a table for two, tonight.")
    write_audio_pcap(path / "hello_pcmu.pcap", speech if speech is not None else tone(2.5))
    for xml in SCENARIOS.glob("*.xml"):
        shutil.copy(xml, path / xml.name)
    return path


def run_call(workdir: Path, scenario: str, *uas_args: str) -> tuple[int, str, dict[str, object]]:
    sip_port, sipp_port = free_udp_port(), free_udp_port()
    uas = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.sip.udp_uas",
            "--port",
            str(sip_port),
            "--duration",
            "25",
            "--exit-after-calls",
            "1",
            *uas_args,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sipp = subprocess.run(
            [
                "sipp",
                "-sf",
                scenario,
                "-s",
                "agent",
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                str(sipp_port),
                "-mp",
                str(free_udp_port()),
                "-m",
                "1",
                "-l",
                "1",
                "-timeout",
                "30s",
                "-timeout_error",
                "-nostdin",
                "-trace_err",
                f"127.0.0.1:{sip_port}",
            ],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=40,
        )
        out, err = uas.communicate(timeout=30)
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait(timeout=5)
    assert uas.returncode == 0, err
    report = json.loads(out)
    calls = report["calls"]
    assert isinstance(calls, dict) and len(calls) == 1
    (call,) = calls.values()
    assert "internal_errors=0" in str(report["statistics"])
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    return sipp.returncode, errors, call


def test_caller_talks_then_hangs_up(workdir: Path) -> None:
    rc, errors, call = run_call(workdir, "uac_pcap_bye.xml")
    assert rc == 0, errors
    assert call["reason"] == "bye" and call["codec"] == "PCMU"
    assert float(call["audio_in_s"]) > 2.0 and int(call["peak"]) > 1000  # type: ignore[arg-type]
    assert call["lost"] == 0


def test_caller_cancels_before_answer(workdir: Path) -> None:
    rc, errors, call = run_call(workdir, "uac_cancel.xml", "--answer-delay", "2")
    assert rc == 0, errors
    assert call["reason"] == "cancel"


def test_silent_caller_is_hung_up_on_rtp_timeout(workdir: Path) -> None:
    rc, errors, call = run_call(workdir, "uac_no_bye.xml", "--rtp-timeout", "1.5")
    assert rc == 0, errors
    assert call["reason"] == "rtp_timeout"


def test_agent_hangs_up_and_caller_answers_bye(workdir: Path) -> None:
    rc, errors, call = run_call(workdir, "uac_answer_bye.xml", "--hangup-after", "1.0")
    assert rc == 0, errors
    assert call["reason"] == "agent_hangup"

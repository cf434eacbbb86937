"""Run the real sipp (Debian ``sip-tester``) as a caller from async tests, on 127.0.0.1.

Every run is bounded: sipp gets its own ``-timeout`` and the test waits a little longer;
a sipp still running then is killed by its PID (never by name).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from .pcap_audio import synthesize, tone, write_audio_pcap

SCENARIOS = Path(__file__).parent / "scenarios"
HOST = "127.0.0.1"
HAVE_SIPP = shutil.which("sipp") is not None


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def prepare_workdir(path: Path) -> Path:
    """Scenarios copied next to the speech pcap (where sipp looks for it)."""
    speech = synthesize("Hello. I would like to book a table for two, tonight.")
    write_audio_pcap(path / "hello_pcmu.pcap", speech if speech is not None else tone(3.5))
    for xml in SCENARIOS.glob("*.xml"):
        shutil.copy(xml, path / xml.name)
    return path


def read_errors(workdir: Path, scenario: str, pid: int) -> str:
    """sipp's ``-trace_err`` log of one run (small; read after sipp exited)."""
    return "".join(p.read_text(errors="replace")
                   for p in workdir.glob(f"{Path(scenario).stem}_{pid}_errors.log"))


@dataclass
class SippResult:
    returncode: int
    stdout: str
    errors: str  # the scenario's *_errors.log (from -trace_err)


async def run_sipp(workdir: Path, scenario: str, port: int, *, calls: int = 1,
                   limit: int = 1, rate: float = 10.0, timeout_s: float = 30.0,
                   service: str = "agent", media_ip: str = HOST,
                   keys: dict[str, str] | None = None) -> SippResult:
    """Place ``calls`` calls (at most ``limit`` at once, ``rate`` per second) to
    ``service``@127.0.0.1:``port`` with ``scenario``; returns when sipp exits or was killed.
    ``media_ip``: sipp's RTP address, written in its SDP (any 127.x.y.z works on Linux).
    ``keys``: sipp ``-key NAME VALUE`` pairs, ``[NAME]`` in the scenario."""
    extra = [arg for name, value in (keys or {}).items() for arg in ("-key", name, value)]
    proc = await asyncio.create_subprocess_exec(
        "sipp", "-sf", scenario, "-s", service, "-i", HOST, "-mi", media_ip, *extra,
        "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
        "-m", str(calls), "-l", str(limit), "-r", str(rate),
        "-timeout", f"{timeout_s:.0f}s", "-timeout_error", "-nostdin", "-trace_err",
        f"{HOST}:{port}",
        cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    comm = asyncio.ensure_future(proc.communicate())
    done, _ = await asyncio.wait({comm}, timeout=timeout_s + 10)
    if not done:
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait({comm}, timeout=5)
    out = comm.result()[0].decode(errors="replace") if comm.done() else ""
    errors = read_errors(workdir, scenario, proc.pid)
    return SippResult(proc.returncode if proc.returncode is not None else -9, out, errors)

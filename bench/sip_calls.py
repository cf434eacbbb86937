"""How many concurrent SIP calls this machine holds while keeping the RTP send jitter
p99 ≤ 5 ms — with fake providers, or with the real local pipeline (``--providers local``).

The voxlane SIP server runs in this process (real event loop). ``fake``: energy VAD/STT,
tone TTS. ``local``: Silero VAD, whisper STT and piper TTS on the embedded gateway (the
same process's engine threads/processes); the talking agent below reads a fixed text, so
no LLM is involved. The real sipp places the calls on 127.0.0.1 (so it shares the
machine's cores). Each call: the
caller streams ~3.5 s of G.711 speech, the agent talks without pause for the whole call
(non-interruptible, so every call sends RTP all the time), then sipp hangs up (BYE).

For each level N (calls held at once): ramp up, wait ``--settle`` s, then measure for
``--seconds`` s: the send jitter (each packet's send interval minus the 20 ms its
timestamp advanced, RFC 3550's D from the sender's side) over every packet of every call,
the event loop's lag (a 10 ms ticker's lateness) and this process's CPU. Levels go up
until the p99 exceeds the budget, a call fails, or ``--max`` is reached.

    python bench/sip_calls.py [--levels 25,50,100,150,200,250,300] [--seconds 8] [--json]
    python bench/sip_calls.py --providers local [--levels 1,2,3,4,6,8] [--json]

``--json`` prints exactly one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np

from voxlane import Agent
from voxlane.errors import SessionClosedError
from voxlane.runners.sip_server import Providers, SipServerConfig, serve_sip
from voxlane.testing import FakeLLM, FakeSTT, FakeTTS, FakeVAD

HOST = "127.0.0.1"
BUDGET_MS = 5.0
REPO = Path(__file__).resolve().parents[1]
TEXT = ("Thank you for calling. Let me read you our full menu and today's specials, slowly, "
        "so that you have all the time you need to choose what you would like to order. ")

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="voxlane bench: talk, listen, hang up after -d ms">
  <send retrans="500"><![CDATA[

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
a=ptime:20

]]></send>
  <recv response="100" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[

ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec play_pcap_audio="hello_pcmu.pcap"/></action></nop>
  <pause/>
  <send retrans="500"><![CDATA[

BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


class Talker(Agent):
    """Talks for the whole call, non-interruptible: every call sends RTP all the time."""

    def __init__(self) -> None:
        super().__init__(instructions="Read the menu.")

    async def on_enter(self) -> None:
        try:
            while True:
                await self.session.say(TEXT, allow_interruptions=False, add_to_history=False)
        except SessionClosedError:
            return  # the call ended


def fake_providers() -> Providers:
    return Providers(stt=FakeSTT(), vad=FakeVAD(), llm=FakeLLM(), tts=FakeTTS())


@contextlib.asynccontextmanager
async def open_providers(name: str) -> AsyncIterator[Callable[[], Providers]]:
    if name == "fake":
        yield fake_providers
        return
    from rich.console import Console

    from voxlane.cli.progress import dim_progress
    from voxlane.runners.stack import local_stack

    # The talker reads a fixed text: the LLM is never asked (no llama.cpp server needed).
    async with local_stack(progress=dim_progress(Console(stderr=True)), llm=FakeLLM()) as stack:
        shared = Providers(stt=stack.stt, vad=stack.vad, llm=stack.llm, tts=stack.tts)
        yield lambda: shared


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def lag_monitor(samples: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        expected = loop.time() + 0.01
        await asyncio.sleep(0.01)
        samples.append(max(0.0, loop.time() - expected) * 1000)


async def run_level(workdir: Path, n: int, settle: float, seconds: float,
                    providers: Callable[[], Providers]) -> dict[str, Any]:
    rate = 25.0
    hold_ms = int((n / rate + settle + seconds + 1.0) * 1000)
    server = await serve_sip(Talker, providers, SipServerConfig(
        host=HOST, port=0, max_calls=n + 5, rtp_timeout_s=30.0))
    proc = await asyncio.create_subprocess_exec(
        "sipp", "-sf", "bench.xml", "-s", "bench", "-i", HOST, "-mi", HOST,
        "-p", str(free_port()), "-mp", str(free_port()), "-m", str(n), "-l", str(n),
        "-r", str(rate), "-d", str(hold_ms), "-timeout", f"{hold_ms // 1000 + 30}s",
        "-timeout_error", "-nostdin", f"{HOST}:{server.port}",
        cwd=workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    stop = asyncio.Event()
    try:
        await asyncio.sleep(n / rate + settle)
        held = server.active_calls
        for stream in server.rtp_streams():
            stream.send_jitter.clear()
        lag_task = asyncio.ensure_future(lag_monitor(lags, stop))
        cpu0, t0 = time.process_time(), loop.time()
        await asyncio.sleep(seconds)
        cpu = (time.process_time() - cpu0) / (loop.time() - t0)
        stop.set()
        await asyncio.wait({lag_task}, timeout=1)
        streams = server.rtp_streams()
        jitter = np.array([abs(x) * 1000 for s in streams for x in s.send_jitter])
        spurts = sum(s.talkspurts for s in streams)
        waiter = asyncio.ensure_future(proc.wait())
        await asyncio.wait({waiter}, timeout=hold_ms / 1000 + 40)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
        await server.aclose()
    stats = server.statistics()
    return {
        "calls": n,
        "held": held,
        "packets_measured": int(jitter.size),
        "jitter_p50_ms": round(float(np.percentile(jitter, 50)), 3) if jitter.size else None,
        "jitter_p99_ms": round(float(np.percentile(jitter, 99)), 3) if jitter.size else None,
        "jitter_max_ms": round(float(jitter.max()), 3) if jitter.size else None,
        "talkspurts": spurts,  # one per reply segment (marker bit); not jitter
        "loop_lag_p99_ms": round(float(np.percentile(lags, 99)), 3) if lags else None,
        "server_cpu_fraction": round(cpu, 3),
        "sipp_returncode": proc.returncode,
        "calls_answered": stats.calls_answered,
        "listener_errors": stats.listener_errors,
    }


async def main_async(levels: list[int], settle: float, seconds: float,
                     providers_name: str) -> dict[str, Any]:
    async with open_providers(providers_name) as providers:
        return await _levels(levels, settle, seconds, providers_name, providers)


async def _levels(levels: list[int], settle: float, seconds: float, providers_name: str,
                  providers: Callable[[], Providers]) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.sip.pcap_audio import synthesize, tone, write_audio_pcap

    results: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]  # other processes on the machine skew the numbers
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        speech = synthesize("Hello. I would like to order a pizza for delivery, please.")
        write_audio_pcap(workdir / "hello_pcmu.pcap", speech if speech is not None else tone(3))
        (workdir / "bench.xml").write_text(SCENARIO)
        for n in levels:
            level = await run_level(workdir, n, settle, seconds, providers)
            log(json.dumps(level))
            results.append(level)
            p99 = level["jitter_p99_ms"]
            if p99 is None or p99 > BUDGET_MS or level["held"] < n:
                break
    ok = [r["calls"] for r in results
          if r["jitter_p99_ms"] is not None and r["jitter_p99_ms"] <= BUDGET_MS
          and r["held"] >= r["calls"]]
    return {
        "benchmark": "sip_calls",
        "providers": providers_name,
        "budget_jitter_p99_ms": BUDGET_MS,
        "max_calls_within_budget": max(ok, default=0),
        "cpus": os.cpu_count(),
        "loadavg_1m_before": round(load_before, 2),
        "levels": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--levels", default=None,
                        help="comma-separated concurrent call counts, tried in order "
                             "(default 25,50,...,300 with fakes, 1,2,3,4,6,8 local)")
    parser.add_argument("--providers", default="fake", choices=["fake", "local"])
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        log("sipp is not installed (Debian package sip-tester)")
        return 2
    logging.basicConfig(level=logging.ERROR)
    default = "25,50,100,150,200,250,300" if args.providers == "fake" else "1,2,3,4,6,8"
    levels = [int(x) for x in (args.levels or default).split(",") if x]
    result = asyncio.run(main_async(levels, args.settle, args.seconds, args.providers))
    if args.json:
        print(json.dumps(result))
    else:
        for level in result["levels"]:
            print(level)
        print(f"max concurrent calls with jitter p99 <= {BUDGET_MS} ms: "
              f"{result['max_calls_within_budget']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

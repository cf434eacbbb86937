"""Worker benchmark: job start latency with pre-warmed job processes vs cold, and memory
per job process (synthetic calls on fake providers, real processes, real clock).

    python bench/worker.py [--calls 6] [--json] [--no-sip]

Start latency: from the worker accepting the call to the job's first heartbeat (its
session is running), as recorded in each report's ``supervisor.start_latency_ms``. Calls
run one at a time, each long enough for the pool to warm a replacement. Memory: the peak
RSS each job process reports (``job.max_rss_kb``), and the RSS of idle pre-warmed
processes (``/proc/PID/status``). With ``--json`` exactly one JSON object is printed.

SIP (when ``sipp`` is installed): the real caller dials a worker with a ``SipCallSource``,
one short call at a time; the latency is INVITE received → 200 OK sent, as the source
records it (handing the call to a job process, which opens its RTP socket and reports the
port, is all inside it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from sip_calls import SCENARIO  # the same sipp call (this script's folder is on sys.path)

from voxlane.core.supervision import LadderConfig
from voxlane.worker.sip_source import SipCallSource, SipSourceConfig
from voxlane.worker.synthetic import SyntheticCall, SyntheticCallSource
from voxlane.worker.worker import Worker, WorkerConfig

AGENT = Path(__file__).resolve().parent.parent / "examples" / "receptionist.py"


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def _mode(prewarm: int, calls: int, reports: Path) -> dict[str, Any]:
    batch = [
        SyntheticCall(call_id=f"p{prewarm}_{i}", hangup_after=0.5, turns=()) for i in range(calls)
    ]
    config = WorkerConfig(
        agent_file=AGENT,
        reports_dir=reports,
        max_jobs=1,
        prewarm=prewarm,
        stop_when_source_done=True,
        ladder=LadderConfig(),
    )
    # One call at a time; the pause lets the pool warm a replacement between calls.
    source = SyntheticCallSource(calls=batch, concurrency=1, gap=1.5 if prewarm else 0.2)
    worker = Worker(config, source)
    idle_rss: list[int] = []
    run = asyncio.ensure_future(worker.run())
    while not run.done():
        idle_rss += [r for r in map(_rss_kb, worker.pool.idle_pids()) if r]
        await asyncio.wait({run}, timeout=0.5)
    await run
    rows = [json.loads((reports / f"{c.call_id}.json").read_text()) for c in batch]
    starts = [r["supervisor"].get("start_latency_ms") for r in rows]
    if None in starts:
        bad = [r["supervisor"] for r in rows if r["supervisor"].get("start_latency_ms") is None]
        raise SystemExit(f"a call never started: {json.dumps(bad)[:2000]}")
    return {
        "prewarm": prewarm,
        "calls": calls,
        "outcomes": sorted({r["supervisor"]["outcome"] for r in rows}),
        "prewarmed_handoffs": sum(1 for r in rows if r["supervisor"]["prewarmed"]),
        "start_ms_p50": round(statistics.median(starts), 1),
        "start_ms_max": round(max(starts), 1),
        "job_peak_rss_mb_mean": round(
            statistics.mean(r["job"]["max_rss_kb"] for r in rows) / 1024, 1
        ),
        "idle_rss_mb_mean": round(statistics.mean(idle_rss) / 1024, 1) if idle_rss else None,
    }


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _sipp_call(scenario: Path, port: int) -> int:
    proc = await asyncio.create_subprocess_exec(
        "sipp", "-sf", str(scenario), "-s", "bench", "-i", "127.0.0.1",
        "-p", str(_free_udp_port()), "-mp", str(_free_udp_port()), "-m", "1", "-d", "500",
        "-timeout", "20s", "-timeout_error", "-nostdin", f"127.0.0.1:{port}",
        cwd=scenario.parent, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    wait = asyncio.ensure_future(proc.wait())
    done, _ = await asyncio.wait({wait}, timeout=30)
    if not done:
        proc.kill()  # our own sipp, by its PID
        await asyncio.wait({wait}, timeout=5)
        return -9
    return wait.result()


def _write_scenario(tmp: Path) -> Path:
    """sip_calls.py's call (INVITE, ACK, a little audio, BYE after ``-d``) and its audio."""
    sys.path.insert(0, str(AGENT.parents[1]))
    from tests.sip.pcap_audio import tone, write_audio_pcap

    tmp.mkdir(parents=True)
    write_audio_pcap(tmp / "hello_pcmu.pcap", tone(0.3))
    scenario = tmp / "short_call.xml"
    scenario.write_text(SCENARIO)
    return scenario


async def _sip_mode(prewarm: int, calls: int, tmp: Path) -> dict[str, Any]:
    scenario = _write_scenario(tmp)
    source = SipCallSource(SipSourceConfig(host="127.0.0.1", port=0))
    await source.open()
    config = WorkerConfig(agent_file=AGENT, reports_dir=tmp / "reports", max_jobs=1,
                          prewarm=prewarm, ladder=LadderConfig(), drain_timeout=5.0)
    worker = Worker(config, source)
    run = asyncio.ensure_future(worker.run())
    codes = []
    try:
        await asyncio.sleep(3.0 if prewarm else 0.5)  # the pool warms up
        for _ in range(calls):
            codes.append(await _sipp_call(scenario, source.port))
            await asyncio.sleep(1.5 if prewarm else 0.2)  # the pool refills
    finally:
        worker.stop()
        await asyncio.wait({run}, timeout=20)
    lat = list(source.answer_latency_ms)
    if len(lat) != calls or any(codes):
        raise SystemExit(f"SIP calls failed: sipp exit codes {codes}, {len(lat)} answered")
    return {
        "prewarm": prewarm,
        "calls": calls,
        "outcomes": sorted({o.value for o in source.ended.values()}),
        "invite_to_200_ms_p50": round(statistics.median(lat), 1),
        "invite_to_200_ms_max": round(max(lat), 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        warm = await _mode(1, args.calls, Path(tmp) / "warm")
        cold = await _mode(0, args.calls, Path(tmp) / "cold")
        result: dict[str, Any] = {
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "prewarmed": warm,
            "cold": cold,
        }
        if args.sip and shutil.which("sipp"):
            result["sip_prewarmed"] = await _sip_mode(1, args.calls, Path(tmp) / "sip_warm")
            result["sip_cold"] = await _sip_mode(0, args.calls, Path(tmp) / "sip_cold")
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=6)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-sip", dest="sip", action="store_false", help="skip the SIP part")
    args = p.parse_args()
    loop = asyncio.new_event_loop()
    result = loop.run_until_complete(main_async(args))
    if args.json:
        print(json.dumps(result))
    else:
        for mode in ("prewarmed", "cold"):
            r = result[mode]
            print(
                f"{mode:>9}: start p50 {r['start_ms_p50']} ms, max {r['start_ms_max']} ms; "
                f"job peak RSS {r['job_peak_rss_mb_mean']} MB; idle RSS {r['idle_rss_mb_mean']} MB"
            )
        for mode in ("sip_prewarmed", "sip_cold"):
            if mode in result:
                r = result[mode]
                print(f"{mode:>13}: INVITE → 200 OK p50 {r['invite_to_200_ms_p50']} ms, "
                      f"max {r['invite_to_200_ms_max']} ms ({r['outcomes']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the voxlane gateway's STT engines on this machine.

For each engine, a gateway runs as its own process (``python -m voxlane.gateway``) and this
script is the client, on loopback:

* real-time factor: one stream sent as fast as the server takes it; RTF = processing time
  (first frame sent -> ``session.finalized``) / audio duration;
* concurrency: N streams paced at real time (20 ms frames on an absolute schedule), N = 1,
  2, 3, 4, 6, 8, ... until a level fails; a level "stays real-time" when every utterance
  of every stream gets its final and the p95 final latency is within ``--latency-budget``
  seconds;
* final latency: time from the end of an utterance's speech (the moment its last voiced
  frame was sent, from the final's ``end_s``) to the ``final_transcript``; it includes the
  endpointer's 0.5 s hangover (silence needed to decide the utterance ended).

Audio: sentences spoken by Debian's flite, resampled to 16 kHz. ``--json`` prints exactly
one JSON object on stdout; otherwise a readable table.

    python bench/gateway.py [--engines pocketsphinx,whisper] [--max-streams 32] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from voxlane.gateway import protocol as p

SENTENCES = (
    "open the front door and turn on the lights",
    "what is the weather like today",
    "i would like to book a table for two",
    "thank you very much for your help",
    "can you tell me the time",
)
KEY = "bench-key"
FRAME = 640  # 20 ms at 16 kHz, PCM16
FRAME_S = 0.02


def synthesize(workdir: Path, repeat: int) -> bytes:
    import soxr

    flite = shutil.which("flite")
    if flite is None:
        sys.exit("flite is required: apt-get install flite")
    parts: list[bytes] = []
    for i, text in enumerate(SENTENCES):
        path = workdir / f"s{i}.wav"
        subprocess.run([flite, "-t", text, "-o", str(path)], check=True, timeout=30)
        with wave.open(str(path)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        pcm16 = np.asarray(soxr.resample(pcm, rate, 16000), dtype="<i2").tobytes()
        parts.append(b"\0\0" * 4800 + pcm16 + b"\0\0" * 12800)  # 0.3 s + speech + 0.8 s
    return b"".join(parts) * repeat


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_errors(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[k], 3)


class Gateway:
    """The gateway CLI as a child process; killed by PID on exit."""

    def __init__(self, engine: str, max_sessions: int, processes: int) -> None:
        self.engine = engine
        self.max_sessions = max_sessions
        self.processes = processes
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def __aenter__(self) -> Gateway:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voxlane.gateway", "--port", "0", "--api-key", KEY,
            "--stt-engine", self.engine, "--max-sessions", str(self.max_sessions),
            "--idle-timeout", "60", "--log-level", "WARNING",
            "--engine-processes", str(self.processes),
            stdout=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(120):
            line = (await self.proc.stdout.readline()).decode()
        m = re.fullmatch(r"listening on (ws://\S+)\n", line)
        if not m:
            raise RuntimeError(f"gateway did not start: {line!r}")
        self.url = m.group(1) + p.STT_PATH
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def one_stream(url: str, pcm: bytes, *, paced: bool) -> dict[str, Any]:
    """Stream ``pcm``; return finals with their latency and the total processing time."""
    loop = asyncio.get_running_loop()
    finals: list[tuple[str, float]] = []
    async with connect(url, additional_headers={"Authorization": f"Bearer {KEY}"},
                       open_timeout=30, close_timeout=5, max_size=None) as ws:
        await ws.send(p.encode_client_message(p.SessionCreate()))
        created = p.parse_server_event(str(await ws.recv()))
        if not isinstance(created, p.SessionCreated):
            raise RuntimeError(f"session.create failed: {created}")
        t0 = loop.time()
        done = loop.create_future()

        async def reader(conn: ClientConnection) -> None:
            async for raw in conn:
                evt = p.parse_server_event(str(raw))
                if isinstance(evt, p.FinalTranscript):
                    # latency from the end of speech: end_s on the send schedule.
                    finals.append((evt.text, loop.time() - (t0 + evt.end_s)))
                elif isinstance(evt, p.SessionFinalized):
                    done.set_result(loop.time())
                    return
                elif isinstance(evt, p.ErrorEvent):
                    done.set_exception(RuntimeError(f"error {evt.code}: {evt.message}"))
                    return

        reading = asyncio.create_task(reader(ws))
        try:
            for i in range(0, len(pcm), FRAME):
                if paced:
                    delay = t0 + (i // FRAME) * FRAME_S - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await ws.send(pcm[i : i + FRAME])
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            async with asyncio.timeout(120):
                t_done = await done
            await ws.send(p.encode_client_message(p.SessionClose()))
        finally:
            reading.cancel()
            await asyncio.wait({reading}, timeout=5)
    return {"finals": finals, "processing_s": t_done - t0}


async def bench_engine(engine: str, pcm: bytes, args: argparse.Namespace) -> dict[str, Any]:
    audio_s = len(pcm) / 2 / 16000
    ref = words(" ".join(SENTENCES)) * args.repeat
    out: dict[str, Any] = {"engine": engine, "engine_processes": args.engine_processes,
                           "audio_s_per_stream": round(audio_s, 2)}
    async with Gateway(engine, max(args.max_streams, 1), args.engine_processes) as gw:
        await one_stream(gw.url, pcm[: 16000 * 2], paced=False)  # warm-up
        fast = await one_stream(gw.url, pcm, paced=False)
        out["rtf"] = round(fast["processing_s"] / audio_s, 4)
        hyp = words(" ".join(t for t, _ in fast["finals"]))
        out["wer"] = round(word_errors(ref, hyp) / len(ref), 3)
        levels: list[dict[str, Any]] = []
        for n in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64):
            if n > args.max_streams:
                break
            t = time.monotonic()
            results = await asyncio.gather(
                *(one_stream(gw.url, pcm, paced=True) for _ in range(n)), return_exceptions=True
            )
            ok = [r for r in results if isinstance(r, dict)]
            lat = [lag for r in ok for _, lag in r["finals"]]
            expected = len(SENTENCES) * args.repeat
            complete = len(ok) == n and all(len(r["finals"]) == expected for r in ok)
            p95 = pct(lat, 0.95)
            realtime = complete and p95 is not None and p95 <= args.latency_budget
            levels.append({
                "streams": n, "realtime": realtime, "all_finals": complete,
                "latency_p50_s": pct(lat, 0.5), "latency_p95_s": p95,
                "latency_max_s": round(max(lat), 3) if lat else None,
                "wall_s": round(time.monotonic() - t, 1),
                "errors": [repr(r) for r in results if isinstance(r, BaseException)][:3],
            })
            if not args.json:
                print(f"  {engine} streams={n}: {levels[-1]}", file=sys.stderr)
            if not realtime:
                break
        out["levels"] = levels
        passing = [lv["streams"] for lv in levels if lv["realtime"]]
        out["max_realtime_streams"] = max(passing) if passing else 0
        single = levels[0] if levels else {}
        out["latency_p50_s"] = single.get("latency_p50_s")
        out["latency_p95_s"] = single.get("latency_p95_s")
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="voxlane-bench-") as tmp:
        pcm = synthesize(Path(tmp), args.repeat)
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "latency_budget_s": args.latency_budget,
        "endpointer_hangover_s": 0.5,
        "utterances_per_stream": len(SENTENCES) * args.repeat,
        "engines": [],
    }
    for engine in args.engines.split(","):
        result["engines"].append(await bench_engine(engine, pcm, args))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="pocketsphinx,whisper")
    parser.add_argument("--max-streams", type=int, default=32)
    parser.add_argument("--latency-budget", type=float, default=1.5,
                        help="p95 final latency (s, incl. 0.5 s hangover) to count as real-time")
    parser.add_argument("--engine-processes", type=int, default=0,
                        help="gateway --engine-processes (0: engine threads in-process)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="times the 5 sentences are spoken per stream (15.8 s each)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))
    else:
        for e in result["engines"]:
            print(f"{e['engine']}: RTF {e['rtf']}  WER {e['wer']}  "
                  f"max real-time streams {e['max_realtime_streams']}  "
                  f"latency p50 {e['latency_p50_s']} s p95 {e['latency_p95_s']} s")
            for lv in e["levels"]:
                print(f"    {lv['streams']:>3} streams: realtime={lv['realtime']} "
                      f"p50={lv['latency_p50_s']} p95={lv['latency_p95_s']} "
                      f"max={lv['latency_max_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

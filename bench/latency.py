"""Voice latency on the local stack: end of the caller's speech → first agent audio frame.

Each turn: a synthetic caller (flite speech) asks a question on a local room; the session
runs on the real engines (embedded gateway: whisper STT + piper TTS; Silero VAD when
installed; SmolLM2 on llama.cpp with ``--llm local`` or a scripted LLM with ``--llm
scripted``). Parts, from the session's ``turn_metrics`` timestamps (loop clock):

- ``vad_endpoint``: caller's last voiced frame → end of speech detected
- ``stt_final``: caller's last voiced frame → final transcript
- ``turn_commit``: caller's last voiced frame → turn committed (endpoint policy)
- ``llm_first_token``: LLM request → first token
- ``tts_first_audio``: first token → first TTS audio (includes waiting for a whole first
  sentence from the LLM)
- ``voxlane_overhead``: commit → LLM request, plus TTS audio → audio output
- ``total``: caller's last voiced frame → first agent audio frame played

    python bench/latency.py [--turns 20] [--llm scripted|local] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from rich.console import Console

from voxlane import Agent, AgentSession
from voxlane.cli.progress import dim_progress
from voxlane.media import AudioFrame, split_frames
from voxlane.runners.stack import local_stack
from voxlane.testing import FakeLLM, ScriptedCaller
from voxlane.testing.speech import synthesize
from voxlane.transports import LocalRoom
from voxlane.voice.events import TurnMetrics

QUESTIONS = [
    "what time do you open on monday",
    "can I book a cleaning for next week",
    "do you take new patients",
    "where is the clinic",
    "how much does a checkup cost",
]
REPLY = "Sure, I can help with that. Let me check for you."


def voiced_end(audio: AudioFrame, threshold: float = 300.0) -> float:
    """Offset (s) of the end of the last voiced 20 ms frame."""
    frames = split_frames(audio)
    last = max((i for i, f in enumerate(frames) if f.rms() > threshold), default=0)
    return (last + 1) * 0.02


def pctl(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(turns: int, llm_mode: str) -> dict[str, Any]:
    console = Console(stderr=True)
    audio = {q: synthesize(q) for q in QUESTIONS}
    llm = FakeLLM([REPLY] * (turns + 2)) if llm_mode == "scripted" else None
    rows: list[dict[str, float]] = []
    async with local_stack(progress=dim_progress(console), llm=llm, max_tokens=40) as st:
        room = LocalRoom()
        caller = ScriptedCaller(room)
        session = AgentSession(stt=st.stt, vad=st.vad, llm=st.llm, tts=st.tts)
        done = asyncio.Queue[TurnMetrics]()
        session.on("turn_metrics", done.put_nowait)
        await session.start(Agent(instructions="Answer in one short sentence."), room=room)
        loop = asyncio.get_running_loop()
        await caller.silence(0.5)
        for i in range(turns):
            q = QUESTIONS[i % len(QUESTIONS)]
            start = loop.time()
            await caller.speak(audio[q])
            speech_end = start + voiced_end(audio[q])
            got = asyncio.ensure_future(done.get())
            while not got.done() and loop.time() - speech_end < 30:
                await caller.silence(0.1)
            if not got.done():
                got.cancel()
                console.print(f"turn {i}: no reply within 30 s")
                continue
            m = got.result()
            session.interrupt(force=True)  # next turn at once; the reply is not the point
            await caller.silence(0.6)

            def since_end(t: float | None, _end: float = speech_end) -> float:
                return float("nan") if t is None else (t - _end) * 1000

            assert m.first_audio_at is not None and m.committed_at is not None
            rows.append(
                {
                    "vad_endpoint": since_end(m.speech_ended_at),
                    "stt_final": since_end(m.final_at),
                    "turn_commit": since_end(m.committed_at),
                    "llm_first_token": ((m.llm_first_token_at or 0) - (m.llm_started_at or 0))
                    * 1000,
                    "tts_first_audio": ((m.tts_first_audio_at or 0) - (m.llm_first_token_at or 0))
                    * 1000,
                    "voxlane_overhead": (
                        ((m.llm_started_at or 0) - m.committed_at)
                        + (m.first_audio_at - (m.tts_first_audio_at or 0))
                    )
                    * 1000,
                    "total": since_end(m.first_audio_at),
                }
            )
        event = await session.aclose()
    parts = {}
    for key in rows[0] if rows else []:
        values = [r[key] for r in rows if r[key] == r[key]]  # drop NaN
        parts[key] = {"p50_ms": round(pctl(values, 0.5), 1), "p95_ms": round(pctl(values, 0.95), 1)}
    return {
        "turns": len(rows),
        "llm": llm_mode,
        "vad": type(st.vad).__name__ if st.vad else "stt-endpointing",
        "parts": parts,
        "open_connections_after": event.report.open_connections_after,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--llm", default="scripted", choices=["scripted", "local"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(run(args.turns, args.llm))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['turns']} turns, llm={result['llm']}, vad={result['vad']}")
        for name, v in result["parts"].items():
            print(f"  {name:<18} p50 {v['p50_ms']:>8.1f} ms   p95 {v['p95_ms']:>8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""voxlane's own overhead: N concurrent sessions with fake providers, real-time audio.

Each session has a caller streaming 20 ms frames at real-time pace (speaking, then silent,
in turns; calls start at staggered offsets), so STT/VAD/turn detection/LLM/TTS/playout all
run. Measures CPU seconds per
session-second, RSS per session, and event-loop lag p99 (a 10 ms ticker's lateness).

    python bench/session_overhead.py [--sessions 50] [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from typing import Any

from voxlane import Agent, AgentSession
from voxlane.testing import FakeLLM, FakeSTT, FakeTTS, FakeVAD, ScriptedCaller
from voxlane.transports import LocalRoom


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


TURN_PERIOD_S = 4.0  # about how long one caller turn + agent reply cycle takes


async def caller_loop(caller: ScriptedCaller, until: float, offset: float) -> None:
    """Turns on a phone line: silence, speech, silence... Calls start at staggered offsets,
    as real calls do (lock-stepped callers would measure a burst, not a load)."""
    loop = asyncio.get_running_loop()
    await caller.silence(offset)
    turn = 0
    while loop.time() < until:
        turn += 1
        await caller.say(f"this is turn number {turn} of the call")
        await caller.silence(2.0)


async def lag_monitor(samples: list[float], until: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        expected = loop.time() + 0.01
        await asyncio.sleep(0.01)
        samples.append(max(0.0, loop.time() - expected) * 1000)


async def main_async(n: int, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rss_before = rss_mb()
    sessions: list[AgentSession] = []
    callers: list[ScriptedCaller] = []
    for _ in range(n):
        stt, room = FakeSTT(), LocalRoom()
        session = AgentSession(stt=stt, vad=FakeVAD(), llm=FakeLLM(), tts=FakeTTS())
        callers.append(ScriptedCaller(room, stt=stt))
        await session.start(Agent(instructions="echo"), room=room)
        sessions.append(session)
    cpu0, t0 = time.process_time(), loop.time()
    until = t0 + seconds
    lags: list[float] = []
    await asyncio.gather(
        lag_monitor(lags, until),
        *(caller_loop(c, until, TURN_PERIOD_S * i / n) for i, c in enumerate(callers)),
    )
    cpu = time.process_time() - cpu0
    wall = loop.time() - t0
    rss_after = rss_mb()
    turns = sum(1 for s in sessions for m in s.history if m.role == "user")
    events = await asyncio.gather(*(s.aclose() for s in sessions))
    lags.sort()
    return {
        "sessions": n,
        "seconds": round(wall, 2),
        "cpu_s_per_session_s": round(cpu / (n * wall), 5),
        "rss_mb_per_session": round((rss_after - rss_before) / n, 3),
        "loop_lag_p99_ms": round(lags[int(len(lags) * 0.99) - 1], 2) if lags else 0.0,
        "loop_lag_p50_ms": round(statistics.median(lags), 2) if lags else 0.0,
        "user_turns": turns,
        "open_connections_after": sum(e.report.open_connections_after for e in events),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # The scenarios log their misbehaviour on purpose; keep the bench's output to results.
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(main_async(args.sessions, args.seconds))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:<24} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Recognizers in worker processes: same results, and a dead worker is a clean 2011."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from gateway_helpers import (
    SENTENCES,
    client,
    create,
    drain_until_closed,
    events_until,
    gateway,
    run,
    silence,
    stream,
    synthesize,
)

from voxlane.gateway import protocol as p
from voxlane.gateway.engines.procpool import ProcessPoolEngine


def test_two_worker_processes_recognize_concurrent_sessions_exactly(tts_dir: Path) -> None:
    engine = ProcessPoolEngine("pocketsphinx", processes=2)

    async def one(url: str, sentence: str) -> list[str]:
        async with client(url) as ws:
            await create(ws, phrases=SENTENCES)
            await stream(ws, silence(0.3) + synthesize(sentence, tts_dir) + silence(0.8))
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            events = await events_until(ws, "session.finalized")
            return [e["text"] for e in events if e["type"] == "final_transcript"]

    async def main() -> list[list[str]]:
        async with gateway(stt_engine=engine) as server:
            return list(await asyncio.gather(*(one(server.stt_url, s) for s in SENTENCES[:3])))

    try:
        assert run(main()) == [[s] for s in SENTENCES[:3]]
    finally:
        engine.close()


def test_a_killed_worker_ends_its_session_with_2011_and_others_go_on() -> None:
    engine = ProcessPoolEngine("pocketsphinx", processes=1, call_timeout_s=2.0)

    async def main() -> None:
        async with gateway(stt_engine=engine) as server, client(server.stt_url) as ws:
            await create(ws)
            await ws.send(silence(0.02))
            await asyncio.sleep(0.2)
            for worker_pid in engine.worker_pids():
                os.kill(worker_pid, signal.SIGKILL)  # only the worker this test started
            await ws.send(silence(0.02))
            events = await drain_until_closed(ws)
            assert [e.get("code") for e in events] == [2011]
            assert ws.close_code == 1011
            async with client(server.stt_url) as again:  # a fresh worker replaces it
                assert (await create(again))["type"] == "session.created"
                await again.send(p.encode_client_message(p.SessionFinalize()))
                assert (await events_until(again, "session.finalized"))[-1]["type"] == (
                    "session.finalized"
                )

    try:
        run(main())
    finally:
        engine.close()

"""One slow engine call must not stall the event loop or other sessions."""

from __future__ import annotations

import asyncio
import threading
import time

from gateway_helpers import client, create, drain_until_closed, events_until, gateway, run, silence

from voxlane.gateway import protocol as p
from voxlane.gateway.engines import Recognizer, SpeechEvent


class _Rec:
    def __init__(self, slow: bool, gate: threading.Event) -> None:
        self._slow = slow
        self._gate = gate

    def feed(self, pcm16: bytes) -> list[SpeechEvent]:
        if self._slow:
            self._gate.wait(5.0)  # a decode that blocks its thread for seconds
        return []

    def finalize(self) -> list[SpeechEvent]:
        return [p.StartOfSpeech(), p.FinalTranscript("done", 0.0, 0.1), p.EndOfSpeech()]

    def close(self) -> None:
        pass


class _Engine:
    name = "fake"

    def __init__(self) -> None:
        self.gate = threading.Event()

    def load(self) -> None:
        pass

    def new_recognizer(self, settings: p.SessionSettings) -> Recognizer:
        return _Rec(settings.phrases == ("slow",), self.gate)


def test_a_blocked_engine_call_delays_only_its_own_session() -> None:
    engine = _Engine()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with (
            gateway(stt_engine=engine, close_timeout_s=1.0) as server,
            client(server.stt_url) as slow,
            client(server.stt_url) as fast,
        ):
            await create(slow, phrases=["slow"])
            await create(fast)
            await slow.send(silence(0.02))  # its worker thread now blocks
            await asyncio.sleep(0.05)
            t0 = loop.time()
            await fast.send(silence(0.02))
            await fast.send(p.encode_client_message(p.SessionFinalize()))
            events = await events_until(fast, "session.finalized", timeout=3)
            assert loop.time() - t0 < 0.5
            assert [e["type"] for e in events][1] == "final_transcript"
            # Closing the blocked session is bounded too: its close does not wait
            # for the stuck thread.
            t1 = loop.time()
            await slow.send(p.encode_client_message(p.SessionClose()))
            async with asyncio.timeout(3):
                async for _ in slow:
                    pass
            assert loop.time() - t1 < 2.5
        engine.gate.set()

    t = time.monotonic()
    try:
        run(main())
    finally:
        engine.gate.set()
    assert time.monotonic() - t < 10


class _BrokenEngine(_Engine):
    def new_recognizer(self, settings: p.SessionSettings) -> Recognizer:
        rec = _Rec(False, self.gate)

        def feed(pcm16: bytes) -> list[SpeechEvent]:
            raise RuntimeError("decoder exploded")

        rec.feed = feed  # type: ignore[method-assign]
        return rec


def test_engine_failure_ends_only_that_session_with_2011() -> None:
    async def main() -> None:
        async with (
            gateway(stt_engine=_BrokenEngine()) as server,
            client(server.stt_url) as ws,
        ):
            await create(ws)
            await ws.send(silence(0.02))
            events = await drain_until_closed(ws)
            assert [(e["code"], e["retryable"]) for e in events] == [(2011, True)]
            assert ws.close_code == 1011
            async with client(server.stt_url) as other:  # the server goes on
                assert (await create(other))["type"] == "session.created"

    run(main())


def test_engine_that_falls_behind_ends_the_session_with_2012() -> None:
    engine = _Engine()

    async def main() -> None:
        async with (
            gateway(stt_engine=engine, queue_frames=4, queue_timeout_s=0.3) as server,
            client(server.stt_url) as ws,
        ):
            await create(ws, phrases=["slow"])  # every feed blocks its thread
            loop = asyncio.get_running_loop()
            t0 = loop.time()

            async def flood() -> None:
                for _ in range(100):
                    await ws.send(silence(0.02))

            flooding = asyncio.create_task(flood())
            events = await drain_until_closed(ws)
            await asyncio.wait({flooding}, timeout=1)
            assert [(e["code"], e["retryable"]) for e in events] == [(2012, True)]
            assert ws.close_code == 1013
            assert loop.time() - t0 < 3
            assert server.connection_log[-1].close_reason == "overloaded"

    try:
        run(main())
    finally:
        engine.gate.set()


def test_session_close_without_a_session_just_closes() -> None:
    async def main() -> None:
        async with gateway() as server, client(server.stt_url) as ws:
            await ws.send(p.encode_client_message(p.SessionClose()))
            assert await drain_until_closed(ws) == [{"type": "session.closed"}]
            assert ws.close_code == 1000

    run(main())

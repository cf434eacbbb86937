"""A pooled engine goes back to its pool clean: a call cut mid-utterance breaks no later call.

The pool itself (reset on return, discard on a failed reset) on plain objects; then the real
pocketsphinx engine behind a real gateway and real websocket clients on 127.0.0.1, in
process and in an engine worker process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from gateway_fake_engines import BAD_CLOSE, bad_close_engine
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
from voxlane.gateway.engines.pool import ResetPool
from voxlane.gateway.engines.procpool import ProcessPoolEngine
from voxlane.gateway.engines.sphinx import PocketSphinxEngine

# ---------------------------------------------------------------------------- the pool


class _Item:
    def __init__(self, n: int) -> None:
        self.n = n
        self.dirty = False
        self.resets = 0
        self.discarded = False


class _Factory:
    def __init__(self, fail_reset_of: set[int] | None = None) -> None:
        self.made: list[_Item] = []
        self.fail_reset_of = fail_reset_of or set()

    def create(self) -> _Item:
        self.made.append(_Item(len(self.made)))
        return self.made[-1]

    def reset(self, item: _Item) -> None:
        item.resets += 1
        if item.n in self.fail_reset_of:
            raise RuntimeError("Failed to stop utterance processing")
        item.dirty = False

    def discard(self, item: _Item) -> None:
        item.discarded = True
        raise RuntimeError("discard errors are ignored")


def _pool(factory: _Factory, max_idle: int = 8) -> ResetPool[_Item]:
    return ResetPool(
        name="test",
        create=factory.create,
        reset=factory.reset,
        discard=factory.discard,
        max_idle=max_idle,
    )


def test_an_item_is_reset_on_return_and_reused() -> None:
    factory = _Factory()
    pool = _pool(factory)
    pool.preload()
    item = pool.acquire()
    item.dirty = True
    assert pool.release(item) is True
    assert (item.resets, item.dirty) == (1, False)
    assert pool.acquire() is item
    stats = pool.statistics()
    assert (stats.created, stats.idle, stats.in_use, stats.discarded) == (1, 0, 1, 0)


def test_an_item_whose_reset_fails_is_discarded_and_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = _Factory(fail_reset_of={0})
    pool = _pool(factory)
    bad = pool.acquire()
    with caplog.at_level(logging.WARNING, logger="voxlane.gateway"):
        assert pool.release(bad) is False  # never raises, even when discard does
    assert bad.discarded
    assert ["test: reset on return failed" in r.getMessage() for r in caplog.records] == [True]
    fresh = pool.acquire()
    assert fresh is not bad and fresh.n == 1
    stats = pool.statistics()
    assert (stats.created, stats.reset_failures, stats.discarded) == (2, 1, 1)


def test_a_second_release_and_a_full_pool_keep_no_item_twice() -> None:
    factory = _Factory()
    pool = _pool(factory, max_idle=1)
    a, b = pool.acquire(), pool.acquire()
    assert pool.release(a) is True
    assert pool.release(a) is False  # released twice: ignored, not idle twice
    assert pool.release(b) is False  # the pool is full: dropped
    assert b.discarded and not a.discarded
    assert pool.acquire() is a
    assert pool.acquire() is not a


# ---------------------------------------------------------------------------- pocketsphinx


def test_a_decoder_left_in_any_state_comes_back_ready(tts_dir: Path) -> None:
    engine = PocketSphinxEngine()
    engine.load()
    speech = silence(0.3) + synthesize(SENTENCES[1], tts_dir)
    half = speech[: len(speech) // 2]
    for phrases in (SENTENCES, None):
        rec = engine.new_recognizer(p.SessionSettings(phrases=phrases))
        events = rec.feed(half)  # the utterance is open
        assert [type(e) for e in events][:1] == [p.StartOfSpeech]
        rec.close()
        rec.close()  # idempotent
    rec = engine.new_recognizer(p.SessionSettings(phrases=SENTENCES))
    rec.close()  # grammar set, no utterance
    stats = engine.pool_statistics()
    assert (stats.created, stats.idle, stats.in_use, stats.reset_failures) == (1, 1, 0, 0)
    rec = engine.new_recognizer(p.SessionSettings(phrases=SENTENCES))
    events = rec.feed(speech + silence(0.8))
    assert [e.text for e in events if isinstance(e, p.FinalTranscript)] == [SENTENCES[1]]
    rec.close()
    with pytest.raises(Exception, match="recognizer is closed"):
        rec.feed(silence(0.02))  # its decoder is back in the pool: not touched again


# ---------------------------------------------------------------------------- the gateway


async def _all_closed(server: Any, *, but: int = 0) -> None:
    """Until all connections but ``but`` have closed (their recognizer's release included)."""
    for _ in range(500):
        if sum(r.closed_at is None for r in server.connection_log) <= but:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a connection did not close")


def _finals(events: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "final_transcript"]


@pytest.mark.parametrize(
    ("processes", "grammar"),
    [(0, True), (0, False), (1, False)],
    ids=["grammar", "language_model", "worker_process"],
)
def test_a_session_cut_mid_utterance_leaves_the_pooled_decoder_clean(
    tts_dir: Path, processes: int, grammar: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="voxlane.gateway")
    # A fresh engine (its own pool): session 1's decoder is the one sessions 2 and 3
    # get back.
    engine: Any = (
        ProcessPoolEngine("pocketsphinx", processes=1) if processes else PocketSphinxEngine()
    )
    settings: dict[str, Any] = {"phrases": SENTENCES} if grammar else {}
    sentence = synthesize(SENTENCES[1], tts_dir)

    async def main() -> None:
        async with gateway(stt_engine=engine) as server:
            async with client(server.stt_url) as ws:
                await create(ws, **settings)
                # Half a sentence, no trailing silence: the utterance is open when the
                # caller vanishes.
                await stream(ws, silence(0.3) + sentence[: len(sentence) // 2])
                await events_until(ws, "start_of_speech")
                ws.transport.abort()
            for _ in range(2):
                # The decoder session 1 left is back in the pool before the next create.
                await _all_closed(server)
                async with client(server.stt_url) as ws:
                    assert (await create(ws, **settings))["type"] == "session.created"
                    await stream(ws, silence(0.3) + sentence + silence(0.8))
                    await ws.send(p.encode_client_message(p.SessionFinalize()))
                    events = await events_until(ws, "session.finalized")
                    assert not [e for e in events if e["type"] == "error"], events
                    if grammar:
                        assert _finals(events) == [SENTENCES[1]]
                    else:
                        assert len(_finals(events)) == 1, events
            assert all(2011 not in r.errors_sent for r in server.connection_log)
            await _all_closed(server)

    try:
        run(main())
    finally:
        if processes:
            engine.close()
    assert not [r.getMessage() for r in caplog.records]
    if not processes:
        stats = engine.pool_statistics()
        # One decoder served all three sessions: session 1's came back reset, not discarded.
        assert (stats.created, stats.idle, stats.in_use) == (1, 1, 0), stats
        assert (stats.reset_failures, stats.discarded) == (0, 0), stats


def test_a_worker_whose_close_fails_is_retired_and_replaced() -> None:
    engine = ProcessPoolEngine("bad-close", processes=1, factory=bad_close_engine)

    async def finalized(ws: Any) -> list[str]:
        await ws.send(p.encode_client_message(p.SessionFinalize()))
        return _finals(await events_until(ws, "session.finalized"))

    async def main() -> None:
        async with gateway(stt_engine=engine) as server:
            [first] = engine.worker_pids()
            async with client(server.stt_url) as staying:
                await create(staying)
                async with client(server.stt_url) as bad:
                    await create(bad, phrases=BAD_CLOSE)
                    await bad.send(p.encode_client_message(p.SessionClose()))
                    await events_until(bad, "session.closed")
                await _all_closed(server, but=1)
                async with client(server.stt_url) as fresh:  # not pinned to the bad one
                    await create(fresh)
                    assert await finalized(fresh) == ["done"]
                    [second] = engine.worker_pids()
                    assert second != first
                    assert engine.retired_worker_pids() == [first]
                assert await finalized(staying) == ["done"]  # its session goes on
            await _all_closed(server)
            assert engine.retired_worker_pids() == []  # stopped with its last session

    try:
        run(main())
    finally:
        engine.close()


class _SlowStartEngine:
    """Starts its first session only when ``gate`` opens; records closed recognizers."""

    name = "slow-start"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.closed: list[int] = []
        self._n = 0

    def load(self) -> None:
        pass

    def new_recognizer(self, settings: p.SessionSettings) -> Any:
        self._n += 1
        n = self._n
        if n == 1:
            self.gate.wait(10.0)
        engine = self

        class _Rec:
            def feed(self, pcm16: bytes) -> list[Any]:
                return []

            def finalize(self) -> list[Any]:
                return []

            def close(self) -> None:
                engine.closed.append(n)

        return _Rec()


def test_a_recognizer_that_starts_after_the_create_deadline_is_released() -> None:
    engine = _SlowStartEngine()

    async def main() -> None:
        async with gateway(stt_engine=engine, create_timeout_s=0.3) as server:
            async with client(server.stt_url) as ws:
                # Not create(): its answer is the 2011 error, read below.
                await ws.send(p.encode_client_message(p.SessionCreate()))
                events = await drain_until_closed(ws)
                assert [e.get("code") for e in events] == [2011]
            engine.gate.set()  # the engine call, still running, now returns
            for _ in range(500):
                if engine.closed:
                    break
                await asyncio.sleep(0.01)
            assert engine.closed == [1]  # released, not lost with the abandoned call

    try:
        run(main())
    finally:
        engine.gate.set()

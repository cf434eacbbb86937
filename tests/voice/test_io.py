"""The audio-output contract: timer-based playout, cleared at once, closed always."""

from __future__ import annotations

import asyncio

import pytest

from voxlane.media import AudioFrame, split_frames
from voxlane.transports import LocalRoom
from voxlane.transports.paced import PacedAudioOutput


async def test_playout_is_paced_on_the_clock_and_resolves_by_timer() -> None:
    loop = asyncio.get_running_loop()
    got: list[float] = []
    out = PacedAudioOutput(lambda f: got.append(loop.time()))
    start = loop.time()
    for frame in split_frames(AudioFrame.tone(1.0)):
        await out.capture_frame(frame)
    out.flush()
    done = await out.wait_for_playout()
    assert not done.interrupted and done.position_s == pytest.approx(1.0)
    assert loop.time() - start == pytest.approx(1.0)
    assert got[-1] - got[0] == pytest.approx(0.98)  # the last frame starts 20 ms before the end
    await out.aclose()


async def test_clear_resolves_waiters_at_once_and_drops_audio() -> None:
    loop = asyncio.get_running_loop()
    got: list[AudioFrame] = []
    out = PacedAudioOutput(got.append, max_buffer_s=10.0)
    for frame in split_frames(AudioFrame.tone(2.0)):
        await out.capture_frame(frame)
    out.flush()
    waiter = asyncio.ensure_future(out.wait_for_playout())
    await asyncio.sleep(0.5)
    t = loop.time()
    out.clear_buffer()
    result = await waiter
    assert result.interrupted and loop.time() == t
    n = len(got)
    await asyncio.sleep(1.0)
    assert len(got) == n  # nothing more plays after the clear
    await out.aclose()


async def test_close_resolves_waiters_even_with_nobody_listening() -> None:
    out = PacedAudioOutput(lambda f: None)
    for frame in split_frames(AudioFrame.tone(5.0)):
        await out.capture_frame(frame)
    out.flush()
    waiter = asyncio.ensure_future(out.wait_for_playout())
    await asyncio.sleep(0.1)
    await out.aclose()
    assert (await waiter).interrupted
    await out.aclose()  # idempotent
    await out.capture_frame(AudioFrame.silence(0.02))  # after close: ignored, never blocks


def test_frames_reject_odd_bytes() -> None:
    with pytest.raises(ValueError, match="odd"):
        AudioFrame(b"\x00\x01\x02", 16000)


async def test_room_rejects_audio_in_the_wrong_format() -> None:
    room = LocalRoom(sample_rate=16000)
    p = room.join("caller")
    with pytest.raises(ValueError, match="8000 Hz"):
        p.push_frame(AudioFrame.silence(0.02, 8000))
    p.leave()
    with pytest.raises(Exception, match="left"):
        p.push_frame(AudioFrame.silence(0.02, 16000))
    await room.audio_output.aclose()


async def test_flushing_with_a_full_queue_never_raises_its_bound() -> None:
    """Regression: ``flush`` raised the frame queue's bound by one each time it found the
    queue full (51, 52, 53... after successive replies): an unbounded queue in slow motion.
    End-of-segment markers now take no room from frames; each segment still resolves when
    its last sample has played."""
    loop = asyncio.get_running_loop()
    out = PacedAudioOutput(lambda f: None, max_buffer_s=0.1)  # 5 frames of 20 ms
    bound = out.statistics().max_frames
    resolved: list[float] = []
    waiters = []
    start = loop.time()
    for _ in range(30):  # 30 replies of 0.2 s, each flushed while the queue is full
        for frame in split_frames(AudioFrame.tone(0.2)):
            await out.capture_frame(frame)
        assert out.statistics().frames_queued == bound
        out.flush()
        stats = out.statistics()
        assert stats.max_frames == bound and stats.frames_queued <= bound
        waiter = asyncio.ensure_future(out.wait_for_playout())
        waiter.add_done_callback(lambda _: resolved.append(loop.time() - start))
        waiters.append(waiter)
    results = await asyncio.gather(*waiters)
    assert all(not r.interrupted and r.position_s == pytest.approx(0.2) for r in results)
    assert resolved == pytest.approx([0.2 * (i + 1) for i in range(30)])
    stats = out.statistics()
    assert stats.max_frames == bound and stats.segments_pending == 0
    assert stats.frames_played == 30 * 10
    await out.aclose()

"""The misbehaving providers of the testing kit misbehave as documented (the chaos scenarios
rely on it): mid-stream faults, hanging and raising closes — and every one of them still
releases its ledger entry through voxlane's bounded close."""

from __future__ import annotations

import asyncio

import pytest

from voxlane.aio.closing import bounded_aclose
from voxlane.aio.ledger import LEDGER
from voxlane.chat import ChatContext
from voxlane.errors import ProviderError
from voxlane.testing import (
    FailingLLM,
    HangingCloseTTS,
    RaisingCloseTTS,
    StallingLLM,
    StallingTTS,
)


async def test_failing_llm_raises_mid_reply() -> None:
    stream = FailingLLM(["one two three"], fail_after=2).chat(ChatContext())
    chunks = [await stream.__anext__(), await stream.__anext__()]
    assert "".join(c.delta for c in chunks) == "one two "
    with pytest.raises(ProviderError, match="mid-reply"):
        await stream.__anext__()
    await stream.aclose()
    assert LEDGER.count_open() == 0


async def test_stalling_llm_hangs_mid_reply_ignoring_cancellation() -> None:
    stream = StallingLLM(["one two three"], stall_after=1).chat(ChatContext())
    assert (await stream.__anext__()).delta == "one "
    reader = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(10)
    reader.cancel()
    await asyncio.sleep(1)
    assert not reader.done()  # swallowed the cancellation (released at the end of the test)
    await stream.aclose()


async def test_stalling_tts_stops_after_some_frames() -> None:
    tts = StallingTTS(stall_after=2, stubborn=False)
    stream = tts.synthesize("a long sentence to say")
    frames = [await stream.__anext__(), await stream.__anext__()]
    assert all(f.duration > 0 for f in frames)
    reader = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(10)
    assert not reader.done()
    reader.cancel()  # not stubborn: cancellation works
    await asyncio.sleep(0)
    assert reader.cancelled()
    await stream.aclose()


async def test_hanging_and_raising_tts_closes_are_still_released() -> None:
    loop = asyncio.get_running_loop()
    hanging = HangingCloseTTS().stream()
    step = await bounded_aclose("tts", hanging, loop.time() + 0.5)
    assert step.outcome == "aborted" and step.abandoned
    raising = RaisingCloseTTS().stream()
    step = await bounded_aclose("tts", raising, loop.time() + 0.5)
    assert step.outcome == "error" and "on purpose" in (step.error or "")
    assert LEDGER.count_open() == 0

import asyncio

import pytest

from voxlane.aio.channel import BoundedChannel
from voxlane.errors import ChannelClosedError


async def test_wait_policy_applies_backpressure() -> None:
    ch: BoundedChannel[int] = BoundedChannel(2)
    assert ch.send_nowait(1) and ch.send_nowait(2)
    assert not ch.send_nowait(3)  # full: refused, not dropped
    sender = asyncio.ensure_future(ch.send(3))
    await asyncio.sleep(0.1)
    assert not sender.done()
    assert await ch.receive() == 1
    await sender
    assert [await ch.receive(), await ch.receive()] == [2, 3]
    assert ch.statistics().dropped == 0


async def test_drop_oldest_keeps_the_newest() -> None:
    ch: BoundedChannel[int] = BoundedChannel(3, overflow="drop_oldest")
    for i in range(10):
        ch.send_nowait(i)
    stats = ch.statistics()
    assert (stats.size, stats.dropped, stats.sent) == (3, 7, 10)
    assert [ch.receive_nowait() for _ in range(3)] == [7, 8, 9]


async def test_clear_is_synchronous_and_counts() -> None:
    ch: BoundedChannel[int] = BoundedChannel(5)
    for i in range(4):
        ch.send_nowait(i)
    assert ch.clear() == 4 and len(ch) == 0
    assert ch.receive_nowait() is None


async def test_close_drains_then_raises() -> None:
    ch: BoundedChannel[str] = BoundedChannel(5)
    ch.send_nowait("a")
    ch.close()
    with pytest.raises(ChannelClosedError):
        ch.send_nowait("b")
    assert [x async for x in ch] == ["a"]
    with pytest.raises(ChannelClosedError):
        await ch.receive()


async def test_close_wakes_a_waiting_receiver() -> None:
    ch: BoundedChannel[int] = BoundedChannel(1)
    receiver = asyncio.ensure_future(ch.receive())
    await asyncio.sleep(0)
    ch.close()
    with pytest.raises(ChannelClosedError):
        await receiver


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BoundedChannel(0)

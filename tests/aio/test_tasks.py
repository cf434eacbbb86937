"""Owned tasks: shutdown is bounded whatever the task does (DESIGN §2 traps)."""

import asyncio

import pytest

from voxlane.aio.tasks import TaskOwner, abandoned_tasks, cancel_and_wait, join, wait_pending
from voxlane.errors import ClosedError
from voxlane.testing import (
    await_behind_shield,
    release_all,
    sleep_long,
    swallow_cancellation_forever,
)


async def test_shutdown_returns_on_time_and_abandons_stubborn_tasks() -> None:
    loop = asyncio.get_running_loop()
    owner = TaskOwner("t")
    owner.spawn(swallow_cancellation_forever(), name="stubborn")
    owner.spawn(sleep_long(), name="sleeper")
    owner.spawn(await_behind_shield(), name="shielded")
    await asyncio.sleep(0)
    start = loop.time()
    abandoned = await owner.shutdown(start + 1.0)
    assert loop.time() - start <= 1.0 + 1e-6
    assert [a.name for a in abandoned] == ["t/stubborn"]
    # The report shows where it is stuck, down the await chain.
    assert any("swallow_cancellation_forever" in line for line in abandoned[0].stack)
    assert abandoned_tasks()
    release_all()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not abandoned_tasks()


async def test_wait_for_would_hang_where_cancel_and_wait_does_not() -> None:
    """The trap itself: asyncio.wait_for waits without bound for a task that swallows
    cancellation. cancel_and_wait returns at its deadline."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(swallow_cancellation_forever())
    await asyncio.sleep(0)
    probe = asyncio.ensure_future(asyncio.wait_for(asyncio.shield(task), 0.5))
    start = loop.time()
    abandoned = await cancel_and_wait([task], start + 2.0)
    assert loop.time() - start == pytest.approx(2.0)
    assert len(abandoned) == 1
    release_all()
    await asyncio.sleep(0)
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)


async def test_errors_reach_the_owner() -> None:
    seen: list[BaseException] = []
    owner = TaskOwner("t", on_error=lambda task, exc: seen.append(exc))

    async def boom() -> None:
        raise ValueError("boom")

    owner.spawn(boom(), name="boom")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert [str(e) for e in seen] == ["boom"]
    assert not owner.live


async def test_spawn_after_shutdown_is_refused_and_closes_the_coroutine() -> None:
    owner = TaskOwner("t")
    await owner.shutdown(asyncio.get_running_loop().time())
    coro = sleep_long()
    with pytest.raises(ClosedError):
        owner.spawn(coro, name="late")
    assert coro.cr_frame is None  # closed, so no "never awaited" warning


async def test_join_does_not_wait_for_a_stubborn_child_when_cancelled() -> None:
    loop = asyncio.get_running_loop()
    child = asyncio.ensure_future(swallow_cancellation_forever())
    parent = asyncio.ensure_future(join(child))
    await asyncio.sleep(0.1)
    parent.cancel()
    start = loop.time()
    with pytest.raises(asyncio.CancelledError):
        await parent
    assert loop.time() == start
    release_all()
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_join_returns_result_and_raises_error() -> None:
    async def value() -> int:
        return 7

    async def fail() -> int:
        raise KeyError("k")

    assert await join(asyncio.ensure_future(value())) == 7
    with pytest.raises(KeyError):
        await join(asyncio.ensure_future(fail()))


async def test_wait_pending_returns_what_is_still_pending_on_time() -> None:
    """The result names what did *not* finish: empty means all done in time."""
    loop = asyncio.get_running_loop()
    quick = asyncio.ensure_future(asyncio.sleep(0.1))
    slow = asyncio.ensure_future(asyncio.sleep(10.0))
    future: asyncio.Future[None] = loop.create_future()  # not a task: also waited on
    loop.call_later(0.2, future.set_result, None)
    start = loop.time()
    assert await wait_pending({quick, slow, future}, start + 1.0) == {slow}
    assert loop.time() - start == pytest.approx(1.0)
    assert not slow.cancelled()  # nothing is cancelled: the caller decides
    assert await wait_pending({quick, future}, loop.time() + 5.0) == set()
    assert await wait_pending(set(), loop.time()) == set()
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)

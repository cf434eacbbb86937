import asyncio
import time

import pytest

from voxlane.testing import run_virtual


async def test_half_an_hour_takes_no_real_time() -> None:
    loop = asyncio.get_running_loop()
    real = time.monotonic()
    start = loop.time()
    await asyncio.sleep(1800)
    assert loop.time() - start == pytest.approx(1800)
    assert time.monotonic() - real < 1.0


async def test_wait_timeout_follows_virtual_time() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    start = loop.time()
    done, _ = await asyncio.wait({fut}, timeout=12.5)
    assert not done and loop.time() - start == pytest.approx(12.5)
    fut.cancel()


def test_run_virtual_returns_the_result() -> None:
    async def main() -> float:
        await asyncio.sleep(60)
        return asyncio.get_running_loop().time()

    assert run_virtual(main) == pytest.approx(1060.0)


@pytest.mark.real_time
async def test_real_time_marker_uses_a_real_loop() -> None:
    loop = asyncio.get_running_loop()
    assert type(loop).__name__ != "VirtualTimeLoop"

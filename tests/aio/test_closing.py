import asyncio

from voxlane.aio.closing import ResourceStack, bounded_aclose
from voxlane.aio.ledger import ResourceLedger
from voxlane.testing import release_all, swallow_cancellation_forever


class Res:
    def __init__(self, name: str, behavior: str, log: list[str]) -> None:
        self.name, self.behavior, self.log = name, behavior, log
        self.aborted = False

    async def aclose(self) -> None:
        self.log.append(self.name)
        if self.behavior == "hang":
            await swallow_cancellation_forever()
        elif self.behavior == "raise":
            raise RuntimeError("nope")
        elif self.behavior == "slow":
            await asyncio.sleep(0.2)

    def abort(self) -> None:
        self.aborted = True


async def test_outcomes() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    ok, slow, hang, bad = (Res(n, n, log) for n in ("ok", "slow", "hang", "raise"))
    assert (await bounded_aclose("ok", ok, loop.time() + 1)).outcome == "ok"
    assert (await bounded_aclose("slow", slow, loop.time() + 1)).outcome == "ok"
    start = loop.time()
    step = await bounded_aclose("hang", hang, start + 0.5)
    assert step.outcome == "aborted" and hang.aborted and step.abandoned
    assert loop.time() - start <= 0.5 + 1e-6
    step = await bounded_aclose("raise", bad, loop.time() + 1)
    assert step.outcome == "error" and "nope" in (step.error or "") and bad.aborted
    release_all()
    await asyncio.sleep(0)


async def test_stack_closes_newest_first_and_one_hang_does_not_skip_the_rest() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    stack = ResourceStack()
    for name, behavior in [("a", "ok"), ("b", "hang"), ("c", "raise"), ("d", "ok")]:
        stack.push(name, Res(name, behavior, log))
    gone = Res("gone", "ok", log)
    stack.push("gone", gone)
    stack.discard(gone)
    items = stack.take_all()
    assert [n for n, _ in items] == ["d", "c", "b", "a"] and len(stack) == 0
    start = loop.time()
    outcomes = []
    for i, (name, res) in enumerate(items):
        now = loop.time()
        deadline = now + (start + 2.0 - now) / (len(items) - i)  # fair share
        outcomes.append((await bounded_aclose(name, res, deadline)).outcome)
    assert outcomes == ["ok", "error", "aborted", "ok"]
    assert log == ["d", "c", "b", "a"]
    assert loop.time() - start <= 2.0 + 1e-6
    release_all()
    await asyncio.sleep(0)


def test_ledger_counts_by_session() -> None:
    ledger = ResourceLedger()
    a = ledger.open("stt", "x", session_id="s1")
    ledger.open("tts", "y", session_id="s2")
    assert ledger.count_open() == 2 and ledger.count_open("s1") == 1
    a.release()
    a.release()
    assert ledger.count_open("s1") == 0 and ledger.count_open() == 1
    for e in ledger.open_entries():
        e.release()


async def test_a_resource_is_told_the_deadline_it_must_be_released_by() -> None:
    from voxlane.providers.base import ProviderStream

    stream = ProviderStream(label="s")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.25
    step = await bounded_aclose("close s", stream, deadline)
    assert step.outcome == "ok" and stream.release_deadline == deadline
    # its own graceful close plans within it, whatever its own timeout says
    assert stream.close_deadline(loop.time(), 2.0) == deadline
    assert stream.close_deadline(deadline - 1.0, 0.5) == deadline - 0.5


async def test_release_keeps_what_is_not_yet_released_on_the_stack() -> None:
    stack = ResourceStack()
    released: list[str] = []

    class Slow:
        def __init__(self, name: str) -> None:
            self.name = name

        async def aclose(self) -> None:
            await asyncio.sleep(1.0)
            released.append(self.name)

    for name in ("a", "b", "c"):
        stack.push(name, Slow(name))
    task = asyncio.ensure_future(stack.release(lambda now, left: now + 5.0))
    await asyncio.sleep(1.5)  # "c" released, "b" being closed
    task.cancel()
    await asyncio.sleep(0)
    assert released == ["c"]
    assert len(stack) == 2  # "b" (cut short) and "a" are still where abort_all finds them

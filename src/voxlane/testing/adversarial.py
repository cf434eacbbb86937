"""User code that misbehaves, for tests that try to break the close guarantees (DESIGN I1).

Every stuck helper waits on a *release* future registered here; :func:`release_all` lets
them finish, so a test can end without leaving tasks behind (the pytest plugin calls it at
the end of every async test, after the assertions). Until released they behave as their
names say: ignore cancellation, hide behind ``asyncio.shield``, sleep for a long time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from voxlane.errors import ProviderError
from voxlane.media import AudioFrame
from voxlane.providers.llm import ChatChunk, LLMStream
from voxlane.testing.fakes import (
    FakeLLM,
    FakeLLMStream,
    FakeReply,
    FakeSTT,
    FakeTTS,
    FakeTTSStream,
)
from voxlane.voice.tools import RunContext

_RELEASES: list[asyncio.Future[None]] = []


def _release_future() -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _RELEASES.append(fut)
    return fut


def release_all() -> int:
    """Let every stuck helper finish. Returns how many were released."""
    n = 0
    while _RELEASES:
        fut = _RELEASES.pop()
        if not fut.done() and not fut.get_loop().is_closed():
            fut.set_result(None)
            n += 1
    return n


async def swallow_cancellation_forever() -> None:
    """Catch every ``CancelledError`` and keep waiting (until released)."""
    release = _release_future()
    while not release.done():
        try:
            await asyncio.shield(release)
        except asyncio.CancelledError:
            continue  # the bug under test: cancellation ignored


async def await_behind_shield() -> None:
    """``await asyncio.shield(never)``: cancelling us leaves the inner wait running."""
    await asyncio.shield(_release_future())


async def never_return() -> None:
    """Await a future nobody resolves (cancellation does work)."""
    await _release_future()


async def sleep_long(seconds: float = 3600.0) -> None:
    await asyncio.sleep(seconds)


# Ready-made function-tool bodies (wrap with ``function_tool`` or use ``AdversarialAgent``).
async def tool_swallowing_cancel(ctx: RunContext) -> str:
    await swallow_cancellation_forever()
    return "released"


async def tool_behind_shield(ctx: RunContext) -> str:
    await await_behind_shield()
    return "released"


async def slow_tool(ctx: RunContext, seconds: float = 3600.0) -> str:
    await sleep_long(seconds)
    return "done"


# -- misbehaving providers ---------------------------------------------------------------


class HangingCloseSTT(FakeSTT):
    """Its streams' ``aclose`` never returns and ignores cancellation."""

    async def close_behavior(self) -> None:
        await swallow_cancellation_forever()


class RaisingCloseSTT(FakeSTT):
    """Its streams' ``aclose`` raises."""

    async def close_behavior(self) -> None:
        raise ProviderError("close failed on purpose", provider=self.label)


class EndlessTTS(FakeTTS):
    """Its streams never end after the last frame (the speech never finishes on its own)."""

    async def after_last_frame(self) -> None:
        await never_return()


class _HangingLLMStream(FakeLLMStream):
    async def __anext__(self) -> ChatChunk:
        await swallow_cancellation_forever()
        raise StopAsyncIteration


class HangingLLM(FakeLLM):
    """Its streams never produce a chunk and ignore cancellation."""

    def make_stream(self, reply: FakeReply) -> LLMStream:
        return _HangingLLMStream(self, reply)


class HangingCloseTTS(FakeTTS):
    """Its streams' ``aclose`` never returns and ignores cancellation."""

    def stream(self) -> FakeTTSStream:
        s = _CloseBehaviourTTSStream(self, "hang")
        self.streams.append(s)
        return s


class RaisingCloseTTS(FakeTTS):
    """Its streams' ``aclose`` raises (the connection must still be released)."""

    def stream(self) -> FakeTTSStream:
        s = _CloseBehaviourTTSStream(self, "raise")
        self.streams.append(s)
        return s


class _CloseBehaviourTTSStream(FakeTTSStream):
    def __init__(self, owner: FakeTTS, behaviour: str) -> None:
        super().__init__(owner)
        self._behaviour = behaviour

    async def _aclose_impl(self) -> None:
        await super()._aclose_impl()
        if self._behaviour == "hang":
            await swallow_cancellation_forever()
        else:
            raise ProviderError("close failed on purpose", provider=self.label)


class StallingTTS(FakeTTS):
    """Its streams hang mid-synthesis: after ``stall_after`` frames the next read never
    returns — ignoring cancellation when ``stubborn``, else until cancelled."""

    def __init__(self, *, stall_after: int = 3, stubborn: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stall_after = stall_after
        self.stubborn = stubborn

    def stream(self) -> FakeTTSStream:
        s = _StallingTTSStream(self)
        self.streams.append(s)
        return s


class _StallingTTSStream(FakeTTSStream):
    def __init__(self, owner: StallingTTS) -> None:
        super().__init__(owner)
        self._stall = owner
        self._frames = 0

    async def __anext__(self) -> AudioFrame:
        if self._frames >= self._stall.stall_after:
            if self._stall.stubborn:
                await swallow_cancellation_forever()
            else:
                await never_return()
            raise StopAsyncIteration  # released: the synthesis ends there
        self._frames += 1
        return await super().__anext__()


class _MidReplyLLMStream(FakeLLMStream):
    """Streams ``after`` chunks of its reply, then raises or hangs."""

    def __init__(self, owner: FakeLLM, reply: FakeReply, after: int, behaviour: str) -> None:
        super().__init__(owner, reply)
        self._left = after
        self._behaviour = behaviour

    async def __anext__(self) -> ChatChunk:
        if self._left <= 0:
            if self._behaviour == "raise":
                raise ProviderError("stream broke mid-reply on purpose", provider=self.label)
            await swallow_cancellation_forever()
            raise StopAsyncIteration
        self._left -= 1
        return await super().__anext__()


class FailingLLM(FakeLLM):
    """Its streams raise ``ProviderError`` after ``fail_after`` chunks (mid-reply)."""

    def __init__(
        self, replies: Sequence[FakeReply | str] = (), *, fail_after: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(replies, **kwargs)
        self.fail_after = fail_after

    def make_stream(self, reply: FakeReply) -> LLMStream:
        return _MidReplyLLMStream(self, reply, self.fail_after, "raise")


class StallingLLM(FakeLLM):
    """Its streams produce ``stall_after`` chunks, then never another (ignoring
    cancellation): a reply that hangs mid-sentence, with its TTS stream open."""

    def __init__(
        self, replies: Sequence[FakeReply | str] = (), *, stall_after: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(replies, **kwargs)
        self.stall_after = stall_after

    def make_stream(self, reply: FakeReply) -> LLMStream:
        return _MidReplyLLMStream(self, reply, self.stall_after, "hang")

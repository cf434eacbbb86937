"""Bounded channels for media and events (STYLE §9).

A :class:`BoundedChannel` has an explicit ``maxsize`` and an overflow policy:
``"wait"`` (backpressure: ``send`` waits for room) or ``"drop_oldest"`` (realtime audio:
the oldest item is dropped and counted). ``clear()`` empties it synchronously (barge-in).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from voxlane.errors import ChannelClosedError

T = TypeVar("T")


@dataclass(frozen=True)
class ChannelStatistics:
    size: int
    maxsize: int
    sent: int
    received: int
    dropped: int
    closed: bool


class BoundedChannel(Generic[T]):
    """A FIFO of at most ``maxsize`` items, closable, iterable until closed and empty."""

    def __init__(self, maxsize: int, *, overflow: Literal["wait", "drop_oldest"] = "wait") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.overflow = overflow
        self._items: deque[T] = deque()
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._sent = self._received = self._dropped = 0

    def send_nowait(self, item: T) -> bool:
        """Put ``item`` without waiting. Returns False if full under ``"wait"`` (not sent).

        Raises ``ChannelClosedError`` after ``close()``.
        """
        if self._closed:
            raise ChannelClosedError("channel is closed")
        if len(self._items) >= self.maxsize:
            if self.overflow == "wait":
                return False
            self._items.popleft()
            self._dropped += 1
        self._items.append(item)
        self._sent += 1
        self._readable.set()
        if len(self._items) >= self.maxsize:
            self._writable.clear()
        return True

    async def send(self, item: T) -> None:
        """Put ``item``, waiting for room under ``"wait"``. Raises ``ChannelClosedError``."""
        while not self.send_nowait(item):
            await self._writable.wait()

    def _pop(self) -> T:
        item = self._items.popleft()
        self._received += 1
        self._writable.set()
        if not self._items and not self._closed:
            self._readable.clear()
        return item

    def receive_nowait(self) -> T | None:
        """The next item, or None if nothing is queued."""
        return self._pop() if self._items else None

    async def receive(self) -> T:
        """Next item; raises ``ChannelClosedError`` once closed and empty."""
        while True:
            if self._items:
                return self._pop()
            if self._closed:
                raise ChannelClosedError("channel is closed")
            await self._readable.wait()

    def clear(self) -> int:
        """Drop everything queued now; return how many items were dropped."""
        n = len(self._items)
        self._items.clear()
        self._dropped += n
        self._readable.clear()
        self._writable.set()
        return n

    def close(self) -> None:
        """No more sends; receivers get what is queued, then ``ChannelClosedError``."""
        self._closed = True
        self._readable.set()
        self._writable.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            len(self._items), self.maxsize, self._sent, self._received, self._dropped, self._closed
        )

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            try:
                yield await self.receive()
            except ChannelClosedError:
                return

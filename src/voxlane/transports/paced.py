"""An :class:`~voxlane.room.AudioOutput` paced by a timer on the loop clock.

``wait_for_playout`` resolves when the flushed segment's last sample has played on the
loop clock — a local timer, independent of any listener — or at once on ``clear_buffer``
or ``aclose`` (then ``interrupted=True``). It cannot hang on a participant who left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from voxlane.aio.channel import BoundedChannel
from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import TaskOwner
from voxlane.errors import ChannelClosedError
from voxlane.media import AudioFrame
from voxlane.room import AudioOutput, PlaybackFinished

__all__ = ["PacedAudioOutput"]


@dataclass
class _Marker:
    future: asyncio.Future[PlaybackFinished]


class PacedAudioOutput(AudioOutput):
    """Plays frames at real-time pace on the loop clock, handing each to ``sink`` when its
    playout starts. ``sink`` must not block (a room fans frames out to bounded channels)."""

    def __init__(
        self,
        sink: Callable[[AudioFrame], None],
        *,
        sample_rate: int = 16000,
        max_buffer_s: float = 1.0,
        frame_s: float = 0.02,
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        self.sample_rate = sample_rate
        self._sink = sink
        self._clock = clock
        self._queue: BoundedChannel[AudioFrame | _Marker] = BoundedChannel(
            max(2, round(max_buffer_s / frame_s))
        )
        self._owner = TaskOwner("audio-out", clock=clock)
        self._player: asyncio.Task[None] | None = None
        self._pending: list[asyncio.Future[PlaybackFinished]] = []
        self._segment_played = 0.0
        self._play_end = 0.0
        self._closed = False
        self._epoch = 0  # bumped by clear_buffer: a frame popped before the clear is dropped
        self.frames_played = 0

    def _ensure_player(self) -> None:
        if self._player is None or self._player.done():
            self._player = self._owner.spawn(self._play(), name="player")

    async def capture_frame(self, frame: AudioFrame) -> None:
        if self._closed:
            return
        self._ensure_player()
        try:
            await self._queue.send(frame)
        except ChannelClosedError:
            return

    def flush(self) -> None:
        if self._closed:
            return
        fut: asyncio.Future[PlaybackFinished] = asyncio.get_running_loop().create_future()
        self._pending.append(fut)
        self._ensure_player()
        # A marker must not be dropped for lack of room: the queue bounds frames, and one
        # marker per segment is bounded by the number of segments in flight.
        if not self._queue.send_nowait(_Marker(fut)):
            self._queue.maxsize += 1
            self._queue.send_nowait(_Marker(fut))

    def clear_buffer(self) -> None:
        self._queue.clear()
        self._epoch += 1
        self._resolve_pending(interrupted=True)
        self._segment_played = 0.0
        self._play_end = self._clock.now()

    async def wait_for_playout(self) -> PlaybackFinished:
        if not self._pending:
            return PlaybackFinished(self._segment_played, interrupted=False)
        return await asyncio.shield(self._pending[-1])

    def _resolve_pending(self, *, interrupted: bool) -> None:
        pending, self._pending = self._pending, []
        for fut in pending:
            if not fut.done():
                fut.set_result(PlaybackFinished(self._segment_played, interrupted))

    async def _play(self) -> None:
        async for item in self._queue:
            now = self._clock.now()
            if isinstance(item, _Marker):
                await self._clock.sleep_until(self._play_end)
                if not item.future.done():
                    item.future.set_result(PlaybackFinished(self._segment_played, False))
                if item.future in self._pending:
                    self._pending.remove(item.future)
                self._segment_played = 0.0
                continue
            if self._play_end < now:
                self._play_end = now
            epoch = self._epoch
            await self._clock.sleep_until(self._play_end)
            if epoch != self._epoch:
                continue
            self._sink(item)
            self.frames_played += 1
            self._play_end += item.duration
            self._segment_played += item.duration

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.close()
        self._queue.clear()
        self._resolve_pending(interrupted=True)
        await self._owner.shutdown(self._clock.now() + 0.5)

    def abort(self) -> None:
        self._closed = True
        self._queue.close()
        self._queue.clear()
        self._resolve_pending(interrupted=True)
        if self._player is not None:
            self._player.cancel()

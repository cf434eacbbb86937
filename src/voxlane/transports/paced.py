"""An :class:`~voxlane.room.AudioOutput` paced by a timer on the loop clock.

``wait_for_playout`` resolves when the flushed segment's last sample has played on the
loop clock — a local timer, independent of any listener — or at once on ``clear_buffer``
or ``aclose`` (then ``interrupted=True``). It cannot hang on a participant who left.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voxlane.aio.channel import BoundedChannel
from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import TaskOwner
from voxlane.errors import ChannelClosedError
from voxlane.media import AudioFrame
from voxlane.room import AudioOutput, PlaybackFinished

__all__ = ["PacedAudioOutput", "PacedOutputStatistics"]


@dataclass(frozen=True)
class PacedOutputStatistics:
    frames_queued: int
    max_frames: int
    """The frame queue's bound, fixed at construction (flushes never raise it)."""
    segments_pending: int
    """Flushed segments whose ``wait_for_playout`` has not resolved yet."""
    frames_played: int


@dataclass(frozen=True)
class _Marker:
    """The end of a flushed segment: after the player has taken ``position`` frames (the
    frames queued when ``flush`` was called) and they have played out."""

    position: int
    future: asyncio.Future[PlaybackFinished]


class PacedAudioOutput(AudioOutput):
    """Plays frames at real-time pace on the loop clock, handing each to ``sink`` when its
    playout starts. ``sink`` must not block (a room fans frames out to bounded channels).

    The frame queue holds at most ``max_buffer_s`` of audio (``capture_frame`` waits for
    room). End-of-segment markers are kept beside it, not in it, positioned by frame count:
    one per flushed segment not yet played out, so they take no room from frames. The player
    task runs while there is something to play or resolve, and ends when there is not.
    """

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
        self._queue: BoundedChannel[AudioFrame] = BoundedChannel(
            max(2, round(max_buffer_s / frame_s))
        )
        self._owner = TaskOwner("audio-out", clock=clock)
        self._player: asyncio.Task[None] | None = None
        self._markers: deque[_Marker] = deque()
        self._taken = 0  # frames the player has taken from the queue (marker positions)
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
        self._markers.append(_Marker(self._taken + len(self._queue), fut))
        self._ensure_player()

    def clear_buffer(self) -> None:
        self._queue.clear()
        self._epoch += 1
        self._resolve_pending(interrupted=True)
        self._segment_played = 0.0
        self._play_end = self._clock.now()

    async def wait_for_playout(self) -> PlaybackFinished:
        if not self._markers:
            return PlaybackFinished(self._segment_played, interrupted=False)
        return await asyncio.shield(self._markers[-1].future)

    def statistics(self) -> PacedOutputStatistics:
        return PacedOutputStatistics(
            frames_queued=len(self._queue),
            max_frames=self._queue.maxsize,
            segments_pending=len(self._markers),
            frames_played=self.frames_played,
        )

    def _resolve_pending(self, *, interrupted: bool) -> None:
        markers, self._markers = self._markers, deque()
        for marker in markers:
            if not marker.future.done():
                marker.future.set_result(PlaybackFinished(self._segment_played, interrupted))

    async def _play(self) -> None:
        while True:
            if self._markers and self._markers[0].position <= self._taken:
                marker = self._markers[0]
                await self._clock.sleep_until(self._play_end)
                # A clear_buffer meanwhile has resolved (and removed) this marker.
                if self._markers and self._markers[0] is marker:
                    self._markers.popleft()
                    if not marker.future.done():
                        marker.future.set_result(PlaybackFinished(self._segment_played, False))
                    self._segment_played = 0.0
                continue
            frame = self._queue.receive_nowait()
            if frame is None:
                return  # nothing to play: capture_frame / flush start a new player
            self._taken += 1
            now = self._clock.now()
            if self._play_end < now:
                self._play_end = now
            epoch = self._epoch
            await self._clock.sleep_until(self._play_end)
            if epoch != self._epoch:
                continue
            self._sink(frame)
            self.frames_played += 1
            self._play_end += frame.duration
            self._segment_played += frame.duration

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

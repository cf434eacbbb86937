"""Streaming resampling and re-chunking of PCM16 mono audio (soxr; no hand-written DSP).

``StreamResampler`` converts a stream of frames from one rate to another, keeping filter
state between frames (so chunk boundaries add no clicks). ``FrameChunker`` cuts a stream of
frames of any size into frames of exactly ``frame_s`` seconds (RTP wants 20 ms, Silero
wants 512 samples). Neither is thread-safe; use one per stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from voxlane.media import AudioFrame


class StreamResampler:
    """PCM16 frames at ``in_rate`` → PCM16 frames at ``out_rate``."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._stream: Any = None
        if in_rate != out_rate:
            import soxr

            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16")

    def push(self, frame: AudioFrame, *, last: bool = False) -> AudioFrame:
        """Resample the next frame. ``last=True`` flushes the filter tail (and resets, so
        the stream can go on afterwards). Raises ``ValueError`` on a frame at another rate."""
        if frame.sample_rate != self.in_rate:
            raise ValueError(f"frame at {frame.sample_rate} Hz, resampler expects {self.in_rate}")
        if self._stream is None:
            return frame
        out = self._stream.resample_chunk(frame.to_numpy(), last=last)
        if last:
            self._stream.clear()
        return AudioFrame(np.asarray(out, dtype="<i2").tobytes(), self.out_rate)


class FrameChunker:
    """Re-cuts a stream of frames into frames of exactly ``samples`` samples."""

    def __init__(self, sample_rate: int, samples: int) -> None:
        if samples < 1:
            raise ValueError("samples must be >= 1")
        self.sample_rate = sample_rate
        self._size = 2 * samples
        self._pending = b""

    @classmethod
    def of_duration(cls, sample_rate: int, frame_s: float) -> FrameChunker:
        return cls(sample_rate, round(sample_rate * frame_s))

    def push(self, frame: AudioFrame) -> list[AudioFrame]:
        """Whole frames available after adding ``frame`` (the remainder is kept)."""
        if frame.sample_rate != self.sample_rate:
            raise ValueError(f"frame at {frame.sample_rate} Hz, chunker is {self.sample_rate}")
        data = self._pending + frame.data
        whole = len(data) - len(data) % self._size
        self._pending = data[whole:]
        return [
            AudioFrame(data[i : i + self._size], self.sample_rate)
            for i in range(0, whole, self._size)
        ]

    def flush(self) -> AudioFrame | None:
        """The remainder padded with silence to a whole frame (None if nothing is pending)."""
        if not self._pending:
            return None
        data = self._pending + bytes(self._size - len(self._pending))
        self._pending = b""
        return AudioFrame(data, self.sample_rate)

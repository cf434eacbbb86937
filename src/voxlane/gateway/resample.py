"""Streaming resampling of PCM16 mono to the engines' 16 kHz (soxr). Not thread-safe."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Resampler"]


class Resampler:
    """Converts a stream of PCM16 bytes at ``in_rate`` to 16 kHz PCM16 bytes."""

    def __init__(self, in_rate: int, out_rate: int = 16000) -> None:
        self._stream: Any = None
        if in_rate != out_rate:
            import soxr

            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16")

    def process(self, pcm16: bytes, *, last: bool = False) -> bytes:
        """Resample the next chunk; ``last=True`` flushes the filter's tail.

        The stream goes on after a flush (a session may finalize, then send more audio).
        """
        if self._stream is None:
            return pcm16
        samples = np.frombuffer(pcm16, dtype="<i2")
        out = self._stream.resample_chunk(samples, last=last)
        if last:
            # soxr refuses input after last=True; reset it for the audio that follows.
            self._stream.clear()
        return bytes(np.asarray(out, dtype="<i2").tobytes())

"""Energy endpointer: 16 kHz PCM16 in, utterance boundaries out. Pure and synchronous.

Why energy and not a model VAD: the gateway's engines need only utterance boundaries, the
test audio is synthesized (silence between sentences is near digital zero), and an energy
gate with hysteresis is deterministic, cheap (one RMS per 20 ms) and easy to reason about.
A frame is voiced when its RMS level is above ``threshold_dbfs``. Speech starts after
``start_frames`` voiced frames in a row (the ``preroll_ms`` before it is included so the
first phoneme is not clipped) and ends after ``hangover_ms`` of unvoiced frames. Speech
longer than ``max_utterance_ms`` is cut into several utterances (whisper decodes at most
30 s at once; a final per ~25 s also bounds how long a client waits for text from someone
who never pauses).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["EnergyEndpointer", "SpeechEnd", "SpeechStart", "frame_dbfs"]

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech began at ``start_sample``; ``audio`` is the speech so far (with pre-roll)."""

    start_sample: int
    audio: Samples


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """The utterance spanning ``start_sample``..``end_sample`` (stream samples) ended."""

    start_sample: int
    end_sample: int


Segment = SpeechStart | SpeechEnd | Samples


def frame_dbfs(frame: Samples) -> float:
    """RMS level of ``frame`` in dB relative to full scale (-180 for digital silence)."""
    if frame.size == 0:
        return -180.0
    rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
    return float(20.0 * np.log10(max(rms, 1e-9) / 32768.0))


class EnergyEndpointer:
    """Streaming endpointer; ``process`` returns segments: start, speech audio, end."""

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        frame_ms: int = 20,
        threshold_dbfs: float = -42.0,
        start_frames: int = 3,
        hangover_ms: int = 500,
        preroll_ms: int = 200,
        max_utterance_ms: int = 25000,
    ) -> None:
        self._frame = sample_rate * frame_ms // 1000
        self._threshold = float(threshold_dbfs)
        self._start_frames = start_frames
        self._hang_frames = max(1, hangover_ms // frame_ms)
        self._max_utterance = sample_rate * max_utterance_ms // 1000
        self._preroll: deque[Samples] = deque(maxlen=max(1, preroll_ms // frame_ms))
        self._pending = np.zeros(0, dtype=np.int16)
        self._pos = 0  # stream position (samples) of the next whole frame
        self._in_speech = False
        self._run = 0  # voiced frames in a row (silence) / unvoiced in a row (speech)
        self._start = 0
        self._last_voiced_end = 0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def _voiced(self, frame: Samples) -> bool:
        return frame_dbfs(frame) > self._threshold

    def process(self, samples: Samples) -> list[Segment]:
        """Consume samples (any length); return the segments they complete, in order."""
        buf = np.concatenate((self._pending, samples)) if self._pending.size else samples
        out: list[Segment] = []
        n_frames = buf.size // self._frame
        for i in range(n_frames):
            frame = buf[i * self._frame : (i + 1) * self._frame]
            self._step(frame, out)
        self._pending = buf[n_frames * self._frame :].copy()
        return out

    def _step(self, frame: Samples, out: list[Segment]) -> None:
        voiced = self._voiced(frame)
        frame_end = self._pos + frame.size
        if not self._in_speech:
            self._preroll.append(frame)
            self._run = self._run + 1 if voiced else 0
            if self._run >= self._start_frames:
                audio = np.concatenate(list(self._preroll))
                self._preroll.clear()
                self._in_speech = True
                self._start = frame_end - audio.size
                self._last_voiced_end = frame_end
                self._run = 0
                out.append(SpeechStart(self._start, audio))
        else:
            out.append(frame)
            if voiced:
                self._run = 0
                self._last_voiced_end = frame_end
            else:
                self._run += 1
                if self._run >= self._hang_frames:
                    out.append(SpeechEnd(self._start, self._last_voiced_end))
                    self._in_speech = False
                    self._run = 0
            if self._in_speech and frame_end - self._start >= self._max_utterance:
                out.append(SpeechEnd(self._start, frame_end))
                self._start = self._last_voiced_end = frame_end
                self._run = 0
                out.append(SpeechStart(frame_end, np.zeros(0, dtype=np.int16)))
        self._pos = frame_end

    def flush(self) -> SpeechEnd | None:
        """End the utterance in progress now (finalize); None when not in speech."""
        self._preroll.clear()
        self._run = 0
        if not self._in_speech:
            return None
        self._in_speech = False
        return SpeechEnd(self._start, max(self._last_voiced_end, self._start))

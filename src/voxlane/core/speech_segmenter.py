"""Speech segmentation from per-window speech probabilities (pure).

A VAD model gives one probability per analysis window; this turns the probabilities into
speech start/end edges with hysteresis and minimum durations:

* **start**: a run of windows whose probability is ``>= threshold`` begins a candidate; a
  window below ``neg_threshold`` abandons it; once the candidate has lasted
  ``min_speech_s`` the START edge is emitted. Its timestamp is the candidate's onset
  (minus ``speech_pad_s``, never below 0): where the speech began, not when it was decided.
* **end**: while speaking, the first window below ``neg_threshold`` starts a silence run; a
  window ``>= threshold`` cancels it (windows in between neither start nor cancel it, as in
  Silero's own iterator). Once the run has lasted ``min_silence_s`` the END edge is emitted
  with the timestamp at which that became true (the end of the last window of the run):
  the moment an endpoint timer should start from.

Inputs carry their position in the audio (seconds since the stream started); no clock is
read. ``finish`` closes an open segment at the end of the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class SpeechEdge(Enum):
    START = "start"
    END = "end"


@dataclass(frozen=True)
class SegmentEvent:
    edge: SpeechEdge
    timestamp_s: float


@dataclass(frozen=True, kw_only=True)
class SegmenterConfig:
    threshold: float = 0.5
    neg_threshold: float | None = None
    """Below this a window counts as silence; default ``max(threshold - 0.15, 0.01)``."""
    min_speech_s: float = 0.1
    min_silence_s: float = 0.3
    speech_pad_s: float = 0.03

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        neg = self.effective_neg_threshold
        if not 0.0 <= neg <= self.threshold:
            raise ValueError(f"neg_threshold must be in [0, threshold], got {neg}")
        for name in ("min_speech_s", "min_silence_s", "speech_pad_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def effective_neg_threshold(self) -> float:
        if self.neg_threshold is not None:
            return self.neg_threshold
        return max(self.threshold - 0.15, 0.01)


class SegmenterState(Enum):
    SILENT = "silent"
    SPEAKING = "speaking"


class SpeechSegmenter:
    """Probabilities in (``push``), START/END edges out. Not thread-safe; one per stream."""

    def __init__(self, config: SegmenterConfig) -> None:
        self.config = config
        self._neg = config.effective_neg_threshold
        self.state = SegmenterState.SILENT
        self._onset: float | None = None  # candidate speech start while SILENT
        self._silence_from: float | None = None  # silence run start while SPEAKING

    def push(self, prob: float, start_s: float, end_s: float) -> SegmentEvent | None:
        """One window ``[start_s, end_s)`` with speech probability ``prob``."""
        cfg = self.config
        if self.state is SegmenterState.SILENT:
            if prob >= cfg.threshold:
                if self._onset is None:
                    self._onset = start_s
            elif prob < self._neg:
                self._onset = None
            if self._onset is not None and end_s - self._onset >= cfg.min_speech_s - 1e-9:
                onset = max(0.0, self._onset - cfg.speech_pad_s)
                self.state = SegmenterState.SPEAKING
                self._onset = self._silence_from = None
                return SegmentEvent(SpeechEdge.START, onset)
            return None
        if prob >= cfg.threshold:
            self._silence_from = None
        elif prob < self._neg and self._silence_from is None:
            self._silence_from = start_s
        if self._silence_from is not None and end_s - self._silence_from >= (
            cfg.min_silence_s - 1e-9
        ):
            self.state = SegmenterState.SILENT
            self._silence_from = None
            return SegmentEvent(SpeechEdge.END, end_s)
        return None

    def finish(self, end_s: float) -> SegmentEvent | None:
        """The input ended at ``end_s``: END if speech is in progress; then reset."""
        speaking = self.state is SegmenterState.SPEAKING
        self.state = SegmenterState.SILENT
        self._onset = self._silence_from = None
        return SegmentEvent(SpeechEdge.END, end_s) if speaking else None

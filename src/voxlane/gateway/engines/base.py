"""Engine contract: one recognizer per session, fed 16 kHz PCM16, yielding speech events.

Everything here is synchronous and may block (model inference): the server calls it from
a worker thread, one call at a time per recognizer. A recognizer is never used by two
threads at once; an engine (and its shared model) may be used by many recognizers.

Per-session resources an engine reuses across sessions (pocketsphinx decoders, worker
processes) go back through a pool that resets them on return and discards those that do
not reset (:mod:`voxlane.gateway.engines.pool`): however a session ends (finalized, cut
mid-utterance, failed in the middle of a feed), the next session starts from a clean state.
"""

from __future__ import annotations

import abc
from typing import Protocol

import numpy as np
import numpy.typing as npt

from voxlane.gateway.endpointer import EnergyEndpointer, SpeechEnd, SpeechStart
from voxlane.gateway.protocol import (
    EndOfSpeech,
    FinalTranscript,
    InterimTranscript,
    SessionSettings,
    StartOfSpeech,
)

__all__ = [
    "ENGINE_SAMPLE_RATE",
    "EngineError",
    "Recognizer",
    "SegmentedRecognizer",
    "SpeechEvent",
    "SttEngine",
]

#: Every engine consumes 16 kHz mono PCM16; the session resamples other rates.
ENGINE_SAMPLE_RATE = 16000

SpeechEvent = StartOfSpeech | InterimTranscript | FinalTranscript | EndOfSpeech


class EngineError(Exception):
    """The engine failed; the session ends with ErrorCode.ENGINE_ERROR."""


class Recognizer(Protocol):
    """One session's recognizer. Blocking calls; never called concurrently."""

    def feed(self, pcm16: bytes) -> list[SpeechEvent]:
        """Consume 16 kHz PCM16 audio; return the events it completed, in order."""
        ...

    def finalize(self) -> list[SpeechEvent]:
        """Flush the utterance in progress (final transcript if any, end of speech)."""
        ...

    def close(self) -> None:
        """Release the recognizer, whatever state it is in (mid-utterance included).

        Pooled resources go back reset, or are discarded. Idempotent; never raises for
        a recognizer in a bad state. After close, ``feed`` and ``finalize`` raise
        EngineError (the resources may already serve another session).
        """
        ...


class SttEngine(Protocol):
    """A speech engine shared by all sessions of a process."""

    name: str

    def load(self) -> None:
        """Load the shared model (blocking, idempotent, thread-safe)."""
        ...

    def new_recognizer(self, settings: SessionSettings) -> Recognizer:
        """Create a recognizer for one session (blocking).

        Raises ``ProtocolViolation`` (UNSUPPORTED_SETTINGS) for settings the engine cannot
        honour, EngineError when the engine fails.
        """
        ...


class SegmentedRecognizer(abc.ABC):
    """A recognizer whose utterance boundaries come from an :class:`EnergyEndpointer`.

    Subclasses decode: :meth:`_begin` at speech start, :meth:`_accept` for each chunk of
    speech (may return an interim text), :meth:`_finish` at speech end (returns the text).
    """

    def __init__(self, endpointer: EnergyEndpointer | None = None) -> None:
        self._endpointer = endpointer or EnergyEndpointer(sample_rate=ENGINE_SAMPLE_RATE)
        self._closed = False

    def feed(self, pcm16: bytes) -> list[SpeechEvent]:
        self._check_open()
        samples = np.frombuffer(pcm16, dtype="<i2")
        out: list[SpeechEvent] = []
        for seg in self._endpointer.process(samples):
            if isinstance(seg, SpeechStart):
                out.append(StartOfSpeech())
                self._begin()
                interim = self._accept(seg.audio)
            elif isinstance(seg, SpeechEnd):
                out.extend(self._end(seg.start_sample, seg.end_sample))
                continue
            else:
                interim = self._accept(seg)
            if interim:
                out.append(InterimTranscript(interim))
        return out

    def finalize(self) -> list[SpeechEvent]:
        self._check_open()
        end = self._endpointer.flush()
        if end is None:
            return []
        return self._end(end.start_sample, end.end_sample)

    def _end(self, start_sample: int, end_sample: int) -> list[SpeechEvent]:
        text = self._finish().strip()
        out: list[SpeechEvent] = []
        if text:
            rate = ENGINE_SAMPLE_RATE
            out.append(FinalTranscript(text, start_sample / rate, end_sample / rate))
        out.append(EndOfSpeech())
        return out

    def _check_open(self) -> None:
        # A closed recognizer's decoder may already be back in the pool, serving another
        # session: touching it from here would corrupt (or crash) that session.
        if self._closed:
            raise EngineError("recognizer is closed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    @abc.abstractmethod
    def _begin(self) -> None: ...

    @abc.abstractmethod
    def _accept(self, samples: npt.NDArray[np.int16]) -> str | None: ...

    @abc.abstractmethod
    def _finish(self) -> str: ...

    @abc.abstractmethod
    def _release(self) -> None:
        """Free per-session resources (pooled ones go back through their pool's reset).

        Called once, whatever state the utterance is in; must not raise."""

"""Fake engines small enough to host in a spawned engine worker (imported by the child)."""

from __future__ import annotations

from voxlane.gateway import protocol as p
from voxlane.gateway.engines import Recognizer, SpeechEvent, SttEngine

#: Sessions created with these phrases get a recognizer whose close fails.
BAD_CLOSE = ("bad close",)


class _Rec:
    def __init__(self, bad_close: bool) -> None:
        self._bad_close = bad_close

    def feed(self, pcm16: bytes) -> list[SpeechEvent]:
        return []

    def finalize(self) -> list[SpeechEvent]:
        return [p.StartOfSpeech(), p.FinalTranscript("done", 0.0, 0.1), p.EndOfSpeech()]

    def close(self) -> None:
        if self._bad_close:
            raise RuntimeError("release failed")


class BadCloseEngine:
    name = "bad-close"

    def load(self) -> None:
        pass

    def new_recognizer(self, settings: p.SessionSettings) -> Recognizer:
        return _Rec(settings.phrases == BAD_CLOSE)


def bad_close_engine(name: str) -> SttEngine:
    """An ``EngineFactory`` for :class:`~voxlane.gateway.engines.procpool.ProcessPoolEngine`."""
    return BadCloseEngine()

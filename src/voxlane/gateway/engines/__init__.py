"""Speech engines hosted by the gateway, and the contract they share."""

from __future__ import annotations

from voxlane.gateway.engines.base import (
    ENGINE_SAMPLE_RATE,
    EngineError,
    Recognizer,
    SpeechEvent,
    SttEngine,
)

__all__ = [
    "ENGINE_SAMPLE_RATE",
    "STT_ENGINES",
    "EngineError",
    "Recognizer",
    "SpeechEvent",
    "SttEngine",
    "make_stt_engine",
]

STT_ENGINES = ("pocketsphinx", "whisper")


def make_stt_engine(name: str) -> SttEngine:
    """Build the named engine (models not loaded yet: call ``load()`` off the loop)."""
    if name == "pocketsphinx":
        from voxlane.gateway.engines.sphinx import PocketSphinxEngine

        return PocketSphinxEngine()
    if name == "whisper":
        from voxlane.gateway.engines.whisper import WhisperEngine

        return WhisperEngine()
    raise ValueError(f"unknown STT engine {name!r}; choose one of {STT_ENGINES}")

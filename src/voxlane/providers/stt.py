"""Speech-to-text contract: frames in, speech events out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from voxlane.media import AudioFrame
from voxlane.providers.base import ProviderStream


class SpeechEventType(Enum):
    START_OF_SPEECH = "start_of_speech"
    INTERIM_TRANSCRIPT = "interim_transcript"
    FINAL_TRANSCRIPT = "final_transcript"
    END_OF_SPEECH = "end_of_speech"


@dataclass(frozen=True)
class SpeechEvent:
    type: SpeechEventType
    text: str = ""
    start_s: float | None = None
    end_s: float | None = None


class STTStream(ProviderStream):
    """One recognition session.

    ``push_frame`` never blocks (frames go to a bounded buffer); ``end_input`` asks the
    provider to flush a final transcript for speech in progress and then end the iteration.
    Iteration raises ``ProviderError`` on a failure the stream could not recover from.
    """

    kind: ClassVar[str] = "stt"

    @abstractmethod
    def push_frame(self, frame: AudioFrame) -> None: ...

    @abstractmethod
    def end_input(self) -> None: ...

    def __aiter__(self) -> STTStream:
        return self

    @abstractmethod
    async def __anext__(self) -> SpeechEvent: ...


class STT(ABC):
    label: str = "stt"

    @abstractmethod
    def stream(self, *, sample_rate: int = 16000) -> STTStream:
        """Open a recognition stream (connecting lazily or at once; either way registered)."""

"""Voice-activity-detection contract: frames in, speech start/end out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from voxlane.media import AudioFrame
from voxlane.providers.base import ProviderStream


class VADEventType(Enum):
    START_OF_SPEECH = "start_of_speech"
    END_OF_SPEECH = "end_of_speech"


@dataclass(frozen=True)
class VADEvent:
    type: VADEventType
    timestamp_s: float = 0.0
    """Position in the input audio (seconds since the stream started) the event refers to."""


class VADStream(ProviderStream):
    kind: ClassVar[str] = "vad"

    @abstractmethod
    def push_frame(self, frame: AudioFrame) -> None: ...

    @abstractmethod
    def end_input(self) -> None: ...

    def __aiter__(self) -> VADStream:
        return self

    @abstractmethod
    async def __anext__(self) -> VADEvent: ...


class VAD(ABC):
    label: str = "vad"

    @abstractmethod
    def stream(self, *, sample_rate: int = 16000) -> VADStream: ...

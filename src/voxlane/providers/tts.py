"""Text-to-speech contract: text in (pushed or whole), audio frames out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from voxlane.media import AudioFrame
from voxlane.providers.base import ProviderStream


class TTSStream(ProviderStream):
    """Text pushed in pieces; ``end_input`` says no more text; iteration yields audio and
    ends after the last frame."""

    kind: ClassVar[str] = "tts"

    @abstractmethod
    def push_text(self, text: str) -> None: ...

    @abstractmethod
    def end_input(self) -> None: ...

    def __aiter__(self) -> TTSStream:
        return self

    @abstractmethod
    async def __anext__(self) -> AudioFrame: ...


class TTS(ABC):
    label: str = "tts"
    sample_rate: int = 16000
    chars_per_second: float = 15.0
    """The voice's speaking rate (about 150 words a minute by default): how much of a reply's
    text a given length of its audio carries, so a reply cut short is recorded as far as
    it was heard."""

    @abstractmethod
    def stream(self) -> TTSStream: ...

    def synthesize(self, text: str) -> TTSStream:
        """A stream for one whole text."""
        s = self.stream()
        s.push_text(text)
        s.end_input()
        return s

"""Audio frames: PCM16 little-endian mono, the one format every voxlane component speaks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SUPPORTED_SAMPLE_RATES = (8000, 16000, 24000, 48000)


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A chunk of PCM16 LE mono audio.

    ``data`` length must be even (whole samples); the constructor raises ``ValueError``
    otherwise so a malformed frame is rejected where it enters, not where it is played.
    """

    data: bytes
    sample_rate: int

    def __post_init__(self) -> None:
        if len(self.data) % 2:
            raise ValueError(f"PCM16 frame has odd byte length {len(self.data)}")
        if self.sample_rate <= 0:
            raise ValueError(f"invalid sample rate {self.sample_rate}")

    @property
    def samples(self) -> int:
        return len(self.data) // 2

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.samples / self.sample_rate

    def to_numpy(self) -> npt.NDArray[np.int16]:
        return np.frombuffer(self.data, dtype="<i2")

    def rms(self) -> float:
        """Root-mean-square level in PCM16 units (0 for an empty frame)."""
        if not self.data:
            return 0.0
        x = self.to_numpy().astype(np.float64)
        return float(np.sqrt(np.mean(x * x)))

    @classmethod
    def from_numpy(cls, samples: npt.NDArray[np.int16], sample_rate: int) -> AudioFrame:
        return cls(np.asarray(samples, dtype="<i2").tobytes(), sample_rate)

    @classmethod
    def silence(cls, duration: float, sample_rate: int = 16000) -> AudioFrame:
        return cls(bytes(2 * round(duration * sample_rate)), sample_rate)

    @classmethod
    def tone(
        cls, duration: float, sample_rate: int = 16000, freq: float = 220.0, level: float = 0.3
    ) -> AudioFrame:
        """A sine tone, handy as non-silent test audio."""
        n = round(duration * sample_rate)
        t = np.arange(n) / sample_rate
        x = (np.sin(2 * np.pi * freq * t) * level * 32767).astype("<i2")
        return cls(x.tobytes(), sample_rate)


def split_frames(frame: AudioFrame, frame_duration: float = 0.02) -> list[AudioFrame]:
    """Cut ``frame`` into frames of ``frame_duration`` seconds (the last may be shorter)."""
    step = 2 * max(1, round(frame_duration * frame.sample_rate))
    return [
        AudioFrame(frame.data[i : i + step], frame.sample_rate)
        for i in range(0, len(frame.data), step)
    ]

"""The Room and audio-output contracts: what every transport implements and the session uses.

A room has remote participants who send audio in, one audio output the agent plays into,
and tells its listeners when a participant disconnects, with a reason. The session links
to one participant; with ``close_on_disconnect`` that participant's disconnect closes it.

An :class:`AudioOutput`'s ``wait_for_playout`` resolves when the flushed segment's last
sample has played — on a local timer, independent of any listener — or at once on
``clear_buffer`` or ``aclose`` (then ``interrupted=True``). It cannot hang on a participant
who left. (:class:`voxlane.transports.paced.PacedAudioOutput` is the timer-paced one.)

This module sits below ``voice/`` and ``transports/`` (both import it; it imports only
``voxlane.media``): the session and the rooms meet here, never in each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum

from voxlane.media import AudioFrame

__all__ = [
    "AudioOutput",
    "DisconnectListener",
    "DisconnectReason",
    "Participant",
    "PlaybackFinished",
    "Room",
]


@dataclass(frozen=True)
class PlaybackFinished:
    position_s: float
    """Seconds of the segment that were played."""
    interrupted: bool


class AudioOutput(ABC):
    sample_rate: int

    @abstractmethod
    async def capture_frame(self, frame: AudioFrame) -> None:
        """Queue ``frame`` for playout; waits while the bounded buffer is full."""

    @abstractmethod
    def flush(self) -> None:
        """End of the current segment: ``wait_for_playout`` resolves once it has played."""

    @abstractmethod
    def clear_buffer(self) -> None:
        """Drop queued audio now (barge-in); a pending ``wait_for_playout`` resolves."""

    @abstractmethod
    async def wait_for_playout(self) -> PlaybackFinished: ...

    @abstractmethod
    async def aclose(self) -> None:
        """Stop playing, resolve waiters, release. Idempotent."""


class DisconnectReason(StrEnum):
    HANGUP = "hangup"  # the caller ended the call (BYE, tab closed, leave())
    CANCELLED = "cancelled"  # gave up before the call was answered
    TIMEOUT = "timeout"  # media stopped: the far end vanished
    ROOM_CLOSED = "room_closed"
    ERROR = "error"

    @classmethod
    def parse(cls, value: str) -> DisconnectReason:
        """The reason named ``value``; an unknown name is a plain ``HANGUP``."""
        try:
            return cls(value)
        except ValueError:
            return cls.HANGUP


@dataclass(frozen=True)
class Participant:
    identity: str
    kind: str = "standard"


DisconnectListener = Callable[[Participant, DisconnectReason], None]


class Room(ABC):
    name: str
    sample_rate: int
    """Sample rate of the audio this room delivers from participants."""

    @property
    @abstractmethod
    def audio_output(self) -> AudioOutput:
        """Where the agent's audio goes (to every participant)."""

    @abstractmethod
    def audio_input(self, participant: Participant) -> AsyncIterator[AudioFrame]:
        """The participant's audio; ends when the participant leaves."""

    @abstractmethod
    async def wait_for_participant(self) -> Participant:
        """The first remote participant (returns at once if one is there)."""

    @abstractmethod
    def remote_participants(self) -> list[Participant]:
        """Who is in the room now."""

    @abstractmethod
    def departed_participants(self) -> dict[Participant, DisconnectReason]:
        """Who was in the room and left, with why, for the room's whole life: a session
        started after its caller already left closes at once instead of waiting."""

    @abstractmethod
    def on_participant_disconnected(self, listener: DisconnectListener) -> Callable[[], None]:
        """Subscribe; returns the function that unsubscribes."""

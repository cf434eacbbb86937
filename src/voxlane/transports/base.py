"""The Room contract every transport implements (local, SIP, WebRTC, websocket).

A room has remote participants who send audio in, one audio output the agent plays into,
and tells its listeners when a participant disconnects, with a reason. The session links
to one participant; with ``close_on_disconnect`` that participant's disconnect closes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum

from voxlane.media import AudioFrame
from voxlane.voice.io import AudioOutput


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
    def on_participant_disconnected(self, listener: DisconnectListener) -> Callable[[], None]:
        """Subscribe; returns the function that unsubscribes."""

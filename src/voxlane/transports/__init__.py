"""Transports: the Room contract and its implementations."""

from voxlane.transports.base import DisconnectReason, Participant, Room
from voxlane.transports.local import CallRecorder, LocalParticipant, LocalRoom

__all__ = [
    "CallRecorder",
    "DisconnectReason",
    "LocalParticipant",
    "LocalRoom",
    "Participant",
    "Room",
]

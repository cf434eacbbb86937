"""Transports: implementations of the Room contract (:mod:`voxlane.room`, re-exported here).

Exports are lazy so that pure codecs (``voxlane.transports.sip``) import without asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AudioOutput": "voxlane.room",
    "DisconnectReason": "voxlane.room",
    "Participant": "voxlane.room",
    "PlaybackFinished": "voxlane.room",
    "Room": "voxlane.room",
    "CallRecorder": "voxlane.transports.local",
    "LocalParticipant": "voxlane.transports.local",
    "LocalRoom": "voxlane.transports.local",
    "PacedAudioOutput": "voxlane.transports.paced",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'voxlane.transports' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from voxlane.room import AudioOutput, DisconnectReason, Participant, PlaybackFinished, Room
    from voxlane.transports.local import CallRecorder, LocalParticipant, LocalRoom
    from voxlane.transports.paced import PacedAudioOutput

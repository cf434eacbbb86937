"""Transports: the Room contract and its implementations.

Exports are lazy so that pure codecs (``voxlane.transports.sip``) import without asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DisconnectReason": "voxlane.transports.base",
    "Participant": "voxlane.transports.base",
    "Room": "voxlane.transports.base",
    "CallRecorder": "voxlane.transports.local",
    "LocalParticipant": "voxlane.transports.local",
    "LocalRoom": "voxlane.transports.local",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'voxlane.transports' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from voxlane.transports.base import DisconnectReason, Participant, Room
    from voxlane.transports.local import CallRecorder, LocalParticipant, LocalRoom

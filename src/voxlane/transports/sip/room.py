"""A SIP call as a :class:`~voxlane.room.Room` with one participant: the caller.

The caller's audio is the call's RTP input (PCM16 8 kHz frames), the room's output is the
call's paced RTP output. :meth:`SipRoom.disconnect` is how the SIP layer reports the end of
the call (BYE → HANGUP, RTP silence → TIMEOUT, server shutdown → ROOM_CLOSED); with
``close_on_disconnect`` the session then closes itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from voxlane.errors import ClosedError
from voxlane.media import AudioFrame
from voxlane.room import (
    AudioOutput,
    DisconnectListener,
    DisconnectReason,
    Participant,
    Room,
)

from .rtp_io import SAMPLE_RATE, RtpStream

__all__ = ["SipRoom"]

log = logging.getLogger(__name__)


class SipRoom(Room):
    """One answered call. ``caller`` is the participant's identity (the From URI)."""

    def __init__(self, call_id: str, media: RtpStream, *, caller: str = "sip-caller") -> None:
        self.name = call_id
        self.sample_rate = SAMPLE_RATE
        self.participant = Participant(identity=caller, kind="sip")
        self._media = media
        self._listeners: list[DisconnectListener] = []
        self._disconnect_reason: DisconnectReason | None = None

    @property
    def audio_output(self) -> AudioOutput:
        return self._media.output

    def audio_input(self, participant: Participant) -> AsyncIterator[AudioFrame]:
        """The caller's audio; ends when the call ends. Raises ClosedError afterwards."""
        if participant != self.participant or self._disconnect_reason is not None:
            raise ClosedError(f"{participant.identity} is not in the room")
        return self._media.audio_in.__aiter__()

    async def wait_for_participant(self) -> Participant:
        return self.participant  # the room exists only once the call is answered

    def remote_participants(self) -> list[Participant]:
        return [self.participant] if self._disconnect_reason is None else []

    def departed_participants(self) -> dict[Participant, DisconnectReason]:
        reason = self._disconnect_reason
        return {} if reason is None else {self.participant: reason}

    def on_participant_disconnected(self, listener: DisconnectListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def disconnect_reason(self) -> DisconnectReason | None:
        """Why the caller left, or None while connected."""
        return self._disconnect_reason

    def disconnect(self, reason: DisconnectReason) -> bool:
        """The caller is gone: end its audio input and tell listeners (synchronously).
        Idempotent: returns False (and does nothing) when already disconnected."""
        if self._disconnect_reason is not None:
            return False
        self._disconnect_reason = reason
        self._media.audio_in.close()
        for listener in list(self._listeners):
            try:
                listener(self.participant, reason)
            except Exception:  # one listener's bug must not keep the others uninformed
                log.exception("room %s: disconnect listener failed", self.name)
        return True

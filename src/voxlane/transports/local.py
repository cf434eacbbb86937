"""An in-process room: participants join and leave, audio flows as PCM16 frames.

The agent's audio is played at real-time pace on the loop clock (``PacedAudioOutput``) and
handed to every participant's ``agent_audio`` channel and to the optional recorder. This is
the room the demo, the benchmarks and most tests run on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from voxlane.aio.channel import BoundedChannel
from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.errors import ClosedError
from voxlane.media import AudioFrame
from voxlane.room import (
    AudioOutput,
    DisconnectListener,
    DisconnectReason,
    Participant,
    Room,
)
from voxlane.transports.paced import PacedAudioOutput

INPUT_BUFFER_FRAMES = 100  # 2 s of 20 ms frames; older frames are dropped if nobody reads


@dataclass
class CallRecorder:
    """Both sides of a call on the loop-clock timeline, for ``call.wav`` and latency checks."""

    clock: Clock = DEFAULT_CLOCK
    t0: float | None = None
    caller: list[tuple[float, AudioFrame]] = field(default_factory=list)
    agent: list[tuple[float, AudioFrame]] = field(default_factory=list)

    def _at(self) -> float:
        now = self.clock.now()
        if self.t0 is None:
            self.t0 = now
        return now - self.t0

    def record_caller(self, frame: AudioFrame) -> None:
        self.caller.append((self._at(), frame))

    def record_agent(self, frame: AudioFrame) -> None:
        self.agent.append((self._at(), frame))


class LocalParticipant:
    """A remote participant of a ``LocalRoom`` (a synthetic caller, a test)."""

    def __init__(self, room: LocalRoom, identity: str) -> None:
        self.room = room
        self.info = Participant(identity)
        self._audio_in: BoundedChannel[AudioFrame] = BoundedChannel(
            INPUT_BUFFER_FRAMES, overflow="drop_oldest"
        )
        self.agent_audio: BoundedChannel[AudioFrame] = BoundedChannel(
            INPUT_BUFFER_FRAMES * 5, overflow="drop_oldest"
        )
        self.connected = True

    def push_frame(self, frame: AudioFrame) -> None:
        """Send audio into the room. Raises ``ClosedError`` after ``leave``; ``ValueError`` if
        the frame's rate is not the room's."""
        if not self.connected:
            raise ClosedError(f"{self.info.identity} has left the room")
        if frame.sample_rate != self.room.sample_rate:
            raise ValueError(
                f"frame at {frame.sample_rate} Hz, room expects {self.room.sample_rate} Hz"
            )
        if self.room.recorder is not None:
            self.room.recorder.record_caller(frame)
        self._audio_in.send_nowait(frame)

    async def stream_audio(self, frames: list[AudioFrame]) -> None:
        """Push ``frames`` at real-time pace (one frame per frame-duration on the loop clock)."""
        clock = self.room.clock
        t = clock.now()
        for frame in frames:
            if not self.connected:
                return
            self.push_frame(frame)
            t += frame.duration
            await clock.sleep_until(t)

    def leave(self, reason: DisconnectReason = DisconnectReason.HANGUP) -> None:
        """Disconnect (idempotent); listeners are told synchronously."""
        if not self.connected:
            return
        self.connected = False
        self._audio_in.close()
        self.room.participant_left(self, reason)

    def audio(self) -> AsyncIterator[AudioFrame]:
        return self._audio_in.__aiter__()


class LocalRoom(Room):
    def __init__(
        self,
        name: str = "local",
        *,
        sample_rate: int = 16000,
        clock: Clock = DEFAULT_CLOCK,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.name = name
        self.sample_rate = sample_rate
        self.clock = clock
        self.recorder = recorder
        self._participants: dict[str, LocalParticipant] = {}
        self._departed: dict[Participant, DisconnectReason] = {}
        self._joined = asyncio.Event()
        self._listeners: list[DisconnectListener] = []
        self._output = PacedAudioOutput(self._fan_out, sample_rate=sample_rate, clock=clock)

    def join(self, identity: str = "caller") -> LocalParticipant:
        if identity in self._participants:
            raise ValueError(f"{identity!r} is already in the room")
        participant = LocalParticipant(self, identity)
        self._participants[identity] = participant
        self._joined.set()
        return participant

    def participant_left(self, participant: LocalParticipant, reason: DisconnectReason) -> None:
        self._participants.pop(participant.info.identity, None)
        self._departed[participant.info] = reason
        for listener in list(self._listeners):
            listener(participant.info, reason)

    @property
    def participants(self) -> list[LocalParticipant]:
        return list(self._participants.values())

    def remote_participants(self) -> list[Participant]:
        return [p.info for p in self._participants.values()]

    def departed_participants(self) -> dict[Participant, DisconnectReason]:
        return dict(self._departed)

    @property
    def audio_output(self) -> AudioOutput:
        return self._output

    def audio_input(self, participant: Participant) -> AsyncIterator[AudioFrame]:
        local = self._participants.get(participant.identity)
        if local is None:
            raise ClosedError(f"{participant.identity} is not in the room")
        return local.audio()

    async def wait_for_participant(self) -> Participant:
        while not self._participants:
            self._joined.clear()
            await self._joined.wait()
        return next(iter(self._participants.values())).info

    def on_participant_disconnected(self, listener: DisconnectListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _fan_out(self, frame: AudioFrame) -> None:
        if self.recorder is not None:
            self.recorder.record_agent(frame)
        for p in self._participants.values():
            p.agent_audio.send_nowait(frame)
